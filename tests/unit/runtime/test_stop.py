"""The graceful stop's record of held trials when a stop has to be delivered again."""

from __future__ import annotations

import os
import signal
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from lstm_tune.runtime import stop as stop_module
from lstm_tune.runtime.stop import StopRecord, StopRequested, graceful_stop
from lstm_tune.storages.ledger import held_trials, hold
from tests.helpers.ledger import LedgerStorage


def test_a_stop_delivered_again_still_names_the_trial_held_when_the_signal_came() -> None:
    # Found by the chaos soak (issue 33): a worker SIGTERMed mid-trial on a busy machine said
    # "no trial was running" and its trial's params were never re-queued. Optuna failed the
    # interrupted trial (off the ledger) and took longer than the redelivery interval to
    # re-raise the stop; the redelivered stop, made then, named no held trial.
    storage = LedgerStorage()
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    hold(storage, trial._trial_id, study._study_id)
    with pytest.raises(StopRequested) as stop, graceful_stop():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except StopRequested:
            study.tell(trial, state=TrialState.FAIL)  # what Optuna does with the trial
        assert not held_trials()
        time.sleep(10)  # the first stop was swallowed: it is delivered again
    assert [held.trial_id for held in stop.value.held] == [trial._trial_id]


def test_a_redelivery_that_wakes_as_the_block_ends_sends_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Found by the chaos soak: the redelivery thread woke just before the block ended and
    # signalled after the default handlers were back, so SIGTERM's default action ended the
    # worker before it re-queued the trial it had stopped (its config lost, no line said).
    sent: list[int] = []
    monkeypatch.setattr(stop_module, "_signal_main_thread", sent.append)
    monkeypatch.setattr(stop_module, "REDELIVER_AFTER_SECONDS", 0.01)
    record = StopRecord()
    record.closing.set()  # the block is ending; left_block is not set yet
    redeliver = threading.Event()
    thread = threading.Thread(
        target=stop_module._redeliver_until_out,
        args=(record, redeliver, signal.SIGTERM),
        daemon=True,
    )
    thread.start()
    thread.join(timeout=5)
    assert not thread.is_alive() and sent == []


@pytest.mark.parametrize("closing", [True, False])
def test_a_stop_a_finalizer_swallowed_is_sent_again_only_while_the_block_runs(
    monkeypatch: pytest.MonkeyPatch, closing: bool
) -> None:
    # Found by the direct chaos soak: a pool worker orphaned mid-trial exited -15 (SIGTERM's
    # default action) with its trial FAIL and no copy. Garbage collection after Optuna failed
    # the trial swallowed a redelivered stop; the stop sent again 10 ms later landed after the
    # block had put the default handlers back, before the worker re-queued the trial.
    sent: list[int] = []
    monkeypatch.setattr(stop_module, "_signal_main_thread", sent.append)
    record = StopRecord()
    if closing:
        record.closing.set()
    stop_module._interrupt_main_soon(record, signal.SIGTERM)
    assert sent == ([] if closing else [signal.SIGTERM])
