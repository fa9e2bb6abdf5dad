"""`train --refit-full`: the final model also learns from the validation examples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lstm_tune.cli import main
from lstm_tune.config import parse_spec
from lstm_tune.tasks import get_task
from tests.helpers import ROOT, require_or_skip
from tests.helpers.studies import StudyFile

SHARED = ROOT.parent / "shared" / "data"
PARAMS = {
    "hidden_size": 8,
    "num_layers": 1,
    "learning_rate": 0.01,
    "dropout_rate": 0.0,
    "sequence_length": 24,
    "batch_size": 32,
}


def _shared(name: str) -> Path:
    path = SHARED / name
    if not path.exists():
        require_or_skip(f"{name} is not at {path}")
    return path


def test_text_fit_split_gains_every_validation_text(imdb_slice: Path) -> None:
    spec = parse_spec({"name": "t", "data": {"path": str(imdb_slice)}, "params": PARAMS})
    task = get_task(spec.task)
    prepared = task.load(spec.data, spec.seed)
    merged = task.with_validation_in_fit(prepared)
    assert task.size(merged.fit) == task.size(prepared.fit) + task.size(prepared.validation)
    assert merged.validation is prepared.validation and merged.test is prepared.test
    assert np.array_equal(merged.fit.sequences[-1], prepared.validation.sequences[-1])


def test_forecasting_fit_targets_run_on_through_the_validation_rows(tmp_path: Path) -> None:
    lines = _shared("ETTh1.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    data = tmp_path / "e.csv"
    data.write_text("".join(lines[:501]))
    doc = {
        "name": "f",
        "task": "forecasting",
        "data": {
            "path": str(data),
            "time_column": "date",
            "target_columns": ["OT"],
            "horizon": 4,
            "split_rows": [300, 100, 100],
        },
        "params": PARAMS,
    }
    spec = parse_spec(doc)
    task = get_task("forecasting")
    prepared = task.load(spec.data, spec.seed)
    merged = task.with_validation_in_fit(prepared)
    window = PARAMS["sequence_length"]
    before = merged.fit.target_starts(window)
    assert before[-1] == 400 - 4  # the last targets end on the last validation row
    assert len(before) == len(prepared.fit.target_starts(window)) + 100


def test_language_model_fit_tokens_are_followed_by_the_validation_tokens(tmp_path: Path) -> None:
    data = tmp_path / "s.txt"
    data.write_text(_shared("tinyshakespeare.txt").read_text(encoding="utf-8")[:5000])
    doc = {
        "name": "l",
        "task": "language_model",
        "data": {"path": str(data), "level": "char"},
        "params": PARAMS,
    }
    spec = parse_spec(doc)
    task = get_task("language_model")
    prepared = task.load(spec.data, spec.seed)
    merged = task.with_validation_in_fit(prepared)
    assert np.array_equal(
        merged.fit.ids, np.concatenate([prepared.fit.ids, prepared.validation.ids])
    )


@pytest.mark.slow
def test_train_refit_full_trains_on_fit_and_validation(
    imdb_slice: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], study_file: StudyFile
) -> None:
    config = study_file(
        filename="c.yaml",
        name="r",
        data={"path": str(imdb_slice), "max_features": 300},
        training={"epochs": 1},
        params=PARAMS,
    )
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--refit-full"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["refit_full"] is True
    # 400 training reviews: all of them (320 fit + 80 validation) were trained on.
    assert metrics["train_size"] == 400 and metrics["validation_size"] == 80
