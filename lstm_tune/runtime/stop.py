"""Stopping a worker cleanly.

A worker that gets SIGTERM (``docker compose stop``) or SIGINT (Ctrl-C) stops between two
Keras batches, never in the middle of a storage write. The trial it was running does not stay
RUNNING: it is failed and a copy with the same params is queued for another worker, unless it
had already finished; :func:`release_held_trials` says which.
"""

from __future__ import annotations

import _thread
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn

import optuna
from optuna.trial import TrialState

from lstm_tune.storages import HeldTrial, held_trials, raise_when_safe
from lstm_tune.storages.requeue import requeue_failed

__all__ = [
    "STOP_SIGNALS",
    "StopRecord",
    "StopRequested",
    "exit_now",
    "graceful_stop",
    "release_held_trials",
    "stop_behind",
]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequested(KeyboardInterrupt):
    """Raised in the main thread when the worker is told to stop (SIGTERM or SIGINT).

    A KeyboardInterrupt, so Optuna marks the running trial FAIL and re-raises it, and code
    that catches ``Exception`` (a training loop, a callback) does not swallow it.
    """

    def __init__(self, signum: int, held: Sequence[HeldTrial] = ()) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.signame = signal.Signals(signum).name
        # The trials this process held when the signal came: Optuna fails an interrupted
        # trial (which takes it off the ledger) before anyone can ask the ledger again.
        self.held = list(held)


class StopRecord:
    """What :func:`graceful_stop` raised, kept for when the exception does not arrive intact.

    A stop raised while TensorFlow traces a graph (the first batches of a trial) can come out
    of TensorFlow as another error without a link back to it (CI saw exit 1 instead of 143).
    """

    def __init__(self) -> None:
        self.requested: StopRequested | None = None
        # Set once an exception has left the block (the stop arrived, in some form).
        self.left_block = threading.Event()
        # Set first thing when the block ends: a stop delivered again from then on is dropped.
        self.closing = threading.Event()
        # Held while a redelivery checks ``closing`` and sends its signal, so that none is sent
        # once the block has put the default handlers back (SIGTERM's default ends the process
        # before the worker has re-queued the trial it stopped: the chaos soak saw 3 of 29
        # SIGTERMed workers on a busy machine vanish that way, their configs lost).
        self.redelivery = threading.Lock()


@contextmanager
def graceful_stop() -> Iterator[StopRecord]:
    """Turn SIGTERM and SIGINT into :class:`StopRequested` while the block runs.

    The exception is raised at once unless the main thread is inside a storage call, in which
    case it is raised when that call returns (a half-done commit could strand a trial).
    A second signal while already stopping is ignored: the first one is being honoured.
    The yielded record holds the first stop raised, for :func:`stop_behind`.
    """
    record = StopRecord()
    if threading.current_thread() is not threading.main_thread():
        yield record  # only the main thread may handle signals (e.g. a search in a server)
        return
    stopping = threading.Event()
    redeliver = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if record.closing.is_set() or (stopping.is_set() and not redeliver.is_set()):
            return
        stopping.set()
        redeliver.clear()
        if record.requested is None:
            stop = StopRequested(signum, held_trials())
            record.requested = stop
            # TensorFlow can swallow the exception whole while it traces a graph, and the
            # trial then trains on as if no signal had come: raise it again until it leaves.
            _thread.start_new_thread(_redeliver_until_out, (record, redeliver, signum))
        else:
            # Delivered again: still the trials held when the signal first came. Optuna may
            # have failed the interrupted trial meanwhile (which takes it off the ledger) and
            # taken more than the redelivery interval to re-raise the first stop (its clean-up
            # garbage-collects a trial's TensorFlow graphs: seconds on a busy machine); a stop
            # that then named only what is held now would not re-queue that trial's params.
            first = record.requested.held
            now = [h for h in held_trials() if h.trial_id not in {f.trial_id for f in first}]
            stop = StopRequested(signum, [*first, *now])
        raise_when_safe(stop)

    def unraisable(info: Any) -> None:
        # A signal handler's exception raised inside a finalizer (__del__, a weakref callback,
        # e.g. during garbage collection) is printed and dropped by Python: the stop would be
        # lost. Deliver it again to the main thread, outside that finalizer.
        if isinstance(info.exc_value, StopRequested):
            redeliver.set()
            # From a bare thread (threading.Thread.start would block here, and the main thread
            # would run the handler inside this hook again): raised at the main thread's next
            # step, outside the finalizer.
            _thread.start_new_thread(_interrupt_main_soon, (record, info.exc_value.signum))
            return
        previous_hook(info)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = unraisable
    quiet = _NoTracebackForStop(record)
    optuna_log = logging.getLogger("optuna.study._optimize")
    optuna_log.addFilter(quiet)
    try:
        yield record
    finally:
        record.closing.set()
        with record.redelivery:  # a redelivery under way has sent its signal (then ignored)
            record.left_block.set()
        optuna_log.removeFilter(quiet)
        sys.unraisablehook = previous_hook
        for sig, old in previous.items():
            signal.signal(sig, old)


def _redeliver_until_out(record: StopRecord, redeliver: threading.Event, signum: int) -> None:
    while not record.left_block.wait(REDELIVER_AFTER_SECONDS):
        with record.redelivery:
            if record.closing.is_set():
                return  # the block is ending: its handlers may already be the defaults
            redeliver.set()
            _signal_main_thread(signum)


# A stop that has not left the graceful_stop block after this long was lost; raise it again.
REDELIVER_AFTER_SECONDS = 2.0


def _interrupt_main_soon(record: StopRecord, signum: int) -> None:
    """Signal the main thread again a moment after a finalizer swallowed the stop, unless the
    block is ending by then: like a redelivery, it must not land once the default handlers are
    back. Unguarded, it could: Optuna fails the interrupted trial, its clean-up's garbage
    collection swallows a redelivered stop, the block ends within the 10 ms, and SIGTERM's
    default action kills the worker before it re-queues the trial's params. The direct chaos
    soak's one lost config fits this (its orphaned worker exited -15, its trial FAIL with no
    copy); its output was lost with its pool, so that is not confirmed."""
    time.sleep(0.01)  # let the finalizer that swallowed the stop return first
    with record.redelivery:
        if record.closing.is_set():
            return
        _signal_main_thread(signum)


def _signal_main_thread(signum: int) -> None:
    # A real signal, so a main thread blocked in a sleep or a wait wakes up for it too.
    main_id = threading.main_thread().ident
    assert main_id is not None
    signal.pthread_kill(main_id, signum)


def exit_now(code: int) -> NoReturn:
    """Flush output and end the process at once with ``code``, skipping interpreter clean-up.

    For a worker that was told to stop and has released its trials: tearing TensorFlow down
    in the middle of an epoch takes seconds (6-7 s measured on a busy 2-core machine) of the
    grace period Docker gives before SIGKILL, and nothing is left to save.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def stop_behind(exc: BaseException, record: StopRecord | None = None) -> StopRequested | None:
    """The :class:`StopRequested` that ``exc`` is, was raised while handling, or replaced.

    A stop raised right after a storage write inside Optuna's bookkeeping can surface as
    another error (e.g. Optuna's own clean-up failing on it), and one raised inside
    TensorFlow's graph tracing can come out as an unrelated error; either way the stop is
    what happened, so once ``record`` holds a stop, any error leaving the block is that stop.
    """
    seen: BaseException | None = exc
    for _ in range(10):  # exception chains here are a few links long
        if seen is None:
            break
        if isinstance(seen, StopRequested):
            return seen
        seen = seen.__context__ or seen.__cause__
    return record.requested if record is not None else None


class _NoTracebackForStop(logging.Filter):
    """Optuna logs a failed trial with its traceback; a requested stop is not a crash.

    Judged by :func:`stop_behind`, so a stop that TensorFlow turned into another error is
    quiet too, as it is a stop everywhere else.
    """

    def __init__(self, stop_record: StopRecord) -> None:
        super().__init__()
        self.stop_record = stop_record

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and stop_behind(error, self.stop_record) is not None:
            record.exc_info = None
        return True


def release_held_trials(stop: StopRequested, say: Callable[[str], None]) -> list[str]:
    """Fail and re-queue the trials this process held when ``stop`` came; ``say`` which.

    A trial Optuna already failed (the objective was interrupted) or that is still RUNNING
    (the stop came around the objective) is failed and its params are queued again; a trial
    that finished meanwhile is left as it is. Returns the lines said.
    """
    lines: list[str] = []
    trials = {item.trial_id: item for item in [*stop.held, *held_trials()]}
    if not trials:
        line = f"{stop.signame}: no trial was running"
        say(line)
        return [line]
    for item in trials.values():
        storage = item.storage
        trial = storage.get_trial(item.trial_id)
        if trial.state in (TrialState.RUNNING, TrialState.FAIL):
            study = optuna.load_study(
                study_name=storage.get_study_name_from_id(item.study_id), storage=storage
            )
            # A stop is not the config's fault: no max_requeue here (None: no limit). The copy
            # is queued before the FAIL, so a worker killed between the two loses nothing.
            requeued = requeue_failed(study, trial, None)
            if trial.state == TrialState.RUNNING:
                storage.set_trial_state_values(item.trial_id, TrialState.FAIL)
            if requeued.copy is not None:
                line = (
                    f"{stop.signame}: trial {trial.number} failed and re-queued; "
                    f"its params run again as trial {requeued.copy}"
                )
            else:
                line = (
                    f"{stop.signame}: trial {trial.number} failed; not re-queued, "
                    f"{requeued.why_not}"
                )
        else:
            line = (
                f"{stop.signame}: trial {trial.number} finished ({trial.state.name}) "
                f"before the worker stopped"
            )
        lines.append(line)
        say(line)
    return lines
