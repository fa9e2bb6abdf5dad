"""The ledger of trials this process holds RUNNING, and the storage behaviour that keeps it.

A worker that is told to stop fails and re-queues exactly its own trials: the ones on this
ledger (:func:`held_trials`). A storage keeps the ledger by inheriting :class:`TrialLedger`
and calling :func:`hold` when it creates a trial that starts RUNNING; moving a trial to
RUNNING holds it, finishing or failing it releases it.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

__all__ = ["HeldTrial", "TrialLedger", "held_trials", "hold"]

_log = logging.getLogger("lstm_tune.storages")


@dataclass(frozen=True)
class HeldTrial:
    """A trial this process moved to RUNNING and has not finished yet."""

    trial_id: int
    study_id: int
    storage: BaseStorage


_held: dict[int, HeldTrial] = {}
_held_lock = threading.Lock()


def held_trials() -> list[HeldTrial]:
    """Trials this process moved to RUNNING and has not finished (e.g. to fail on SIGTERM)."""
    with _held_lock:
        return list(_held.values())


def hold(storage: BaseStorage, trial_id: int, study_id: int) -> None:
    """Put ``trial_id`` (of ``study_id`` in ``storage``) on the ledger."""
    with _held_lock:
        _held[trial_id] = HeldTrial(trial_id, study_id, storage)


def _is_held(trial_id: int) -> bool:
    with _held_lock:
        return trial_id in _held


def _release(trial_id: int) -> None:
    with _held_lock:
        _held.pop(trial_id, None)


class TrialLedger(BaseStorage):
    """Mixin for an Optuna storage that keeps the ledger as trials change state.

    Put it before the storage class it extends (``class S(TrialLedger, RDBStorage)``); the
    class says who may fail a trial as stale under a worker (:attr:`stale_failed_by`), and a
    storage that retries its writes runs them through :meth:`_write_trial_state`.
    """

    # Who fails a trial whose heartbeat went stale while this process ran it, for the log
    # line: "trial 3 was failed as stale <stale_failed_by>; its result is discarded ...".
    stale_failed_by: ClassVar[str]

    @abc.abstractmethod
    def get_study_id_of_trial(self, trial_id: int) -> int:
        """The id of the study that holds ``trial_id`` (what the ledger records)."""

    def _write_trial_state(self, write: Callable[[], bool]) -> bool:
        """Run the storage's own state write once; a storage that retries runs it again."""
        return write()

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        """Move a trial to ``state`` and hold or release it.

        A retry that finds its own earlier write counts as done; a trial that was failed as
        stale meanwhile (its re-queued copy will run it again) is given up: False.
        """
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
