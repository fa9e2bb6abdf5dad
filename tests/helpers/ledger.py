"""A storage with lstm-tune's held-trial ledger on Optuna's in-memory storage, for tests of
the ledger that need no database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from optuna.storages import InMemoryStorage
from optuna.storages._heartbeat import BaseHeartbeat

from lstm_tune.storages.ledger import TrialLedger

__all__ = ["LedgerStorage"]


class LedgerStorage(TrialLedger, InMemoryStorage, BaseHeartbeat):
    """The mixin on Optuna's in-memory storage; ``lost_answers`` plays a retrying storage
    whose first write committed but whose answer was lost; ``beats`` the heartbeats sent
    (every ``interval`` seconds) and ``reads`` the trials read."""

    stale_failed_by = "by a test while this one ran it"
    stale_checked_by = "a test's stale-trial check"

    def __init__(self, interval: int = 1) -> None:
        super().__init__()
        self.lost_answers = 0
        self.interval = interval
        self.beats: list[int] = []
        self.reads = 0

    def _send_heartbeat(self, trial_id: int) -> None:
        self.beats.append(trial_id)

    def get_trial(self, trial_id: int) -> Any:
        self.reads += 1
        return super().get_trial(trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return []

    def get_heartbeat_interval(self) -> int:
        return self.interval

    def get_heartbeat_stale_trial_callback(self) -> None:
        return None

    def get_study_id_of_trial(self, trial_id: int) -> int:
        """The study holding ``trial_id``, found through the public API."""
        for study in self.get_all_studies():
            if any(t._trial_id == trial_id for t in self.get_all_trials(study._study_id)):
                return study._study_id
        raise KeyError(trial_id)

    def _write_trial_state(self, write: Callable[[], bool]) -> bool:
        while self.lost_answers:
            self.lost_answers -= 1
            write()  # committed; the caller never hears of it and tries again
        return write()
