"""A failed trial's params are re-queued while the budget needs them, and only then.

The chaos soak once ended a round with a re-queued copy WAITING for good: the copy of a trial
found stale after the last trial finished, when every worker had already stopped.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from lstm_tune.storages import BUDGET_ATTR, open_storage
from lstm_tune.storages.requeue import (
    close_requeued_copies,
    requeue_failed,
    settle_running_trials,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
# These tests play a dead worker by hand (ask without optimize) and call Optuna's stale-trial
# check directly, which Optuna flags as experimental.
pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used"),
]


def _study(tmp_path: Path, budget: int, options: str = "") -> optuna.study.Study:
    url = f"sqlite:///{tmp_path / 's.db'}{options}"
    study = optuna.create_study(storage=open_storage(url), study_name="s")
    study.set_user_attr(BUDGET_ATTR, budget)
    return study


def _complete(study: optuna.study.Study, n: int) -> None:
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=n)


def _failed(study: optuna.study.Study) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, state=TrialState.FAIL)
    return study.trials[-1]


def _states(study: optuna.study.Study) -> Counter[str]:
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


def test_a_failed_trial_is_requeued_while_the_budget_needs_it(tmp_path: Path) -> None:
    study = _study(tmp_path, budget=3)
    _complete(study, 2)
    failed = _failed(study)
    requeued = requeue_failed(study, failed, max_requeue=None)
    copy = study.trials[-1]
    assert requeued.copy == copy.number and copy.state == TrialState.WAITING
    assert copy.params == failed.params


def test_no_copy_is_queued_once_the_budget_is_met(tmp_path: Path) -> None:
    study = _study(tmp_path, budget=2)
    _complete(study, 2)
    requeued = requeue_failed(study, _failed(study), max_requeue=None)
    assert requeued.copy is None
    assert "budget of 2 finished trials is already met" in requeued.why_not
    assert _states(study) == Counter(COMPLETE=2, FAIL=1)


def test_max_requeue_still_limits_the_copies(tmp_path: Path) -> None:
    study = _study(tmp_path, budget=5)
    first = _failed(study)
    assert requeue_failed(study, first, max_requeue=1).copy is not None
    study.tell(study.ask(), state=TrialState.FAIL)  # the copy runs and fails too
    requeued = requeue_failed(study, study.trials[-1], max_requeue=1)
    assert requeued.copy is None and "max_requeue" in requeued.why_not


def test_copies_waiting_when_the_budget_is_met_are_closed_with_a_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    study = _study(tmp_path, budget=2)
    _complete(study, 1)
    running = study.ask()  # another worker's trial, which will meet the budget
    running.suggest_float("x", 0.0, 1.0)
    failed = _failed(study)
    copy = requeue_failed(study, failed, max_requeue=None).copy
    assert close_requeued_copies(study) == []  # the budget still needs the copy
    study.tell(running, 0.5)
    with caplog.at_level(logging.WARNING, logger="lstm_tune.storages.requeue"):
        assert close_requeued_copies(study) == [copy]
    closed = study.trials[copy]
    assert closed.state == TrialState.FAIL
    assert f"re-queued copy of trial {failed.number}" in closed.user_attrs["fail_reason"]
    assert f"trial {copy}" in caplog.text
    assert _states(study) == Counter(COMPLETE=2, FAIL=2)


def test_a_user_queued_config_is_not_closed(tmp_path: Path) -> None:
    study = _study(tmp_path, budget=1)
    _complete(study, 1)
    study.enqueue_trial({"x": 0.75})
    assert close_requeued_copies(study) == []
    assert _states(study) == Counter(COMPLETE=1, WAITING=1)


def test_a_copy_another_worker_started_is_left_to_it(tmp_path: Path) -> None:
    study = _study(tmp_path, budget=1)
    failed = _failed(study)
    copy = requeue_failed(study, failed, max_requeue=None).copy
    started = study.ask()  # another worker takes the copy
    assert started.number == copy
    _complete(study, 1)
    assert close_requeued_copies(study) == []
    assert study.trials[copy].state == TrialState.RUNNING


def test_a_trial_found_stale_after_the_budget_is_met_is_not_requeued(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    study = _study(tmp_path, budget=1, options="?heartbeat_interval=1&grace_period=2")
    dead = study.ask()  # its worker dies after the first heartbeat
    dead.suggest_float("x", 0.0, 1.0)
    study._storage.record_heartbeat(dead._trial_id)  # type: ignore[attr-defined]
    _complete(study, 1)  # another worker meets the budget
    time.sleep(3.5)
    with caplog.at_level(logging.WARNING, logger="lstm_tune.storages.rdb"):
        optuna.storages.fail_stale_trials(study)
    assert _states(study) == Counter(COMPLETE=1, FAIL=1)
    assert f"trial {dead.number} had no heartbeat" in caplog.text
    assert "not re-queued, the study's budget of 1 finished trials is already met" in caplog.text


def test_a_checker_that_dies_between_the_copy_and_the_fail_loses_nothing(tmp_path: Path) -> None:
    """Optuna fails a stale trial first and queues its copy after; a checker killed between
    the two steps lost the config (the 30-minute chaos soak saw it). The copy comes first."""
    study = _study(tmp_path, budget=3, options="?heartbeat_interval=1&grace_period=2")
    dead = study.ask()
    dead.suggest_float("x", 0.0, 1.0)
    study._storage.record_heartbeat(dead._trial_id)  # type: ignore[attr-defined]
    time.sleep(3.5)
    # The first checker's first step (it finds the stale trial), twice as two checkers would;
    # then it dies before the FAIL.
    for _ in range(2):
        assert study._storage._get_stale_trial_ids(study._study_id) == [dead._trial_id]  # type: ignore[attr-defined]
    assert _states(study) == Counter(RUNNING=1, WAITING=1)
    optuna.storages.fail_stale_trials(study)  # the next checker
    assert _states(study) == Counter(FAIL=1, WAITING=1)
    (copy,) = study.get_trials(states=(TrialState.WAITING,))
    assert copy.params == study.trials[dead.number].params
    assert copy.system_attrs["retry_history"] == [dead.number]


def _dead_worker_trial(study: optuna.study.Study) -> optuna.trial.Trial:
    """A trial whose worker dies just after its first heartbeat."""
    dead = study.ask()
    dead.suggest_float("x", 0.0, 1.0)
    study._storage.record_heartbeat(dead._trial_id)  # type: ignore[attr-defined]
    return dead


def test_a_worker_stopping_on_the_budget_fails_a_dead_workers_trial_once_it_goes_stale(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The direct chaos soak left 7 trials RUNNING for good: each one's worker was killed
    after the budget was met, when no worker starts a trial (and so checks for stale ones)."""
    study = _study(tmp_path, budget=1, options="?heartbeat_interval=1&grace_period=4")
    dead = _dead_worker_trial(study)
    _complete(study, 1)  # another worker meets the budget
    time.sleep(2.2)  # quiet (over 1.5 intervals on SQLite's whole-second clock), not stale
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="lstm_tune.storages.requeue"):
        settle_running_trials(study)
    waited = time.monotonic() - started
    assert study.trials[dead.number].state == TrialState.FAIL
    assert _states(study) == Counter(COMPLETE=1, FAIL=1)  # failed, not re-queued
    assert waited > 0.5  # it waited for the trial to go stale (4-5 s after its heartbeat)
    assert "1 running trial without a heartbeat for over 1.5 s" in caplog.text


def test_a_live_workers_trial_is_not_waited_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    study = _study(tmp_path, budget=1, options="?heartbeat_interval=1&grace_period=3")
    live = _dead_worker_trial(study)
    _complete(study, 1)
    study._storage.record_heartbeat(live._trial_id)  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="lstm_tune.storages.requeue"):
        settle_running_trials(study)
    assert "waiting" not in caplog.text
    assert study.trials[live.number].state == TrialState.RUNNING


def test_nothing_is_settled_while_the_budget_still_needs_trials(tmp_path: Path) -> None:
    study = _study(tmp_path, budget=2, options="?heartbeat_interval=1&grace_period=2")
    dead = _dead_worker_trial(study)
    _complete(study, 1)
    time.sleep(2.5)  # stale: the next trial's start will fail and re-queue it
    settle_running_trials(study)
    assert study.trials[dead.number].state == TrialState.RUNNING


def test_a_copy_another_stopping_worker_already_closed_is_skipped(tmp_path: Path) -> None:
    """Two workers stopping on the met budget together: the second one's list of WAITING
    copies still has the copy the first one has closed (the direct chaos soak's traceback)."""
    study = _study(tmp_path, budget=2)
    _complete(study, 1)
    running = study.ask()  # another worker's trial, which will meet the budget
    running.suggest_float("x", 0.0, 1.0)
    copy = requeue_failed(study, _failed(study), max_requeue=None).copy
    study.tell(running, 0.5)
    listed = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert close_requeued_copies(study) == [copy]  # the first worker
    stale_view = optuna.load_study(study_name="s", storage=study._storage)
    now = stale_view.get_trials

    def as_listed_before(deepcopy: bool = True, states: Any = None) -> Any:
        return listed if states == (TrialState.WAITING,) else now(deepcopy, states)

    stale_view.get_trials = as_listed_before  # type: ignore[method-assign]
    assert [t.number for t in listed] == [copy]
    assert close_requeued_copies(stale_view) == []  # the second, with its earlier list
    assert study.trials[copy].state == TrialState.FAIL
