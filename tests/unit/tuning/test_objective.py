"""Reporting to the pruner within epochs: trials stop mid-epoch, steps count reviews."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from lstm_tune.config import parse_spec
from lstm_tune.training import preflight
from lstm_tune.tuning.worker import run_search

TINY = {
    "hidden_size": 8,
    "num_layers": 1,
    "learning_rate": 0.01,
    "dropout_rate": 0.0,
    "sequence_length": 40,
    "batch_size": 25,
}


def _spec(
    data: Path,
    tmp: Path,
    pruner: dict,
    timeout: float | None = None,
    *,
    metric: str = "val_accuracy",
    n_trials: int = 1,
    space: dict | None = None,
) -> object:
    search = {
        "n_trials": n_trials,
        "pruner": pruner,
        "metric": metric,
        **({"timeout": timeout} if timeout else {}),
    }
    return parse_spec(
        {
            "name": "checkpoints",
            "data": {
                "path": str(data),
                "max_features": 1000,
                "validation_split": 0.25,
                "cache_dir": str(tmp / "cache"),
            },
            "training": {"epochs": 2, "report_every": 100, "report_sample": 50},
            "search": search,
            **({"space": space} if space else {"params": TINY}),
        },
        "checkpoints.yaml",
    )


@pytest.mark.slow
def test_reports_every_n_reviews_across_epochs(imdb_slice: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'c.db'}"
    spec = _spec(imdb_slice, tmp_path, {"name": "none"})
    run_search(spec, storage_url=storage, study_name="c")  # type: ignore[arg-type]
    (trial,) = optuna.load_study(study_name="c", storage=storage).trials
    assert trial.state == TrialState.COMPLETE
    # 300 fit reviews x 2 epochs = 600 reviews seen: checkpoints at 100, 200, ..., 600.
    assert sorted(trial.intermediate_values) == [1, 2, 3, 4, 5, 6]
    # Accuracy on a 50-review sample moves in steps of 1/50.
    assert all(round(v * 50, 6).is_integer() for v in trial.intermediate_values.values())
    assert len(trial.user_attrs["val_accuracy_per_epoch"]) == 2


@pytest.mark.slow
def test_a_hopeless_trial_stops_inside_its_first_epoch(imdb_slice: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'p.db'}"
    # Every accuracy is below 1.01, so the threshold pruner stops the trial at its first report.
    spec = _spec(imdb_slice, tmp_path, {"name": "threshold", "options": {"lower": 1.01}})
    run_search(spec, storage_url=storage, study_name="p")  # type: ignore[arg-type]
    (trial,) = optuna.load_study(study_name="p", storage=storage).trials
    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [1]
    assert "val_accuracy_per_epoch" not in trial.user_attrs  # no epoch had ended


@pytest.mark.slow
def test_each_trial_records_its_time_estimate_and_warns_past_the_timeout(
    imdb_slice: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = f"sqlite:///{tmp_path / 't.db'}"
    # This tiny trial is estimated well under the smallest timeout a study accepts (1 s); a
    # machine 10,000 times slower per step would take minutes, past a 60 s timeout.
    monkeypatch.setattr(preflight, "STEP_SECONDS", preflight.STEP_SECONDS * 10_000)
    spec = _spec(imdb_slice, tmp_path, {"name": "none"}, timeout=60.0)
    with caplog.at_level(logging.WARNING, logger="lstm_tune.tuning.objective"):
        run_search(spec, storage_url=storage, study_name="t")  # type: ignore[arg-type]
    (trial,) = optuna.load_study(study_name="t", storage=storage).trials
    assert trial.state == TrialState.COMPLETE  # a warning, not a refusal
    estimate = trial.user_attrs["estimated_seconds_per_epoch"]
    assert 2 * estimate > 60
    warnings = [r.getMessage() for r in caplog.records if r.name == "lstm_tune.tuning.objective"]
    assert warnings == [
        f"trial 0: this trial is estimated at {2 * estimate / 60:.0f} min (2 epochs of "
        f"{estimate:.0f} s), longer than the search's timeout of 1 min"
    ]


@pytest.mark.slow
def test_a_minimised_metric_is_reported_pruned_and_chosen_by_its_lowest_value(
    imdb_slice: Path, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'm.db'}"
    space = {**TINY, "learning_rate": {"low": 1e-3, "high": 3e-2, "log": True}}
    spec = _spec(
        imdb_slice, tmp_path, {"name": "none"}, metric="val_loss", n_trials=2, space=space
    )
    run_search(spec, storage_url=storage, study_name="m")  # type: ignore[arg-type]
    study = optuna.load_study(study_name="m", storage=storage)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.metric_names == ["val_loss"]  # what the dashboard shows instead of "Objective 0"
    values = [t.value for t in study.trials]
    assert study.best_value == min(values)  # type: ignore[type-var]
    for trial in study.trials:
        losses = trial.user_attrs["history"]["val_loss"]
        assert trial.value == min(losses)
        # Checkpoints report cross-entropy (nats) on the sample: positive, not an accuracy.
        assert all(v > 0 for v in trial.intermediate_values.values())

    # A threshold pruner with an upper bound stops a minimised trial at its first report.
    pruned = _spec(
        imdb_slice, tmp_path, {"name": "threshold", "options": {"upper": 0.0}}, metric="val_loss"
    )
    run_search(pruned, storage_url=storage, study_name="mp")  # type: ignore[arg-type]
    (trial,) = optuna.load_study(study_name="mp", storage=storage).trials
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [1]
