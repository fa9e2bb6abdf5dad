"""search.worker: a trial taken from this worker while it was paused (failed by another's
stale-trial check) leaves Optuna's trial runner as TrialTaken, not as a crash, and keeps the
FAIL state the check gave it. No training: Optuna's in-memory storage under the ledger."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import optuna
import pytest
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState

from lstm_tune.storages import ledger
from lstm_tune.storages.ledger import TrialTaken
from lstm_tune.tuning.worker import BudgetStop, _own_trials_only, optimize_own_trials
from tests.helpers.ledger import LedgerStorage


@pytest.fixture(autouse=True)
def own_ledger(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A ledger of this test's own: the process-wide one holds other tests' trials."""
    for name in ("_held", "_last_beat", "_taken"):
        monkeypatch.setattr(ledger, name, {})
    yield


def _study() -> tuple[optuna.study.Study, LedgerStorage]:
    storage = LedgerStorage()
    study = optuna.create_study(storage=storage)
    study.enqueue_trial({"x": 1.0})  # WAITING, then moved to RUNNING: held by the ledger
    return study, storage


def _taken_then(write: str) -> object:
    """An objective whose trial is failed as stale under it, then ``write`` touches it."""

    def objective(trial: optuna.trial.Trial) -> float:
        x = trial.suggest_float("x", 0, 2)
        InMemoryStorage.set_trial_state_values(trial.storage, trial._trial_id, TrialState.FAIL)
        if write == "report":
            trial.report(x, 1)
        elif write == "user_attr":
            trial.set_user_attr("history", [x])
        return x  # "tell": the objective ends as if nothing happened

    return objective


@pytest.mark.parametrize("write", ["report", "user_attr", "tell"])
def test_a_taken_trial_leaves_the_runner_as_trial_taken_and_stays_failed(write: str) -> None:
    study, storage = _study()
    with pytest.raises(TrialTaken) as taken:
        study.optimize(_own_trials_only(_taken_then(write)), n_trials=1)  # type: ignore[arg-type]
    assert taken.value.trial_number == 0
    trial = study.trials[0]
    assert trial.state == TrialState.FAIL and trial.user_attrs == {}
    assert trial.intermediate_values == {}
    # The study goes on: the next optimize runs a new trial.
    study.optimize(lambda t: t.suggest_float("x", 0, 2), n_trials=1)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]


def test_a_finished_trial_this_worker_does_not_hold_is_still_an_error() -> None:
    study, _ = _study()

    def objective(trial: optuna.trial.Trial) -> float:
        ledger._release(trial._trial_id)  # not on this process's ledger
        InMemoryStorage.set_trial_state_values(trial.storage, trial._trial_id, TrialState.FAIL)
        trial.set_user_attr("history", [])
        return 0.0

    with pytest.raises(ValueError, match="Cannot tell a FAIL trial"):  # Optuna's, unchanged
        study.optimize(_own_trials_only(objective), n_trials=1)


def _failed_after_its_last_look(taken_trials: int) -> object:
    """An objective whose first ``taken_trials`` trials are failed as stale after the worker's
    last look and before Optuna's tell (the race a 30-minute soak met: the check ran while the
    worker, not paused, finished the trial)."""

    def objective(trial: optuna.trial.Trial) -> float:
        x = trial.suggest_float("x", 0, 2)
        if trial.number < taken_trials:
            InMemoryStorage.set_trial_state_values(trial.storage, trial._trial_id, TrialState.FAIL)
        return x

    return objective


def test_a_tell_refused_for_a_trial_taken_after_the_last_look_goes_on_with_the_next_trial(
    caplog: pytest.LogCaptureFixture,
) -> None:
    study, _ = _study()
    with caplog.at_level(logging.WARNING, logger="lstm_tune.tuning.worker"):
        optimize_own_trials(study, _failed_after_its_last_look(1), stop=BudgetStop(2))  # type: ignore[arg-type]
    assert [t.state for t in study.trials] == [
        TrialState.FAIL,
        TrialState.COMPLETE,
        TrialState.COMPLETE,
    ]
    assert study.trials[0].values is None  # the stale-trial check's FAIL stays
    lines = [r.getMessage() for r in caplog.records if r.name == "lstm_tune.tuning.worker"]
    assert len(lines) == 1
    # The seconds since its last heartbeat depend on the machine's speed.
    assert re.fullmatch(
        r"trial 0 was taken from this worker \(failed by a test's stale-trial check after "
        r"~\d+ s without its heartbeat\); going on with the next trial",
        lines[0],
    )


def test_a_refused_tell_for_a_trial_this_worker_does_not_hold_still_stops_the_worker() -> None:
    study, _ = _study()

    def objective(trial: optuna.trial.Trial) -> float:
        ledger._release(trial._trial_id)  # not on this process's ledger
        InMemoryStorage.set_trial_state_values(trial.storage, trial._trial_id, TrialState.FAIL)
        return 0.0

    with pytest.raises(AssertionError, match="Should not reach"):  # Optuna's, unchanged
        optimize_own_trials(study, objective, stop=BudgetStop(2))
