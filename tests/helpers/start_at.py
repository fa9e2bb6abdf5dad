"""Run ``lstm-tune ARGS --storage URL`` in N processes that start at one instant, once per
URL: ``start_at.py N LOGS URL [URL ...] -- ARGS``.

Processes started one after another reach the database tens of milliseconds apart, and each
spends seconds on its imports first. This one imports what the command needs once; for each
URL in turn (a round) it forks N processes that block on one pipe, and closes it: every
process wakes at the same moment and races for the database as workers that compose starts
together do. Each one's output goes to ``LOGS/<round>-<i>.log``; this process prints each
round's exit codes on one line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import optuna  # noqa: F401  (loaded before the fork: the race is the storage's, not the imports')
import sqlalchemy  # noqa: F401

import lstm_tune.storages  # noqa: F401
import lstm_tune.tasks.text_classification.task  # noqa: F401  (the study's task: sklearn)
import lstm_tune.tuning.studies  # noqa: F401
from lstm_tune.cli import main


def _racer(go: int, log: Path, argv: list[str]) -> int:
    """In a forked process: wait for the start, run the command with its output in ``log``."""
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    while os.read(go, 1):  # b"" once the starter has closed its end
        pass
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def race(count: int, logs: Path, argv: list[str]) -> list[int]:
    """Fork ``count`` racers, start them together, and return their exit codes in order;
    racer ``i`` writes to ``logs`` with ``-<i>.log`` appended."""
    go_read, go_write = os.pipe()
    sys.stdout.flush()
    pids = []
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            os.close(go_write)
            os._exit(_racer(go_read, Path(f"{logs}-{index}.log"), argv))
        pids.append(pid)
    os.close(go_read)
    os.close(go_write)  # the start: every racer's read returns at once
    return [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]


if __name__ == "__main__":
    split = sys.argv.index("--")
    count, logs, urls, args = (
        int(sys.argv[1]),
        Path(sys.argv[2]),
        sys.argv[3:split],
        sys.argv[split + 1 :],
    )
    for round_, url in enumerate(urls):
        codes = race(count, logs / str(round_), [*args, "--storage", url])
        print(" ".join(str(code) for code in codes), flush=True)
