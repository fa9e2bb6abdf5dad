"""The ledger of trials this process holds RUNNING, and the storage behaviour that keeps it.

A worker that is told to stop fails and re-queues exactly its own trials: the ones on this
ledger (:func:`held_trials`). A storage keeps the ledger by inheriting :class:`TrialLedger`
and calling :func:`hold` when it creates a trial that starts RUNNING; moving a trial to
RUNNING holds it, finishing or failing it releases it.

A held trial can also be *taken*: while this process was paused (SIGSTOP, a VM migrated, a
swap storm) or cut off for longer than the grace period, another process's stale-trial check
failed it and re-queued its params. :func:`taken_trial` says so (it reads the trial's state
once); the heartbeat thread notices it after a late heartbeat, so training can stop at the
next batch (:func:`noticed_taken`); and the worker goes on with :class:`TrialTaken`.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState

from lstm_tune.storages.interrupts import storage_call

__all__ = [
    "HeldTrial",
    "TrialLedger",
    "TrialTaken",
    "held_trials",
    "hold",
    "noticed_taken",
    "taken_trial",
]

_log = logging.getLogger("lstm_tune.storages")


@dataclass(frozen=True)
class HeldTrial:
    """A trial this process moved to RUNNING and has not finished yet."""

    trial_id: int
    study_id: int
    storage: BaseStorage


class TrialTaken(BaseException):
    """A trial this process held was failed by another process's stale-trial check.

    A BaseException, like KeyboardInterrupt but not one: it must leave the objective through
    Optuna's trial runner, which catches ``Exception`` and ``KeyboardInterrupt`` and would then
    tell the finished trial (``ValueError: Cannot tell a FAIL trial``), and through code that
    catches ``Exception`` (Keras callbacks, artifact hooks). The worker catches it, says
    :attr:`line` and goes on with its next trial.
    """

    def __init__(self, trial_number: int, reason: str) -> None:
        super().__init__(f"trial {trial_number} was taken from this worker ({reason})")
        self.trial_number = trial_number
        self.reason = reason

    @property
    def line(self) -> str:
        """What the worker says: the trial, the reason and what it does next."""
        return f"{self}; going on with the next trial"


# A heartbeat this much later than the heartbeat interval after the previous one may have let
# the trial go stale; only then does the heartbeat thread read the trial's state.
LATE_HEARTBEAT_FACTOR = 1.5

_held: dict[int, HeldTrial] = {}
# When each held trial's heartbeat (or its start) was last recorded, on the monotonic clock.
_last_beat: dict[int, float] = {}
# The longest time each held trial went without a heartbeat so far (a pause this process came
# back from): the stale-trial check that fails the trial may run just after it resumed.
_longest_gap: dict[int, float] = {}
# Held trials found taken (by any thread); trial ids are never reused, so they stay.
_taken: dict[int, TrialTaken] = {}
_held_lock = threading.Lock()


def held_trials() -> list[HeldTrial]:
    """Trials this process moved to RUNNING and has not finished (e.g. to fail on SIGTERM)."""
    with _held_lock:
        return list(_held.values())


def hold(storage: BaseStorage, trial_id: int, study_id: int) -> None:
    """Put ``trial_id`` (of ``study_id`` in ``storage``) on the ledger."""
    with _held_lock:
        _held[trial_id] = HeldTrial(trial_id, study_id, storage)
        _last_beat[trial_id] = time.monotonic()


def noticed_taken(trial_id: int) -> TrialTaken | None:
    """The :class:`TrialTaken` for ``trial_id`` if this process has found it taken (no I/O:
    cheap enough to ask between two training batches)."""
    return _taken.get(trial_id)


def taken_trial(trial_id: int) -> TrialTaken | None:
    """The :class:`TrialTaken` for ``trial_id`` if this process held it and another process
    failed it as stale; None while it is still this process's (one read of its state)."""
    with _held_lock:
        taken = _taken.get(trial_id)
        held = _held.get(trial_id)
    if taken is not None:
        return taken
    if held is None or not isinstance(held.storage, TrialLedger):
        return None
    return held.storage.look_whether_taken(trial_id)


def _is_held(trial_id: int) -> bool:
    with _held_lock:
        return trial_id in _held


def _mark_taken(trial_id: int, trial_number: int, failed_by: str) -> TrialTaken:
    """Record ``trial_id`` as taken (and no longer held); the reason gives the time since its
    last heartbeat, which is how long this process was paused or cut off."""
    with _held_lock:
        since = max(
            time.monotonic() - _last_beat.get(trial_id, time.monotonic()),
            _longest_gap.get(trial_id, 0.0),
        )
        taken = TrialTaken(
            trial_number, f"failed by {failed_by} after ~{since:.0f} s without its heartbeat"
        )
        _taken.setdefault(trial_id, taken)
        _held.pop(trial_id, None)
        _last_beat.pop(trial_id, None)
        _longest_gap.pop(trial_id, None)
        return _taken[trial_id]


def _release(trial_id: int) -> None:
    with _held_lock:
        _held.pop(trial_id, None)
        _last_beat.pop(trial_id, None)
        _longest_gap.pop(trial_id, None)


class TrialLedger(BaseStorage):
    """Mixin for an Optuna storage that keeps the ledger as trials change state.

    Put it before the storage class it extends (``class S(TrialLedger, RDBStorage)``); the
    class says who may fail a trial as stale under a worker (:attr:`stale_failed_by`), and a
    storage that retries its writes runs them through :meth:`_write_trial_state`.
    """

    # Who fails a trial whose heartbeat went stale while this process ran it, for the log
    # line: "trial 3 was failed as stale <stale_failed_by>; its result is discarded ...".
    stale_failed_by: ClassVar[str]
    # Who fails such a trial, for the worker's line: "trial 3 was taken from this worker
    # (failed by <stale_checked_by> after ~12 s without its heartbeat); going on ...".
    stale_checked_by: ClassVar[str]

    @abc.abstractmethod
    def get_study_id_of_trial(self, trial_id: int) -> int:
        """The id of the study that holds ``trial_id`` (what the ledger records)."""

    @abc.abstractmethod
    def _send_heartbeat(self, trial_id: int) -> None:
        """The storage's own heartbeat write for ``trial_id``."""

    def record_heartbeat(self, trial_id: int) -> None:
        """Record a held trial's heartbeat, unless it was taken: then nothing more is written.

        A heartbeat later than the interval allows (this process was paused or cut off) is
        followed by one read of the trial's state, so a trial another process failed as stale
        meanwhile is noticed here (:func:`noticed_taken`) and training stops at the next batch
        instead of at the trial's next write.
        """
        if trial_id in _taken:
            return
        with _held_lock:
            last = _last_beat.get(trial_id)
        interval = self.get_heartbeat_interval() if isinstance(self, BaseHeartbeat) else None
        late = (
            last is not None
            and interval is not None
            and time.monotonic() - last > LATE_HEARTBEAT_FACTOR * interval
        )
        if late:
            self.look_whether_taken(trial_id)
            if trial_id in _taken:
                return
        self._send_heartbeat(trial_id)
        with _held_lock:
            if trial_id in _last_beat:
                now = time.monotonic()
                gap = now - _last_beat[trial_id]
                _longest_gap[trial_id] = max(gap, _longest_gap.get(trial_id, 0.0))
                _last_beat[trial_id] = now

    def look_whether_taken(self, trial_id: int) -> TrialTaken | None:
        """Read ``trial_id``'s state: a held trial now FAIL was taken by another process's
        stale-trial check (it is then released, not to be failed or re-queued again)."""
        if not _is_held(trial_id):
            return _taken.get(trial_id)
        trial = self.get_trial(trial_id)
        if trial.state != TrialState.FAIL:
            return None
        return _mark_taken(trial_id, trial.number, self.stale_checked_by)

    def _write_trial_state(self, write: Callable[[], bool]) -> bool:
        """Run the storage's own state write once; a storage that retries runs it again."""
        return write()

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        """Move a trial to ``state`` and hold or release it.

        A retry that finds its own earlier write counts as done; a trial that was failed as
        stale meanwhile (its re-queued copy will run it again) is given up: False. The write
        and the hold are one storage call: a stop asked for during the write is raised once
        the trial is held, so the stopping worker fails and re-queues it (raised between the
        two, it left the trial RUNNING and unheld, with no heartbeat yet, which Optuna's
        stale-trial check skips: nothing would ever fail it).
        """
        with storage_call():
            return self._set_state_and_hold(trial_id, state, values)

    def _set_state_and_hold(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None
    ) -> bool:
        # The storage class this mixin precedes (RDBStorage, GrpcStorageProxy) implements it.
        base = super().set_trial_state_values  # type: ignore[safe-super]
        attempts = 0

        def write() -> bool:
            nonlocal attempts
            attempts += 1
            return base(trial_id, state, values)

        try:
            updated = self._write_trial_state(write)
        except UpdateFinishedTrialError:
            trial = self.get_trial(trial_id)
            if attempts > 1 and trial.state == state:
                updated = True  # the first attempt committed; only its answer was lost
            elif state.is_finished() and trial.state == TrialState.FAIL and _is_held(trial_id):
                # The trial had no heartbeat for grace_period (e.g. while the database was
                # down) and was failed, and a copy queued: the copy will run it again.
                _log.warning(
                    "trial %d was failed as stale %s; its result is discarded and its "
                    "re-queued copy will run it again",
                    trial.number,
                    self.stale_failed_by,
                )
                _release(trial_id)
                return False
            else:
                raise
        if updated and state == TrialState.RUNNING:
            hold(self, trial_id, self.get_study_id_of_trial(trial_id))
        elif state.is_finished():
            _release(trial_id)
        return updated
