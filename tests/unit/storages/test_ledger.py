"""lstm_tune.storages.ledger: which trials a process holds, kept by the TrialLedger mixin as
trials change state (on Optuna's in-memory storage, so no database is involved)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import InMemoryStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState

from lstm_tune.storages import HeldTrial, held_trials, ledger
from lstm_tune.storages.ledger import TrialLedger, hold


class _LedgerStorage(TrialLedger, InMemoryStorage):
    """The mixin on Optuna's in-memory storage; ``lost_answers`` plays a retrying storage
    whose first write committed but whose answer was lost."""

    stale_failed_by = "by a test while this one ran it"

    def __init__(self) -> None:
        super().__init__()
        self.lost_answers = 0

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


@pytest.fixture(autouse=True)
def own_ledger(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A ledger of this test's own: the process-wide one holds other tests' trials."""
    monkeypatch.setattr(ledger, "_held", {})
    yield


@pytest.fixture
def storage() -> _LedgerStorage:
    return _LedgerStorage()


def _new_trial(storage: _LedgerStorage, state: TrialState = TrialState.WAITING) -> int:
    study_id = storage.create_new_study([StudyDirection.MINIMIZE], study_name="s")
    trial_id = storage.create_new_trial(study_id)
    if state != TrialState.RUNNING:
        InMemoryStorage.set_trial_state_values(storage, trial_id, state)  # around the ledger
    return trial_id


def test_a_trial_moved_to_running_is_held_and_released_when_it_finishes(
    storage: _LedgerStorage,
) -> None:
    trial_id = _new_trial(storage)  # WAITING: not held
    assert held_trials() == []
    assert storage.set_trial_state_values(trial_id, TrialState.RUNNING)
    study_id = storage.get_study_id_of_trial(trial_id)
    assert held_trials() == [HeldTrial(trial_id, study_id, storage)]
    assert storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [1.0])
    assert held_trials() == []


@pytest.mark.parametrize("end", [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL])
def test_every_finished_state_releases(storage: _LedgerStorage, end: TrialState) -> None:
    trial_id = _new_trial(storage)
    storage.set_trial_state_values(trial_id, TrialState.RUNNING)
    storage.set_trial_state_values(trial_id, end, [1.0] if end == TrialState.COMPLETE else None)
    assert held_trials() == []


def test_a_retry_that_finds_its_own_earlier_write_counts_as_done(
    storage: _LedgerStorage,
) -> None:
    trial_id = _new_trial(storage)
    storage.set_trial_state_values(trial_id, TrialState.RUNNING)
    storage.lost_answers = 1
    assert storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.5])
    assert storage.get_trial(trial_id).value == 0.5
    assert held_trials() == []


def test_a_held_trial_failed_as_stale_meanwhile_is_given_up_with_a_warning(
    storage: _LedgerStorage, caplog: pytest.LogCaptureFixture
) -> None:
    trial_id = _new_trial(storage)
    storage.set_trial_state_values(trial_id, TrialState.RUNNING)
    InMemoryStorage.set_trial_state_values(storage, trial_id, TrialState.FAIL)  # "another worker"
    with caplog.at_level(logging.WARNING, logger="lstm_tune.storages"):
        assert storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.5]) is False
    assert held_trials() == []
    assert storage.get_trial(trial_id).state == TrialState.FAIL  # the result is discarded
    assert [r.getMessage() for r in caplog.records if r.name == "lstm_tune.storages"] == [
        "trial 0 was failed as stale by a test while this one ran it; its result is "
        "discarded and its re-queued copy will run it again"
    ]


def test_a_finished_trial_this_process_does_not_hold_stays_an_error(
    storage: _LedgerStorage,
) -> None:
    failed = _new_trial(storage, TrialState.FAIL)
    with pytest.raises(UpdateFinishedTrialError):
        storage.set_trial_state_values(failed, TrialState.COMPLETE, [0.5])
    # Held, but finished COMPLETE by someone else: not a stale fail, so not given up quietly.
    storage.create_new_study([StudyDirection.MINIMIZE], study_name="t")
    done = storage.create_new_trial(storage.get_study_id_from_name("t"))
    InMemoryStorage.set_trial_state_values(storage, done, TrialState.COMPLETE, [1.0])
    hold(storage, done, storage.get_study_id_from_name("t"))
    with pytest.raises(UpdateFinishedTrialError):
        storage.set_trial_state_values(done, TrialState.FAIL)


def test_hold_records_the_trial_its_study_and_storage(storage: _LedgerStorage) -> None:
    hold(storage, 7, 3)
    assert held_trials() == [HeldTrial(trial_id=7, study_id=3, storage=storage)]
