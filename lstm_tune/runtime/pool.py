"""A pool of worker processes on one machine (``lstm-tune search --workers N``).

N worker processes share one storage. The parent creates the study first (workers never race
to create it), forwards SIGTERM/SIGINT to the workers, gives them ``grace`` seconds to stop,
then kills what is left.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import IO

from lstm_tune.runtime.stop import STOP_SIGNALS

__all__ = ["DEFAULT_STOP_GRACE", "POOL_PARENT_ENV", "PoolResult", "run_pool", "stop_with_pool"]

# How long the pool waits for its workers after forwarding a stop signal before SIGKILL.
# Docker's default stop timeout is 10 s; compose gives workers 30 s. A worker stops within one
# Keras batch plus two storage writes, so 25 s leaves room even for a slow database.
DEFAULT_STOP_GRACE = 25.0
# prctl(2) option: the signal a process gets when its parent dies (Linux).
PR_SET_PDEATHSIG = 1
# How a pool tells each worker its own pid, for :func:`stop_with_pool`.
POOL_PARENT_ENV = "LSTM_TUNE_POOL_PARENT_PID"


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


def stop_with_pool(parent_pid: int) -> None:
    """In a pool's worker, first thing: SIGTERM this process when the pool's process dies.

    A pool parent killed with SIGKILL cannot forward a stop; without this its workers would
    die of a broken pipe mid-trial, and a trial that ends with a crash is not re-queued.
    SIGTERM takes the worker's graceful path: the running trial is failed and re-queued.
    Linux only (prctl); elsewhere the heartbeat recovers the trial instead.

    The worker sets this itself after it starts, not in a ``preexec_fn`` of the pool: a
    ``preexec_fn`` makes ``subprocess`` fork() the whole parent, running gRPC's fork handlers,
    and beside a live gRPC channel (a pool on a ``grpc://`` storage) the child then aborts
    now and then with "epoll_wait error: Bad file descriptor" (grpc/grpc#43055; measured 6
    aborts in 300 starts, 0 without ``preexec_fn``). Without one, Python starts the worker
    with vfork, which runs no fork handlers.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() != parent_pid:  # the pool died before prctl: no signal would ever come
        os.kill(os.getpid(), signal.SIGTERM)


def run_pool(
    worker_argv: Callable[[int], Sequence[str]],
    n_workers: int,
    *,
    say: Callable[[str], None],
    grace: float = DEFAULT_STOP_GRACE,
    env: Mapping[str, str] | None = None,
) -> PoolResult:
    """Run ``n_workers`` worker processes (``worker_argv(index)``) until all have exited.

    Each worker's output lines go to ``say`` prefixed with ``[wN]``, one call a line and one
    line at a time (``say`` is called from a thread per worker). SIGTERM or SIGINT
    to this process is forwarded to every worker as SIGTERM; workers still alive ``grace``
    seconds later are killed. ``env`` (default: this process's environment) is the
    workers' environment (secrets such as the storage URL go there, never on a command line,
    which every user of the machine can read); :data:`POOL_PARENT_ENV` is added to it, so a
    worker that calls :func:`stop_with_pool` stops when this process dies.
    """
    worker_env = {**(os.environ if env is None else env), POOL_PARENT_ENV: str(os.getpid())}
    say_lock = threading.Lock()
    procs: list[subprocess.Popen[str]] = []
    copiers: list[threading.Thread] = []
    stopped_by: list[str] = []

    def copy_output(index: int, pipe: IO[str]) -> None:
        for line in pipe:
            text = line.removesuffix("\n")
            with say_lock:
                say(f"[w{index}] {text}")

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
                env=worker_env,
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
                        with say_lock:
                            say(
                                f"[pool] worker pid {proc.pid} did not stop within {grace:g}s; "
                                f"killed (its trial is re-queued by the heartbeat)"
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
