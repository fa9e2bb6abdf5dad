"""Stopping a worker cleanly, and a pool of worker processes on one machine.

A worker that gets SIGTERM (``docker compose stop``) or SIGINT (Ctrl-C) stops between two
Keras batches, never in the middle of a storage write. The trial it was running does not stay
RUNNING: it is failed and a copy with the same params is queued for another worker, unless it
had already finished; :func:`release_held_trials` says which.

A local pool (``lstm-tune search --workers N``) is N such worker processes on one storage.
The parent creates the study first (workers never race to create it), forwards SIGTERM/SIGINT
to the workers, gives them ``grace`` seconds to stop, then kills what is left.
"""

from __future__ import annotations

import _thread
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import IO, Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

from lstm_tune.storage import HeldTrial, held_trials, raise_when_safe

__all__ = [
    "BudgetGate",
    "DEFAULT_STOP_GRACE",
    "STOP_SIGNALS",
    "PoolResult",
    "StopRecord",
    "StopRequested",
    "exit_now",
    "graceful_stop",
    "release_held_trials",
    "run_pool",
    "stop_behind",
]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# How long the pool waits for its workers after forwarding a stop signal before SIGKILL.
# Docker's default stop timeout is 10 s; compose gives workers 30 s. A worker stops within one
# Keras batch plus two storage writes, so 25 s leaves room even for a slow database.
DEFAULT_STOP_GRACE = 25.0
# prctl(2) option: the signal a process gets when its parent dies (Linux).
PR_SET_PDEATHSIG = 1
# How often a worker waiting at the end of the budget looks whether it is still needed.
BUDGET_POLL_SECONDS = 2.0
_COUNTED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


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
        if stopping.is_set() and not redeliver.is_set():
            return
        stopping.set()
        redeliver.clear()
        stop = StopRequested(signum, held_trials())
        if record.requested is None:
            record.requested = stop
            # TensorFlow can swallow the exception whole while it traces a graph, and the
            # trial then trains on as if no signal had come: raise it again until it leaves.
            _thread.start_new_thread(_redeliver_until_out, (record, redeliver, signum))
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
            _thread.start_new_thread(_interrupt_main_soon, (info.exc_value.signum,))
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
        record.left_block.set()
        optuna_log.removeFilter(quiet)
        sys.unraisablehook = previous_hook
        for sig, old in previous.items():
            signal.signal(sig, old)


def _redeliver_until_out(record: StopRecord, redeliver: threading.Event, signum: int) -> None:
    while not record.left_block.wait(REDELIVER_AFTER_SECONDS):
        redeliver.set()
        _signal_main_thread(signum)


# A stop that has not left the graceful_stop block after this long was lost; raise it again.
REDELIVER_AFTER_SECONDS = 2.0


def _interrupt_main_soon(signum: int) -> None:
    time.sleep(0.01)  # let the finalizer that swallowed the stop return first
    _signal_main_thread(signum)


def _signal_main_thread(signum: int) -> None:
    # A real signal, so a main thread blocked in a sleep or a wait wakes up for it too.
    main_id = threading.main_thread().ident
    assert main_id is not None
    signal.pthread_kill(main_id, signum)


def exit_now(code: int) -> None:
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
        if trial.state == TrialState.RUNNING:
            storage.set_trial_state_values(item.trial_id, TrialState.FAIL)
            trial = storage.get_trial(item.trial_id)
        if trial.state == TrialState.FAIL:
            study = optuna.load_study(
                study_name=storage.get_study_name_from_id(item.study_id), storage=storage
            )
            with warnings.catch_warnings():  # Optuna marks the retry callback experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                RetryHeartbeatStaleTrialCallback()(study, trial)
            copies = [
                t.number
                for t in study.get_trials(deepcopy=False)
                if t.system_attrs.get("retry_history", [])[-1:] == [trial.number]
            ]
            again = f"trial {max(copies)}" if copies else "a new trial"
            line = (
                f"{stop.signame}: trial {trial.number} failed and re-queued; "
                f"its params run again as {again}"
            )
        else:
            line = (
                f"{stop.signame}: trial {trial.number} finished ({trial.state.name}) "
                f"before the worker stopped"
            )
        lines.append(line)
        say(line)
    return lines


class BudgetGate:
    """Study callback: do not start a trial the budget will not need.

    After each trial, a worker whose next trial would overshoot the budget (finished plus
    running elsewhere already reach it) waits instead: if a running trial fails or its worker
    dies (its heartbeat goes stale and it is re-queued), the waiting worker runs the missing
    trial; if they all finish, the budget is met exactly and every worker stops. Without
    heartbeats a dead worker's trial would look alive forever, so the gate does not wait then.
    """

    def __init__(self, budget: int, *, poll: float = BUDGET_POLL_SECONDS) -> None:
        self.budget = budget
        self.poll = poll

    def __call__(self, study: optuna.study.Study, trial: FrozenTrial) -> None:
        if not is_heartbeat_enabled(study._storage):
            return
        while True:
            with warnings.catch_warnings():  # Optuna marks fail_stale_trials experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False, states=_COUNTED_STATES)
            finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
            running = len(trials) - finished
            if finished >= self.budget or finished + running < self.budget:
                return
            time.sleep(self.poll)


@dataclass(frozen=True)
class PoolResult:
    """How a local pool ended: each worker's exit code, and the signal that stopped it."""

    exit_codes: list[int]
    stopped_by: str | None

    @property
    def exit_code(self) -> int:
        """0 when every worker exited 0; else the signal's code, or the first failure."""
        if self.stopped_by is not None:
            return 128 + int(signal.Signals[self.stopped_by])
        return next((code for code in self.exit_codes if code != 0), 0)


def _stop_when_parent_dies() -> None:
    """In a worker, before it runs: SIGTERM it when the pool's process dies (Linux).

    A pool parent killed with SIGKILL cannot forward a stop; without this its workers would
    die of a broken pipe mid-trial, and a trial that ends with a crash is not re-queued.
    SIGTERM takes the worker's graceful path: the running trial is failed and re-queued.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the heartbeat recovers the trial instead
        pass


def run_pool(
    worker_argv: Callable[[int], Sequence[str]],
    n_workers: int,
    *,
    out: IO[str] | None = None,
    grace: float = DEFAULT_STOP_GRACE,
    env: Mapping[str, str] | None = None,
) -> PoolResult:
    """Run ``n_workers`` worker processes (``worker_argv(index)``) until all have exited.

    Each worker's output lines are copied to ``out`` prefixed with ``[wN]``. SIGTERM or SIGINT
    to this process is forwarded to every worker as SIGTERM; workers still alive ``grace``
    seconds later are killed; if this process dies, its workers get SIGTERM. ``env`` is the
    workers' environment (secrets such as the storage URL go there, never on a command line,
    which every user of the machine can read).
    """
    stream = out or sys.stdout
    write_lock = threading.Lock()
    procs: list[subprocess.Popen[str]] = []
    copiers: list[threading.Thread] = []
    stopped_by: list[str] = []

    def copy_output(index: int, pipe: IO[str]) -> None:
        for line in pipe:
            with write_lock:
                stream.write(f"[w{index}] {line}")
                stream.flush()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not stopped_by:
            stopped_by.append(signal.Signals(signum).name)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        for index in range(n_workers):
            proc = subprocess.Popen(
                list(worker_argv(index)),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                env=None if env is None else dict(env),
                preexec_fn=_stop_when_parent_dies,  # noqa: PLW1509  # no threads run yet in it
            )
            procs.append(proc)
            assert proc.stdout is not None
            copier = threading.Thread(target=copy_output, args=(index, proc.stdout), daemon=True)
            copier.start()
            copiers.append(copier)
        deadline: float | None = None
        while any(proc.poll() is None for proc in procs):
            if stopped_by and deadline is None:
                deadline = time.monotonic() + grace
            if deadline is not None and time.monotonic() > deadline:
                for proc in procs:
                    if proc.poll() is None:
                        proc.kill()
                        with write_lock:
                            stream.write(
                                f"[pool] worker pid {proc.pid} did not stop within {grace:g}s; "
                                f"killed (its trial is re-queued by the heartbeat)\n"
                            )
            time.sleep(0.2)  # how often the parent looks; it has nothing else to do
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    for copier in copiers:
        copier.join(timeout=5)
    return PoolResult(
        [int(proc.returncode) for proc in procs], stopped_by[0] if stopped_by else None
    )
