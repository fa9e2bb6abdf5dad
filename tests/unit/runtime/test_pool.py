"""A local pool (lstm_tune.runtime.pool) of small real processes: each worker's lines reach
``say`` whole and marked with the worker, in the environment given, and the pool's exit code
is the first failure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from lstm_tune.runtime.pool import POOL_PARENT_ENV, run_pool
from tests.helpers.workers import process_alive, wait_for

# Worker INDEX: two lines, the last without a newline, then exit with code INDEX.
WORKER = (
    "import os, sys; index = int(sys.argv[1]); "
    "sys.stdout.write(f'hello {os.environ[\"GREETING\"]}\\nlast line'); sys.exit(index)"
)


def test_each_worker_line_reaches_say_marked_with_its_worker() -> None:
    said: list[str] = []
    result = run_pool(
        lambda index: [sys.executable, "-c", WORKER, str(index)],
        3,
        say=said.append,
        env={"GREETING": "pool"},
    )
    assert result.exit_codes == [0, 1, 2] and result.stopped_by is None
    assert result.exit_code == 1  # the first failure
    assert sorted(said) == sorted(
        f"[w{index}] {line}" for index in range(3) for line in ("hello pool", "last line")
    )
    for index in range(3):  # one worker's lines keep their order
        mine = [line for line in said if line.startswith(f"[w{index}]")]
        assert mine == [f"[w{index}] hello pool", f"[w{index}] last line"]


def test_each_worker_is_told_the_pools_pid() -> None:
    said: list[str] = []
    show_parent = f"import os; print(os.environ[{POOL_PARENT_ENV!r}])"
    run_pool(lambda index: [sys.executable, "-c", show_parent], 2, say=said.append, env={})
    assert sorted(said) == [f"[w0] {os.getpid()}", f"[w1] {os.getpid()}"]


# A pool (its own process) of one worker that says its pid and then waits to be stopped.
POOL = f"""
import sys
from lstm_tune.runtime.pool import run_pool
WORKER = (
    "import os, sys, time; from lstm_tune.runtime.pool import stop_with_pool; "
    "stop_with_pool(int(os.environ[{POOL_PARENT_ENV!r}])); print(os.getpid(), flush=True); "
    "time.sleep(120)"
)
run_pool(lambda index: [sys.executable, "-c", WORKER], 1, say=lambda line: print(line, flush=True))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_worker_stops_when_its_pool_is_killed() -> None:
    pool = subprocess.Popen([sys.executable, "-c", POOL], stdout=subprocess.PIPE, text=True)
    try:
        assert pool.stdout is not None
        worker = int(pool.stdout.readline().split()[-1])  # "[w0] PID"
        pool.send_signal(signal.SIGKILL)
        pool.wait(timeout=10)
        wait_for("the worker to stop with its killed pool", lambda: not process_alive(worker), 10)
    finally:
        pool.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_worker_whose_pool_died_before_it_started_stops_at_once() -> None:
    # Its parent here is this test, not the pid it is given: as if the pool had died already.
    orphan = "from lstm_tune.runtime.pool import stop_with_pool; stop_with_pool(0); print('ran')"
    done = subprocess.run([sys.executable, "-c", orphan], capture_output=True, text=True)
    assert done.returncode == -signal.SIGTERM and "ran" not in done.stdout
