"""`train --epochs N` with the config's early stopping: it stops on the validation split and
keeps its best epoch's weights; without early stopping `train` runs the count it ran before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import pytest

from lstm_tune.cli import main
from lstm_tune.config import EarlyStoppingSpec, load_spec, parse_spec
from lstm_tune.results.evaluate import TrainingPlan, training_plan
from lstm_tune.tasks import get_task
from tests.helpers import OVERFITTING_PARAMS
from tests.helpers.studies import StudyFile

RESULT = {"value": 0.6, "best_epoch": 2, "study_name": "old", "trial_number": 3}


def _config(study_file: StudyFile, data: Path, training: dict[str, Any]) -> Path:
    return study_file(
        filename="best.yaml",
        name="conv",
        data={"path": str(data), "max_features": 1000},
        training=training,
        search={"metric": "val_loss"},
        params=OVERFITTING_PARAMS,
        result=RESULT,
    )


def _train(config: Path, out: Path, *flags: str) -> dict[str, Any]:
    assert main(["train", str(config), "--out", str(out), *flags]) == 0
    return json.loads((out / "metrics.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.slow
def test_train_epochs_stops_early_and_keeps_the_best_epochs_weights(
    imdb_slice: Path, tmp_path: Path, study_file: StudyFile
) -> None:
    config = _config(study_file, imdb_slice, {"epochs": 3, "early_stopping": {"patience": 2}})
    metrics = _train(config, tmp_path / "run", "--epochs", "30")
    losses, best = metrics["validation_per_epoch"], metrics["best_epoch"]
    # It ran past the trial's best epoch (2) and the config's 3, and stopped 2 epochs after
    # its best, short of the 30 allowed.
    assert metrics["epochs"] == len(losses) == best + 2 < 30
    assert metrics["early_stopping"]["max_epochs"] == 30
    assert losses[best - 1] == min(losses) < losses[-1]
    # The saved model holds the best epoch's weights: scored again on the validation split in
    # this test, it gives the best epoch's loss, not the last one's.
    spec = load_spec(str(config))
    task = get_task(spec.task)
    prepared = task.load(spec.data, spec.seed)
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    again = task.score(model, prepared.validation, OVERFITTING_PARAMS, "val_loss")
    assert again == pytest.approx(losses[best - 1], rel=1e-4)
    assert again != pytest.approx(losses[-1], rel=1e-4)
    assert metrics["early_stopping"]["validation_value"] == pytest.approx(again, rel=1e-6)


def _plan(training: dict[str, Any], **kwargs: Any) -> TrainingPlan:
    doc = {
        "name": "p",
        "data": {"path": "x.csv"},
        "training": training,
        "params": OVERFITTING_PARAMS,
    }
    return training_plan(parse_spec({**doc, "result": RESULT}), **kwargs)


def test_without_early_stopping_train_runs_the_best_epoch_count_or_the_given_one() -> None:
    assert _plan({"epochs": 3}) == TrainingPlan(RESULT["best_epoch"], None)
    assert _plan({"epochs": 3}, epochs=7) == TrainingPlan(7, None)


def test_with_early_stopping_train_runs_to_the_maximum_or_the_given_one() -> None:
    stopping = {"patience": 4, "min_delta": 0.01}
    expected = EarlyStoppingSpec(**stopping)
    assert _plan({"epochs": 3, "early_stopping": stopping}) == TrainingPlan(3, expected)
    assert _plan({"epochs": 3, "early_stopping": stopping}, epochs=50) == TrainingPlan(
        50, expected
    )


def test_refit_full_runs_the_best_epoch_count_found_with_validation() -> None:
    # No validation split is held out to stop on: the trial's best epoch count, or the given.
    training = {"epochs": 3, "early_stopping": {"patience": 1}}
    assert _plan(training, refit_full=True) == TrainingPlan(RESULT["best_epoch"], None)
    assert _plan(training, refit_full=True, epochs=5) == TrainingPlan(5, None)
