"""A trained model directory used on new, raw input, per task.

`train` writes the directory; `predict` runs in a fresh process that never saw the training
code's state, on raw rows; its answers must equal the model's own evaluation of those rows.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from lstm_tune.cli import main
from lstm_tune.config import load_spec
from lstm_tune.tasks import get_task
from tests.helpers import ROOT, etth1_forecaster, require_or_skip
from tests.helpers.studies import write_study

SHARED = ROOT.parent / "shared" / "data"
TINY = {
    "hidden_size": 8,
    "num_layers": 1,
    "learning_rate": 0.01,
    "dropout_rate": 0.0,
    "batch_size": 32,
}


def _train(tmp: Path, doc: dict[str, object]) -> Path:
    config = write_study(tmp, filename="config.yaml", **doc)
    out = tmp / "model"
    assert main(["train", str(config), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} >= {
        "model.keras",
        "preprocessing.json",
        "config.yaml",
        "metrics.json",
        "report.html",
    }
    return out


def _predict(model_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`lstm-tune predict` in a fresh interpreter."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "lstm_tune.cli", "predict", str(model_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_text_classifier_predicts_raw_text_like_its_own_evaluation(
    imdb_slice: Path, tmp_path: Path
) -> None:
    doc = {
        "name": "text",
        "seed": 1,
        "data": {"path": str(imdb_slice), "max_features": 500},
        "training": {"epochs": 1},
        "params": {**TINY, "sequence_length": 60},
    }
    model_dir = _train(tmp_path, doc)
    state = json.loads((model_dir / "preprocessing.json").read_text())
    assert state["task"] == "text_classification" and state["format"] == 1
    assert len(state["state"]["vocabulary"]) == 500 - 2 and state["state"]["tokenizer"]["words"]
    # Raw test reviews, as a user has them: a CSV with the text column only.
    with imdb_slice.open(newline="", encoding="utf-8") as f:
        test_texts = [row["review"] for row in csv.DictReader(f) if row["split"] == "test"]
    raw = tmp_path / "new.csv"
    with raw.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["review"], *([t] for t in test_texts)])
    result = _predict(model_dir, str(raw), "-o", str(tmp_path / "out.csv"), "--batch-size", "50")
    assert result.returncode == 0, result.stderr
    rows = _rows(tmp_path / "out.csv")
    assert len(rows) == len(test_texts) == 400
    # The model's own evaluation of the same rows.
    from lstm_tune.tasks.text_classification.task import predict_proba

    spec = load_spec(model_dir / "config.yaml")
    prepared = get_task(spec.task).load(spec.data, spec.seed)
    model = keras.saving.load_model(model_dir / "model.keras")
    expected = predict_proba(model, prepared.test, spec.fixed_params())
    got = np.array(
        [[float(r["probability_negative"]), float(r["probability_positive"])] for r in rows]
    )
    np.testing.assert_allclose(got, expected, atol=1e-5)
    names = ["negative", "positive"]
    assert [r["label"] for r in rows] == [names[i] for i in expected.argmax(axis=1)]

    # The Python API gives the same on a list of strings.
    import lstm_tune

    trained = lstm_tune.load_model(str(model_dir))
    api = trained.predict(test_texts[:3])  # type: ignore[attr-defined]
    assert [a["label"] for a in api] == [r["label"] for r in rows[:3]]

    # Wrong input: one line, exit 2.
    bad = tmp_path / "bad.csv"
    bad.write_text("text\nhello\n")
    failed = _predict(model_dir, str(bad))
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [
        f"lstm-tune: error: {bad}: the model's text column: no column 'review'; the file has "
        f"columns 'text'"
    ]
    # --prompt is one raw input: for a classifier, one text to classify.
    one = _predict(model_dir, "--prompt", test_texts[0])
    assert one.returncode == 0, one.stderr
    assert one.stdout.splitlines()[1].split(",")[0] == rows[0]["label"]


@pytest.mark.slow
def test_forecaster_predicts_the_next_horizon_from_a_raw_history(tmp_path: Path) -> None:
    doc, lines = etth1_forecaster(tmp_path, {**TINY, "sequence_length": 24})
    model_dir = _train(tmp_path, doc)
    # History up to the first test target: rows before row 750 (the file's first 750 rows).
    history = tmp_path / "history.csv"
    history.write_text("".join(lines[: 1 + 750]))
    result = _predict(model_dir, str(history), "-o", str(tmp_path / "out.csv"))
    assert result.returncode == 0, result.stderr
    rows = _rows(tmp_path / "out.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    first_test_time = lines[1 + 750].split(",")[0]
    assert rows[0]["date"] == first_test_time  # hourly steps after the history's last row
    # The model's own evaluation: the first test window's forecast, on the original scale.
    from lstm_tune.tasks.forecasting import predict as evaluate_windows

    spec = load_spec(model_dir / "config.yaml")
    prepared = get_task(spec.task).load(spec.data, spec.seed)
    model = keras.saving.load_model(model_dir / "model.keras")
    normalized = evaluate_windows(model, prepared.test, spec.fixed_params())[0, :, 0]
    expected = normalized * prepared.meta["std"]["OT"] + prepared.meta["mean"]["OT"]
    np.testing.assert_allclose([float(r["OT"]) for r in rows], expected, rtol=1e-4, atol=1e-4)

    short = tmp_path / "short.csv"
    short.write_text("".join(lines[:11]))
    failed = _predict(model_dir, str(short))
    assert failed.returncode == 2
    assert "10 rows of history; this model reads the last 24" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_language_model_continues_a_prompt_like_its_own_sampler(tmp_path: Path) -> None:
    text = SHARED / "tinyshakespeare.txt"
    if not text.exists():
        require_or_skip(f"Tiny Shakespeare is not at {text}")
    data = tmp_path / "shakespeare.txt"
    data.write_text(text.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    doc = {
        "name": "lm",
        "task": "language_model",
        "seed": 1,
        "data": {"path": str(data), "level": "char"},
        "training": {"epochs": 1},
        "params": {**TINY, "sequence_length": 32},
    }
    model_dir = _train(tmp_path, doc)
    args = ["--prompt", "ROMEO:", "--length", "40", "--temperature", "0.7"]
    result = _predict(model_dir, *args, "-o", str(tmp_path / "out.csv"))
    assert result.returncode == 0, result.stderr
    (row,) = _rows(tmp_path / "out.csv")
    assert row["prompt"] == "ROMEO:" and len(row["text"]) == 40
    from lstm_tune.tasks.language_model import continue_ids, detokenize, encode, tokenize

    state = json.loads((model_dir / "preprocessing.json").read_text())["state"]
    model = keras.saving.load_model(model_dir / "model.keras", compile=False)
    ids = encode(tokenize("ROMEO:", "char"), state["vocabulary"])
    written = continue_ids(model, ids, 40, 0.7, np.random.default_rng(0))
    assert row["text"] == detokenize([state["vocabulary"][i] for i in written], "char")
    # A classifier's flags on a language model are fine; a prompt of nothing is not.
    empty = _predict(model_dir, "--prompt", "")
    assert empty.returncode == 2 and len(empty.stderr.strip().splitlines()) == 1


def test_predict_on_a_directory_that_is_not_a_model_is_one_line(tmp_path: Path) -> None:
    result = _predict(tmp_path, "x.csv")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"lstm-tune: error: {tmp_path}: no preprocessing.json; give a directory written by "
        f"`lstm-tune train`"
    )
