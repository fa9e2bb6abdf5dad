"""A worker paused past the grace period (SIGSTOP, as a VM migration or a swap storm pauses
it) whose trial another worker or the proxy failed as stale meanwhile: once resumed it drops
that trial in one line and goes on, directly on PostgreSQL and behind the gRPC proxy.

Real `lstm-tune search` processes on real IMDB reviews (issue 33, item 1).
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState

from lstm_tune.tuning.studies import WORKER_ATTR
from tests.helpers.servers import storage_proxy
from tests.helpers.workers import review_study, search_argv, start_worker, trials_of, wait_for

# The settings; the pause is the 12 s, past the 8 s grace period.
HEARTBEAT = "heartbeat_interval=2&grace_period=8"
PAUSE_SECONDS = 12.0
BUDGET = 3  # the re-queued copy, the resumed worker's own trial, one more
TAKEN_LINE = re.compile(
    r"trial (\d+) was taken from this worker \(failed by (another worker's stale-trial check|"
    r"the storage proxy's stale-trial sweep) after ~\d+ s without its heartbeat\); "
    r"going on with the next trial"
)


@pytest.fixture(scope="module")
def taken_study(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 reviews, a 4-8 unit LSTM, 25 epochs: a trial lasts several seconds (about 8 on a
    quiet 2-core machine; 3 epochs took 2.3 s there, too short to be caught mid-trial over a
    heartbeat interval in)."""
    return review_study(
        tmp_path_factory.mktemp("taken"), shared_data, name="pool", seed=5, epochs=25,
        search={"n_trials": BUDGET, "sampler": {"name": "random"}, "pruner": {"name": "none"}},
    )  # fmt: skip


def _pause_outside_a_transaction(victim: subprocess.Popen[bytes], database: str) -> None:
    """SIGSTOP ``victim`` at a moment it has no database transaction open.

    A process paused inside a transaction holds its row locks: the stale-trial check then
    waits for it to resume (a PostgreSQL matter, not this test's), so try again a moment later.
    """
    engine = sqlalchemy.create_engine(database.split("?")[0], poolclass=sqlalchemy.NullPool)
    open_transactions = sqlalchemy.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
    )
    try:
        for _ in range(50):
            victim.send_signal(signal.SIGSTOP)
            time.sleep(0.2)
            with engine.connect() as connection:
                if not connection.execute(open_transactions).scalar_one():
                    return
            victim.send_signal(signal.SIGCONT)
            time.sleep(0.3)
        raise AssertionError("the victim was always inside a transaction")
    finally:
        engine.dispose()


def _snapshot(trial: FrozenTrial) -> tuple[object, ...]:
    """Everything a worker could still write to a trial."""
    return (
        trial.state,
        trial.values,
        trial.datetime_complete,
        trial.user_attrs,
        trial.system_attrs,
        trial.intermediate_values,
    )


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("via", ["direct", "proxy"])
def test_a_worker_whose_trial_was_taken_while_paused_goes_on_with_the_next(
    via: str, taken_study: Path, pg_url: str, tmp_path: Path
) -> None:
    database = f"{pg_url}?{HEARTBEAT}"
    logs = [tmp_path / "victim.log", tmp_path / "other.log"]
    proxy_log = tmp_path / "proxy.log"
    with contextlib.ExitStack() as stack:
        url = database
        if via == "proxy":
            address = stack.enter_context(storage_proxy(database, proxy_log))
            url = f"{address}?heartbeat_interval=2&retry_timeout=30"
        argv = search_argv(taken_study, "--storage", url, "--n-trials", str(BUDGET))
        victim = start_worker(argv, logs[0])
        stack.callback(victim.kill)

        def running_with_a_heartbeat() -> list[FrozenTrial]:
            # Over a heartbeat interval into its trial: its heartbeat is in the database.
            return [
                t
                for t in trials_of(database)
                if t.state == TrialState.RUNNING and time.time() - t.datetime_start.timestamp() > 3  # type: ignore[union-attr]
            ]

        wait_for("the victim mid-trial", lambda: bool(running_with_a_heartbeat()), 120)
        if via == "direct":  # behind the proxy, the proxy holds the transactions
            _pause_outside_a_transaction(victim, database)
        else:
            victim.send_signal(signal.SIGSTOP)
        paused_at = time.monotonic()
        (held,) = running_with_a_heartbeat()
        other = start_worker(argv, logs[1])
        stack.callback(other.kill)

        def taken() -> FrozenTrial | None:
            trial = next(t for t in trials_of(database) if t.number == held.number)
            return trial if trial.state == TrialState.FAIL else None

        wait_for("the paused worker's trial to be failed as stale", lambda: bool(taken()), 60)
        time.sleep(max(0.0, paused_at + PAUSE_SECONDS - time.monotonic()))
        before = taken()
        assert before is not None
        victim.send_signal(signal.SIGCONT)
        resumed_at = time.monotonic()

        assert victim.wait(timeout=120) == 0, logs[0].read_text()[-3000:]
        assert other.wait(timeout=120) == 0, logs[1].read_text()[-3000:]

    victim_out = logs[0].read_text()
    outputs = [victim_out, logs[1].read_text(), proxy_log.read_text() if via == "proxy" else ""]
    assert not any("Traceback" in out for out in outputs), outputs
    # One line names the trial and the reason; nothing else about it.
    out_lines = victim_out.splitlines()
    said = [i for i, line in enumerate(out_lines) if "was taken from this worker" in line]
    assert len(said) == 1, victim_out[-3000:]
    line = TAKEN_LINE.fullmatch(out_lines[said[0]].strip())
    assert line is not None and line[1] == str(held.number), out_lines[said[0]]
    about_it = re.compile(rf"\btrial\s+{held.number}\b", re.IGNORECASE)
    assert not [line for line in out_lines[said[0] + 1 :] if about_it.search(line)]

    trials = trials_of(database)
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == BUDGET
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    after = next(t for t in trials if t.number == held.number)
    assert _snapshot(after) == _snapshot(before)  # its FAIL, attributes, artifacts untouched
    # The re-queued copy ran, and the resumed worker ran a trial of its own after the pause.
    assert any(t.system_attrs.get("failed_trial") == held.number for t in trials)
    mine = f"{socket.gethostname()}:{victim.pid}"
    assert any(t.user_attrs.get(WORKER_ATTR) == mine and t.number > held.number for t in trials), [
        (t.number, t.state.name, t.user_attrs.get(WORKER_ATTR)) for t in trials
    ]
    print(f"{via}: resumed worker finished {time.monotonic() - resumed_at:.1f}s after SIGCONT")
