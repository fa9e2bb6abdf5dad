"""lstm_tune.storages.ledger: which trials a process holds, kept by the TrialLedger mixin as
trials change state (on Optuna's in-memory storage, so no database is involved)."""

from __future__ import annotations

import logging

import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import InMemoryStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState

from lstm_tune.storages import HeldTrial, held_trials, ledger
from lstm_tune.storages.ledger import TrialTaken, hold, noticed_taken, taken_trial
from tests.helpers.ledger import LedgerStorage


@pytest.fixture
def storage() -> LedgerStorage:
    return LedgerStorage()


def _new_trial(storage: LedgerStorage, state: TrialState = TrialState.WAITING) -> int:
    study_id = storage.create_new_study([StudyDirection.MINIMIZE], study_name="s")
    trial_id = storage.create_new_trial(study_id)
    if state != TrialState.RUNNING:
        InMemoryStorage.set_trial_state_values(storage, trial_id, state)  # around the ledger
    return trial_id


def test_a_trial_moved_to_running_is_held_and_released_when_it_finishes(
    storage: LedgerStorage,
) -> None:
    trial_id = _new_trial(storage)  # WAITING: not held
    assert held_trials() == []
    assert storage.set_trial_state_values(trial_id, TrialState.RUNNING)
    study_id = storage.get_study_id_of_trial(trial_id)
    assert held_trials() == [HeldTrial(trial_id, study_id, storage)]
    assert storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [1.0])
    assert held_trials() == []


@pytest.mark.parametrize("end", [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL])
def test_every_finished_state_releases(storage: LedgerStorage, end: TrialState) -> None:
    trial_id = _new_trial(storage)
    storage.set_trial_state_values(trial_id, TrialState.RUNNING)
    storage.set_trial_state_values(trial_id, end, [1.0] if end == TrialState.COMPLETE else None)
    assert held_trials() == []


def test_a_retry_that_finds_its_own_earlier_write_counts_as_done(
    storage: LedgerStorage,
) -> None:
    trial_id = _new_trial(storage)
    storage.set_trial_state_values(trial_id, TrialState.RUNNING)
    storage.lost_answers = 1
    assert storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.5])
    assert storage.get_trial(trial_id).value == 0.5
    assert held_trials() == []


def test_a_held_trial_failed_as_stale_meanwhile_is_given_up_with_a_warning(
    storage: LedgerStorage, caplog: pytest.LogCaptureFixture
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
    storage: LedgerStorage,
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


def test_hold_records_the_trial_its_study_and_storage(storage: LedgerStorage) -> None:
    hold(storage, 7, 3)
    assert held_trials() == [HeldTrial(trial_id=7, study_id=3, storage=storage)]


def _held(storage: LedgerStorage, study: str = "s") -> int:
    """A trial of a new study ``study`` that this process moved to RUNNING (so holds)."""
    study_id = storage.create_new_study([StudyDirection.MINIMIZE], study_name=study)
    trial_id = storage.create_new_trial(study_id)
    InMemoryStorage.set_trial_state_values(storage, trial_id, TrialState.WAITING)
    storage.set_trial_state_values(trial_id, TrialState.RUNNING)
    storage.reads = 0
    return trial_id


def _fail_as_stale(storage: LedgerStorage, trial_id: int) -> None:
    """What another worker's stale-trial check does to a trial this process holds."""
    InMemoryStorage.set_trial_state_values(storage, trial_id, TrialState.FAIL)


def test_a_held_trial_failed_by_another_process_is_taken_and_released(
    storage: LedgerStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    trial_id = _held(storage)
    assert taken_trial(trial_id) is None  # still RUNNING: still this process's
    clock = ledger.time.monotonic()
    monkeypatch.setattr(ledger.time, "monotonic", lambda: clock + 12.4)  # a 12 s pause
    _fail_as_stale(storage, trial_id)
    taken = taken_trial(trial_id)
    assert isinstance(taken, TrialTaken) and not isinstance(taken, Exception)
    assert taken.line == (
        "trial 0 was taken from this worker (failed by a test's stale-trial check after ~12 s "
        "without its heartbeat); going on with the next trial"
    )
    assert held_trials() == []  # a stop now must not fail and re-queue it a second time
    assert noticed_taken(trial_id) is taken and taken_trial(trial_id) is taken


def test_a_trial_not_held_or_finished_otherwise_is_not_taken(storage: LedgerStorage) -> None:
    assert taken_trial(_new_trial(storage, TrialState.FAIL)) is None  # not held
    done = _held(storage, "t")
    InMemoryStorage.set_trial_state_values(storage, done, TrialState.COMPLETE, [1.0])
    assert taken_trial(done) is None  # held, but not failed as stale: not given up quietly


def test_an_on_time_heartbeat_reads_nothing_and_a_late_one_notices_a_taken_trial(
    storage: LedgerStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    trial_id = _held(storage)
    storage.record_heartbeat(trial_id)
    assert (storage.beats, storage.reads) == ([trial_id], 0)
    _fail_as_stale(storage, trial_id)
    clock = ledger.time.monotonic()
    monkeypatch.setattr(ledger.time, "monotonic", lambda: clock + 12)  # resumed after a pause
    storage.record_heartbeat(trial_id)
    taken = noticed_taken(trial_id)  # what training asks between two batches
    assert taken is not None and "after ~12 s" in str(taken)
    storage.record_heartbeat(trial_id)
    assert storage.beats == [trial_id]  # nothing more written to a trial no longer its own


def test_a_late_heartbeat_of_a_trial_still_running_is_sent(
    storage: LedgerStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    trial_id = _held(storage)
    clock = ledger.time.monotonic()
    monkeypatch.setattr(ledger.time, "monotonic", lambda: clock + 30)
    storage.record_heartbeat(trial_id)
    assert storage.beats == [trial_id] and noticed_taken(trial_id) is None


def test_a_trial_taken_just_after_its_late_heartbeat_was_sent_names_the_pause(
    storage: LedgerStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen in the chaos soak: a worker paused 11.5 s resumed, its late heartbeat found the
    # trial still RUNNING and was sent, and a stale-trial check that had read the old heartbeat
    # failed the trial a moment later; the worker said "after ~2 s without its heartbeat".
    trial_id = _held(storage)
    clock = ledger.time.monotonic()
    monkeypatch.setattr(ledger.time, "monotonic", lambda: clock + 12)  # resumed after a pause
    storage.record_heartbeat(trial_id)
    assert storage.beats == [trial_id]  # still RUNNING when it looked: sent
    _fail_as_stale(storage, trial_id)
    monkeypatch.setattr(ledger.time, "monotonic", lambda: clock + 14)
    taken = taken_trial(trial_id)
    assert taken is not None and "after ~12 s without its heartbeat" in str(taken), taken
