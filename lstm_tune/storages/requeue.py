"""Re-queue a failed trial's params, unless the study's budget no longer needs them.

A trial whose worker died (stale heartbeat) or was told to stop is failed and a copy with its
params is queued (Optuna's ``RetryHeartbeatStaleTrialCallback``), so a fault costs time, never
a config. Once the study holds its budget of finished trials, no worker will take such a copy:
the workers stop, and the copy would stay WAITING for good (the chaos soak saw it, when a stale
trial was found after the last trial finished). So:

* :func:`requeue_failed` does not queue a copy once the budget is met, and says why;
* :func:`close_requeued_copies`, called by each worker that stops on a met budget, fails the
  copies still WAITING, each with a ``fail_reason`` (it takes each one as a worker would, so a
  copy another worker just started is left to it);
* :func:`settle_running_trials`, called there too, fails the trials left RUNNING by dead
  workers: Optuna's stale check runs only when a worker starts a trial, so a worker killed
  after the budget was met left its trial RUNNING for good (the direct chaos soak left 7).

Trials queued by the user (``search.enqueue``, warm start) are not copies and stay WAITING.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

from lstm_tune.storages.attrs import BUDGET_ATTR

__all__ = [
    "Requeued",
    "budget_met",
    "close_requeued_copies",
    "is_requeued_copy",
    "requeue_failed",
    "settle_running_trials",
]

_log = logging.getLogger(__name__)

# Optuna's retry callback marks each copy with these system attributes.
_RETRY_HISTORY = "retry_history"
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# A running trial without a heartbeat for this many heartbeat intervals may have lost its
# worker (a live one beats every interval): a worker that stops waits for it to go stale.
QUIET_INTERVALS = 1.5


@runtime_checkable
class KnowsQuietTrials(Protocol):
    """A storage that can tell which running trials have gone quiet (no recent heartbeat)."""

    grace_period: int | None

    def quiet_running_trials(self, study_id: int, quiet_for: float) -> list[int]:
        """The study's RUNNING trials without a heartbeat for more than ``quiet_for`` s."""
        ...


@dataclass(frozen=True)
class Requeued:
    """What became of a failed trial's params: ``copy`` is the queued copy's number, or None
    with ``why_not`` saying why no copy was queued."""

    copy: int | None
    why_not: str = ""


def budget_met(study: optuna.study.Study) -> int | None:
    """The study's budget (the ``lstm_tune_budget`` user attribute) when its finished trials
    reach it, else None (also for a study that records no budget)."""
    budget = study.user_attrs.get(BUDGET_ATTR)
    if not isinstance(budget, int):
        return None
    finished = len(study.get_trials(deepcopy=False, states=_FINISHED))
    return budget if finished >= budget else None


def is_requeued_copy(trial: FrozenTrial) -> bool:
    """Whether ``trial`` is a copy queued for a failed trial (not a config the user queued)."""
    return bool(trial.system_attrs.get(_RETRY_HISTORY))


def requeue_failed(
    study: optuna.study.Study, trial: FrozenTrial, max_requeue: int | None
) -> Requeued:
    """Queue a copy of failed ``trial``'s params, at most ``max_requeue`` times per config
    (None: no limit) and not once the study's budget is met. A copy queued for it already
    (by a stale-trial check before the FAIL) is the copy: no second one is queued."""
    queued = _copies_of(study, trial.number)
    if queued:
        return Requeued(max(queued))
    budget = budget_met(study)
    if budget is not None:
        return Requeued(None, f"the study's budget of {budget} finished trials is already met")
    failures = len(trial.system_attrs.get(_RETRY_HISTORY, [])) + 1
    if max_requeue is not None and failures > max_requeue:
        return Requeued(
            None, f"its params already lost their worker {failures} times (max_requeue)"
        )
    with warnings.catch_warnings():  # Optuna marks the retry callback experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=max_requeue)(study, trial)
    copies = _copies_of(study, trial.number)
    if not copies:  # not expected: the callback queues one unless max_requeue says no
        return Requeued(None, "Optuna's retry callback queued no copy")
    return Requeued(max(copies))


def _copies_of(study: optuna.study.Study, number: int) -> list[int]:
    """The numbers of the copies queued for trial ``number``."""
    return [
        t.number
        for t in study.get_trials(deepcopy=False)
        if t.system_attrs.get(_RETRY_HISTORY, [])[-1:] == [number]
    ]


def _take(storage: optuna.storages.BaseStorage, trial_id: int) -> bool:
    """Move a WAITING trial to RUNNING, as a worker takes a queued trial; False if another
    process took it first: started it (still RUNNING) or, stopping on the met budget too,
    already closed it (finished: Optuna raises for that, the chaos soak saw two workers that
    had waited together for a dead worker's trial close the same copy)."""
    try:
        return storage.set_trial_state_values(trial_id, TrialState.RUNNING)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def close_requeued_copies(study: optuna.study.Study) -> list[int]:
    """Fail the re-queued copies still WAITING in ``study`` once its budget is met, each with a
    ``fail_reason``; returns their numbers. A copy is taken first, as a worker takes a waiting
    trial (WAITING to RUNNING, which only one process can do), so one a worker started in the
    meantime is left to that worker."""
    budget = budget_met(study)
    if budget is None:
        return []
    storage = study._storage
    closed = []
    for copy in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if not is_requeued_copy(copy) or not _take(storage, copy._trial_id):
            continue
        # A heartbeat, so a crash right here leaves a stale trial (failed by the next sweep),
        # not one RUNNING for good: Optuna never finds a trial stale that has no heartbeat.
        if isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage):
            storage.record_heartbeat(copy._trial_id)
        storage.set_trial_user_attr(
            copy._trial_id,
            "fail_reason",
            f"not run: the study's budget of {budget} finished trials was met before this "
            f"re-queued copy of trial {copy.system_attrs.get('failed_trial')} started",
        )
        storage.set_trial_state_values(copy._trial_id, TrialState.FAIL)
        closed.append(copy.number)
    if closed:
        _log.warning(
            "budget met: %d re-queued cop%s not run (trial%s %s, failed with a fail_reason)",
            len(closed),
            "y" if len(closed) == 1 else "ies",
            "" if len(closed) == 1 else "s",
            ", ".join(map(str, closed)),
        )
    return closed


def settle_running_trials(study: optuna.study.Study) -> None:
    """Fail the trials dead workers left RUNNING in ``study``, whose budget is met.

    Optuna fails a stale trial only when a worker starts its next trial; once the budget is
    met no worker does, so a trial whose worker was killed in the last minutes stayed RUNNING
    for good. A worker that stops on a met budget runs the stale check once (no copy is
    queued: the budget is met), and if a running trial has gone quiet (no heartbeat for
    :data:`QUIET_INTERVALS` intervals) but is not stale yet, waits for it, at most the grace
    period and an interval, checking every interval. A live worker's trial beats on and is
    not waited for. Storages without heartbeats, or without a way to see quiet trials (the
    gRPC proxy's client: the proxy sweeps stale trials itself), get the one check only.
    """
    storage = study._storage
    if budget_met(study) is None or not (
        isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)
    ):
        return
    interval = storage.get_heartbeat_interval()
    assert interval is not None  # is_heartbeat_enabled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
        # Optuna wraps an RDBStorage in its _CachedStorage (no public way to reach it); the
        # heartbeats are read from the database itself.
        backend = getattr(storage, "_backend", storage)
        if not isinstance(backend, KnowsQuietTrials):
            return
        grace = backend.grace_period or 2 * interval
        quiet = backend.quiet_running_trials(study._study_id, QUIET_INTERVALS * interval)
        if not quiet:
            return
        _log.warning(
            "budget met; %d running trial%s without a heartbeat for over %g s (a dead "
            "worker's?): waiting up to %d s to fail %s as stale",
            len(quiet),
            "" if len(quiet) == 1 else "s",
            QUIET_INTERVALS * interval,
            grace + interval,
            "it" if len(quiet) == 1 else "them",
        )
        # Stale at most the grace period after the last beat, which was before now; one
        # interval more covers the check's own cadence and SQLite's whole-second clock.
        deadline = time.monotonic() + grace + interval
        while quiet and time.monotonic() < deadline:
            time.sleep(interval)
            optuna.storages.fail_stale_trials(study)
            quiet = backend.quiet_running_trials(study._study_id, QUIET_INTERVALS * interval)
