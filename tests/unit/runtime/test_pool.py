"""A local pool (lstm_tune.runtime.pool) of small real processes: each worker's lines reach
``say`` whole and marked with the worker, in the environment given, and the pool's exit code
is the first failure."""

from __future__ import annotations

import sys

from lstm_tune.runtime.pool import run_pool

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
