"""A worker keeps going past a diverged trial and gives up on a setup where every trial fails."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from lstm_tune.config import parse_spec
from lstm_tune.tasks.text_classification.data import Split
from lstm_tune.tuning import studies
from lstm_tune.tuning.worker import MAX_CONSECUTIVE_FAILURES, run_search
from lstm_tune.types import Prepared

TINY = {
    "hidden_size": 4,
    "num_layers": 1,
    "learning_rate": 0.01,
    "dropout_rate": 0.0,
    "sequence_length": 8,
    "batch_size": 16,
}


def _corpus(labels: np.ndarray) -> Prepared:
    rng = np.random.default_rng(0)
    seqs = [rng.integers(2, 30, 8).astype(np.int32) for _ in labels]
    fit, validation = Split(seqs, labels), Split(seqs[:16], labels[:16])
    test = Split(seqs[:10], np.array([0, 1] * 5))
    return Prepared(fit, validation, test, {"vocab_size": 30, "class_names": ["0", "1"]})


@pytest.mark.slow
def test_nan_trials_fail_with_their_reason_and_the_worker_stops_after_a_streak(
    tmp_path: Path,
) -> None:
    spec = parse_spec(
        {"name": "nan", "training": {"epochs": 1}, "search": {"n_trials": 50}, "params": TINY},
        "nan.yaml",
    )
    storage = f"sqlite:///{tmp_path / 'nan.db'}"
    labels = np.where(np.arange(64) % 2 == 0, np.nan, 1.0)  # NaN labels make the loss NaN
    outcome = run_search(spec, storage_url=storage, study_name="nan", prepared=_corpus(labels))
    trials = optuna.load_study(study_name="nan", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL] * MAX_CONSECUTIVE_FAILURES
    assert all("loss became nan" in t.user_attrs["fail_reason"] for t in trials)
    assert outcome.stopped_because == f"{MAX_CONSECUTIVE_FAILURES} trials failed in a row"
    assert outcome.finished == 0


@pytest.mark.slow
def test_a_study_that_already_met_its_budget_trains_nothing(tmp_path: Path) -> None:
    spec = parse_spec(
        {"name": "done", "training": {"epochs": 1}, "search": {"n_trials": 1}, "params": TINY},
        "done.yaml",
    )
    storage = f"sqlite:///{tmp_path / 'done.db'}"
    corpus = _corpus(np.array([0.0, 1.0] * 32))
    first = run_search(spec, storage_url=storage, study_name="done", prepared=corpus)
    again = run_search(spec, storage_url=storage, study_name="done", prepared=corpus)
    assert (first.finished, first.stopped_because) == (1, "budget reached")
    assert (again.finished, again.stopped_because) == (1, "budget already reached")
    assert len(optuna.load_study(study_name="done", storage=storage).trials) == 1
    stored = optuna.load_study(study_name="done", storage=storage).user_attrs["lstm_tune_spec"]
    assert yaml.safe_load(yaml.safe_dump(stored))["space"] == TINY
    assert optuna.load_study(study_name="done", storage=storage).trials[0].params == TINY


def test_a_search_started_on_a_met_budget_fails_the_trial_its_last_worker_left_running(
    tmp_path: Path,
) -> None:
    """The study's last worker died mid-trial after the others had stopped (the 30-minute
    direct soak at 48d132d): the same `search` run again, as a restart policy runs it, fails
    that trial as stale and exits without training."""
    spec = parse_spec(
        {"name": "left", "training": {"epochs": 1}, "search": {"n_trials": 1}, "params": TINY},
        "left.yaml",
    )
    plain = f"sqlite:///{tmp_path / 'left.db'}"
    storage = f"{plain}?heartbeat_interval=1&grace_period=2"
    study = studies.open_study(spec, storage_url=storage, study_name="left")
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    dead = study.ask()
    study._storage.record_heartbeat(dead._trial_id)  # type: ignore[attr-defined]
    time.sleep(3.5)  # past the grace period: no one beats for it any more

    corpus = _corpus(np.array([0.0, 1.0] * 32))
    again = run_search(spec, storage_url=storage, study_name="left", prepared=corpus)

    assert (again.finished, again.stopped_because) == (1, "budget already reached")
    states = [t.state for t in optuna.load_study(study_name="left", storage=plain).trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL]  # failed, no copy queued
