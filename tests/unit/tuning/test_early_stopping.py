"""`training.early_stopping`: a trial ends after `patience` checks without improvement, keeps its
best check's value and records why and when it stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from lstm_tune.config import StudySpec, parse_spec
from lstm_tune.tuning.worker import run_search
from tests.helpers import OVERFITTING_PARAMS

PATIENCE = 2


def _spec(data: Path, tmp: Path, training: dict[str, Any]) -> StudySpec:
    return parse_spec(
        {
            "name": "stops",
            "data": {
                "path": str(data),
                "max_features": 1000,
                "validation_split": 0.25,
                "cache_dir": str(tmp / "cache"),
            },
            "training": training,
            "search": {"n_trials": 1, "pruner": {"name": "none"}, "metric": "val_loss"},
            "params": OVERFITTING_PARAMS,
        },
        "stops.yaml",
    )


def _only_trial(spec: StudySpec, tmp: Path) -> optuna.trial.FrozenTrial:
    storage = f"sqlite:///{tmp / 'es.db'}"
    run_search(spec, storage_url=storage, study_name="es")
    (trial,) = optuna.load_study(study_name="es", storage=storage).trials
    assert trial.state == TrialState.COMPLETE
    return trial


@pytest.mark.slow
def test_a_trial_stops_after_patience_epochs_without_improvement(
    imdb_slice: Path, tmp_path: Path
) -> None:
    training = {"epochs": 30, "early_stopping": {"patience": PATIENCE}}
    trial = _only_trial(_spec(imdb_slice, tmp_path, training), tmp_path)
    losses = trial.user_attrs["val_loss_per_epoch"]
    best = trial.user_attrs["best_epoch"]
    # It stopped `patience` epochs after its best one, far short of the maximum ...
    assert len(losses) == best + PATIENCE < 30
    assert trial.user_attrs["stopped_at_epoch"] == len(losses)
    assert all(loss >= losses[best - 1] for loss in losses[best:])
    assert trial.user_attrs["stop_reason"] == (
        f"early stopping: val_loss did not improve for {PATIENCE} epochs"
    )
    # ... and its value is its best epoch's, not its last's.
    assert trial.value == losses[best - 1] == min(losses)
    assert trial.value != losses[-1]
    # Pruning went on beside it: one report per epoch run.
    assert sorted(trial.intermediate_values) == list(range(len(losses)))


@pytest.mark.slow
def test_with_checkpoints_patience_counts_checkpoints(imdb_slice: Path, tmp_path: Path) -> None:
    # 300 fit reviews, a checkpoint every 100: three per epoch.
    training = {
        "epochs": 30,
        "report_every": 100,
        "report_sample": 50,
        "early_stopping": {"patience": PATIENCE},
    }
    trial = _only_trial(_spec(imdb_slice, tmp_path, training), tmp_path)
    reported = trial.intermediate_values
    steps = sorted(reported)
    stopped = trial.user_attrs["stopped_at_checkpoint"]
    assert steps == list(range(1, stopped + 1))  # no report after the stop
    best_step = min(steps, key=lambda s: (reported[s], s))
    assert stopped == best_step + PATIENCE  # the last `patience` checkpoints did not improve
    assert trial.user_attrs["stopped_at_epoch"] == len(trial.user_attrs["val_loss_per_epoch"])
    # It stopped inside an epoch: fewer epochs than 30 and the last one cut short.
    assert trial.user_attrs["stopped_at_epoch"] == -(-stopped // 3)
    assert trial.user_attrs["stop_reason"].endswith(f"for {PATIENCE} checkpoints")
    assert trial.value == min(trial.user_attrs["val_loss_per_epoch"])
