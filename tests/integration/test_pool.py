"""Worker pools as users run them: real `lstm-tune search` processes, real IMDB reviews, real
PostgreSQL (shared server and a private cluster restarted mid-study) and SQLite.

Each trial trains a tiny LSTM on a few hundred reviews (seconds), so faults land mid-trial.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from optuna.trial import FrozenTrial, TrialState

from lstm_tune.runtime.stop import StopRequested, graceful_stop, stop_behind
from lstm_tune.runtime.workers_and_threads import threads_for, usable_cores
from tests.helpers import ROOT, require_or_skip
from tests.helpers.servers import api_url, dashboard_process, get_json
from tests.helpers.studies import write_study
from tests.helpers.workers import (
    process_alive,
    review_study,
    search_argv,
    start_worker,
    trials_of,
    wait_for,
    worker_env,
)  # fmt: skip

# Fast failure detection for the tests; the product defaults are 10 s / 60 s.
FAST_HEARTBEAT = "heartbeat_interval=1&grace_period=3"
# What Docker gives a container between SIGTERM and SIGKILL by default.
DOCKER_STOP_TIMEOUT = 10.0


class _SignalsFromAFinalizer:
    """Gets SIGTERM while Python runs its __del__ (as garbage collection may, mid-training)."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # the handler runs in here; Python drops what it raises


def test_a_stop_swallowed_by_a_finalizer_is_delivered_again() -> None:
    started = time.monotonic()
    with pytest.raises(StopRequested) as stop, graceful_stop():
        _SignalsFromAFinalizer()  # dropped at once
        time.sleep(5)
    assert stop.value.signame == "SIGTERM"
    assert time.monotonic() - started < 2


def test_a_stop_that_comes_out_as_another_error_is_still_the_stop() -> None:
    # TensorFlow's C++ layer, when a signal handler raises while it traces a graph, reports an
    # unrelated ValueError/SystemError that has no link to the stop (seen in CI: exit 1).
    unrelated = ValueError("The two structures don't have the same nested structure.")
    with pytest.raises(ValueError), graceful_stop() as record:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except StopRequested:
            pass  # swallowed, as the C++ layer does
        raise unrelated
    assert unrelated.__context__ is None
    stop = stop_behind(unrelated, record)
    assert stop is not None and stop.signame == "SIGTERM"


def test_optuna_logs_no_traceback_for_a_stop_that_came_out_as_another_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Optuna logs a failed trial's error with its traceback; after a stop that error is the
    # stop (stop_behind), so the worker's log must not look like a crash (seen in CI).
    optuna_log = logging.getLogger("optuna.study._optimize")
    with pytest.raises(ValueError), graceful_stop():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except StopRequested:
            pass
        try:
            raise ValueError("The two structures don't have the same sequence type.")
        except ValueError:
            optuna_log.warning("Trial 0 failed", exc_info=True)
            raise
    with pytest.raises(ValueError):
        try:
            raise ValueError("a real bug")
        except ValueError:
            optuna_log.warning("Trial 1 failed", exc_info=True)  # outside: no stop, traceback
            raise
    failed = {r.getMessage(): r.exc_info for r in caplog.records if "failed" in r.getMessage()}
    assert failed["Trial 0 failed"] is None
    assert failed["Trial 1 failed"] is not None


def test_a_stop_swallowed_whole_is_raised_again() -> None:
    # TensorFlow, tracing a graph, can swallow the stop without raising anything (seen in CI:
    # the worker trained on and exited 0). The stop must come back while the block still runs.
    started = time.monotonic()
    with pytest.raises(StopRequested) as stop, graceful_stop():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except StopRequested:
            pass  # swallowed whole
        time.sleep(10)
    assert stop.value.signame == "SIGTERM"
    assert time.monotonic() - started < 5


def test_an_error_without_a_stop_is_not_taken_for_one() -> None:
    with pytest.raises(ValueError) as error, graceful_stop() as record:
        raise ValueError("a real bug")
    assert stop_behind(error.value, record) is None


@pytest.fixture(scope="module")
def tiny_study(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study small enough that a trial takes seconds: 400 reviews, a 4-8 unit LSTM."""
    return review_study(
        tmp_path_factory.mktemp("pool"), shared_data, name="pool", seed=3, epochs=2,
        search={"n_trials": 4, "sampler": {"name": "random"}, "pruner": {"name": "none"}},
    )  # fmt: skip


def _states(trials: list[FrozenTrial]) -> Counter[str]:
    return Counter(t.state.name for t in trials)


def _finished(trials: list[FrozenTrial]) -> int:
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)


def _running(url: str) -> int:
    return _states(trials_of(url))["RUNNING"]


@pytest.mark.slow
def test_a_local_pool_on_the_default_sqlite_file_loses_no_trial(tiny_study: Path) -> None:
    db = tiny_study.parent / "pool.db"  # no --storage: the default file next to the study
    db.unlink(missing_ok=True)
    run = subprocess.run(
        search_argv(tiny_study, "--workers", "2", "--n-trials", "2"),
        capture_output=True, text=True, env=worker_env(), cwd=ROOT, timeout=400,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "pool finished: worker exit codes [0, 0]" in run.stdout
    assert "database is locked" not in run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    # Exactly the budget: no trial lost, none failed, none left RUNNING, none past the budget.
    assert _states(trials_of(f"sqlite:///{db}")) == Counter(COMPLETE=2)
    # Two workers share the usable cores: each states the threads TensorFlow gave it.
    each = threads_for(2, usable_cores()).intra
    for worker in ("w0", "w1"):
        assert f"[{worker}] TensorFlow threads: intra-op {each}, inter-op default" in run.stdout


@pytest.mark.slow
def test_workers_auto_fills_the_cores_and_each_worker_states_its_threads(
    tiny_study: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'auto.db'}"
    run = subprocess.run(
        search_argv(tiny_study, "--workers", "auto", "--n-trials", "2", "--storage", url),
        capture_output=True, text=True, env=worker_env(), cwd=ROOT, timeout=400,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    workers = min(usable_cores(), 2)  # the budget caps the rule's one worker per core
    assert f"--workers auto: {workers} worker(s)" in run.stdout, run.stdout[-3000:]
    if workers > 1:
        assert run.stdout.count("TensorFlow threads: intra-op 1, inter-op default") == workers
    assert _states(trials_of(url)) == Counter(COMPLETE=2)
    # The variable overrides the rule; "0" keeps TensorFlow's own default.
    again = subprocess.run(
        search_argv(tiny_study, "--workers", "auto", "--n-trials", "3", "--storage", url),
        capture_output=True, text=True, env={**worker_env(), "LSTM_TUNE_THREADS": "0"}, cwd=ROOT,
        timeout=400,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "TensorFlow threads: intra-op default, inter-op default" in again.stdout


@pytest.mark.slow
@pytest.mark.postgres
def test_three_workers_share_a_study_survive_a_sigkill_and_finish_exactly_the_budget(
    tiny_study: Path, pg_url: str, tmp_path: Path
) -> None:
    url = f"{pg_url}?{FAST_HEARTBEAT}"
    # Three workers started separately, the way workers on three machines join a pool. The
    # victim starts alone, so the trial RUNNING is its own and no other worker can end the
    # budget before it is caught mid-trial (on a quiet machine a tiny trial's epochs are too
    # short to catch reliably while three workers race through a budget of 4).
    logs = [tmp_path / f"w{i}.log" for i in range(3)]
    argv = search_argv(tiny_study, "--storage", url, "--n-trials", "4")
    victim = start_worker(argv, logs[0])

    def victim_mid_trial() -> bool:
        # Running for over a heartbeat interval (1 s): its heartbeat is in the database, so
        # the trial can be recognised as stale once the worker is dead.
        now = datetime.now()
        return any(
            t.state == TrialState.RUNNING
            and t.datetime_start is not None
            and (now - t.datetime_start).total_seconds() > 1.5
            for t in trials_of(url)
        )

    wait_for("the victim in the middle of a trial", victim_mid_trial, timeout=240)
    victim.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    victim.wait(timeout=10)
    survivors = [start_worker(argv, log) for log in logs[1:]]

    def requeued() -> bool:
        return any(t.system_attrs.get("failed_trial") is not None for t in trials_of(url))

    wait_for("the dead worker's trial to be re-queued", requeued, timeout=120)
    requeue_seconds = time.monotonic() - killed_at
    for survivor, log in zip(survivors, logs[1:], strict=True):
        assert survivor.wait(timeout=300) == 0, log.read_text()[-3000:]

    trials = trials_of(url)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1, _states(trials)
    rerun = [t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(rerun) == 1 and rerun[0].params == failed[0].params
    assert rerun[0].state == TrialState.COMPLETE
    # Exactly the budget, nothing RUNNING or WAITING: the killed trial cost time, not a trial.
    assert _states(trials) == Counter(COMPLETE=4, FAIL=1)
    # grace_period is 3 s; the rest is a survivor noticing at its next trial or while waiting.
    print(f"SIGKILL -> re-queue: {requeue_seconds:.1f}s")
    assert requeue_seconds < 60


@pytest.mark.slow
@pytest.mark.postgres
def test_workers_wait_out_a_database_restart_and_lose_no_trial(
    tiny_study: Path, private_pg: object, tmp_path: Path
) -> None:
    cluster = private_pg
    # grace_period (30 s) outlasts the outage, so no live trial is declared dead meanwhile.
    url = f"{cluster.url}?heartbeat_interval=1&grace_period=30"  # type: ignore[attr-defined]
    log = tmp_path / "pool.log"
    pool = start_worker(
        search_argv(tiny_study, "--storage", url, "--workers", "2", "--n-trials", "3"), log
    )
    wait_for(
        "a finished trial and one mid-trial",
        lambda: _finished(trials_of(url)) >= 1 and _running(url) >= 1,
        timeout=240,
    )
    before = {t.number: t.value for t in trials_of(url) if t.state == TrialState.COMPLETE}
    cluster.stop("fast")  # type: ignore[attr-defined]  # every connection is cut
    time.sleep(4.0)
    cluster.start()  # type: ignore[attr-defined]
    assert pool.wait(timeout=300) == 0, log.read_text()[-3000:]

    trials = trials_of(url)
    after = {t.number: t.value for t in trials if t.state == TrialState.COMPLETE}
    assert before.items() <= after.items()  # every trial completed before the restart is kept
    assert _states(trials) == Counter(COMPLETE=3)
    assert "unreachable" in log.read_text()  # the workers said they were waiting


@pytest.mark.slow
@pytest.mark.postgres
def test_sigterm_stops_a_worker_within_the_grace_period_and_requeues_its_trial(
    tiny_study: Path, pg_url: str, tmp_path: Path
) -> None:
    url = f"{pg_url}?{FAST_HEARTBEAT}"
    log = tmp_path / "w.log"
    worker = start_worker(search_argv(tiny_study, "--storage", url, "--n-trials", "4"), log)
    wait_for("a trial to start", lambda: _running(url) == 1)
    time.sleep(1.0)  # inside the trial, not at its edge
    worker.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    code = worker.wait(timeout=60)
    took = time.monotonic() - sent
    output = log.read_text()
    assert code == 128 + signal.SIGTERM, output[-3000:]
    print(f"SIGTERM -> exit: {took:.1f}s")
    assert took < DOCKER_STOP_TIMEOUT, f"took {took:.1f}s"
    trials = trials_of(url)
    assert _states(trials)["RUNNING"] == 0
    if "failed and re-queued" in output:
        failed = [t for t in trials if t.state == TrialState.FAIL]
        waiting = [t for t in trials if t.state == TrialState.WAITING]
        assert len(failed) == 1 and len(waiting) == 1
        assert waiting[0].params == failed[0].params
        assert f"trial {failed[0].number} failed and re-queued" in output
    else:  # the signal came as the trial ended
        assert "finished (" in output, output[-3000:]
    assert "stopped by SIGTERM" in output
    assert "Traceback" not in output  # a requested stop is not reported as a crash


def _requeued_cleanly(trials: list[FrozenTrial]) -> None:
    """No trial RUNNING, and every failed (interrupted) trial's config was queued again: a
    later trial has its params (still waiting, or already run by a worker that was alive)."""
    assert _states(trials)["RUNNING"] == 0, _states(trials)
    for failed in (t for t in trials if t.state == TrialState.FAIL):
        again = [
            t
            for t in trials
            if t.number > failed.number
            and failed.params in (t.params, t.system_attrs.get("fixed_params"))
        ]
        assert again, f"trial {failed.number} was interrupted and not re-queued"


@pytest.mark.slow
def test_sigkill_of_a_pools_parent_stops_its_workers_and_requeues_their_trials(
    tiny_study: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'orphans.db'}"
    log = tmp_path / "pool.log"
    parent = start_worker(
        search_argv(tiny_study, "--storage", url, "--workers", "2", "--n-trials", "8"), log
    )
    wait_for("both workers mid-trial", lambda: _running(url) == 2, timeout=240)
    time.sleep(1.0)  # inside the trials, not at their edges
    children = _children(parent.pid)
    assert len(children) == 2
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + DOCKER_STOP_TIMEOUT + 20
    while any(process_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(process_alive(pid) for pid in children), "workers outlived their killed parent"
    trials = trials_of(url)
    assert _states(trials)["FAIL"] >= 1, _states(trials)  # they were stopped mid-trial
    _requeued_cleanly(trials)


@pytest.mark.slow
def test_a_worker_whose_stdout_closes_finishes_its_budget(
    tiny_study: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'head.db'}"
    argv = search_argv(tiny_study, "--storage", url, "--n-trials", "2")
    worker = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=worker_env(), cwd=ROOT
    )
    assert worker.stdout is not None
    worker.stdout.read(150)  # what `lstm-tune search ... | head -c 150` reads
    worker.stdout.close()
    _, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err.decode()[-3000:]
    assert b"Traceback" not in err
    assert _states(trials_of(url)) == Counter(COMPLETE=2)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(line) for line in out.split()]


@pytest.mark.slow
@pytest.mark.postgres
def test_a_password_in_the_storage_url_appears_nowhere(
    tiny_study: Path, pg_url: str, tmp_path: Path
) -> None:
    # The shared server trusts local connections, so the passwords are carried, not checked.
    user_secret, query_secret = "s3cretUSERpw", "s3cretQUERYpw"
    scheme, rest = pg_url.split("://", 1)
    user, where = rest.split("@", 1)
    url = f"{scheme}://{user}:{user_secret}@{where}?password={query_secret}"
    # A careful user keeps the URL off the command line: the environment variable.
    env = {**worker_env(), "LSTM_TUNE_STORAGE": url}
    seen: list[str] = []
    log = tmp_path / "pool.log"
    with log.open("wb") as out:
        pool = subprocess.Popen(
            search_argv(tiny_study, "--workers", "2", "--n-trials", "2"),
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip
    while pool.poll() is None:  # every process's command line, as `ps` shows them to any user
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                seen.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
        time.sleep(0.3)
    outputs = {"search": log.read_text()}
    assert pool.returncode == 0, outputs["search"][-3000:]
    best, report = tmp_path / "best.yaml", tmp_path / "report.html"
    for name, argv in {
        "export-best": ["export-best", "--study-name", "pool", "--storage", url, "-o", str(best)],
        "report": ["report", "--study-name", "pool", "--storage", url, "-o", str(report)],
        "bad port": ["export-best", "--study-name", "pool", "--storage",
                     f"{scheme}://{user}:{user_secret}@127.0.0.1:notaport/x"],
        "missing study": ["export-best", "--study-name", "nope", "--storage", url],
    }.items():  # fmt: skip
        run = subprocess.run(
            [sys.executable, "-m", "lstm_tune.cli", *argv],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
        )  # fmt: skip
        outputs[name] = run.stdout + run.stderr
    dashboard_output: list[str] = []
    with dashboard_process(url, tmp_path / "artifacts", dashboard_output) as base:
        summaries = get_json(api_url(base, "studies"))["study_summaries"]
        study_id = summaries[0]["study_id"]
        outputs["dashboard pages"] = json.dumps(summaries) + json.dumps(
            get_json(api_url(base, f"studies/{study_id}?after=0"))
        )
    outputs["dashboard"] = "".join(dashboard_output)
    assert "***" in outputs["search"]  # the URL is printed, redacted
    files = [best, report, *tiny_study.parent.joinpath("artifacts").rglob("*")]
    texts = {**outputs, **{str(f): f.read_bytes().decode(errors="replace") for f in files
                           if f.is_file()}}  # fmt: skip
    texts["command lines"] = "\n".join(seen)
    for secret in (user_secret, query_secret):
        leaks = [where for where, text in texts.items() if secret in text]
        assert not leaks, f"{secret} found in {leaks}"


@pytest.fixture(scope="module")
def slow_trial_study(tiny_study: Path) -> Path:
    """The tiny study with trials long enough (30 epochs, seconds) to be caught mid-trial."""
    doc = yaml.safe_load(tiny_study.read_text())
    doc["training"]["epochs"] = 30
    return write_study(tiny_study.parent, filename="slow_trial.yaml", **doc)


def _epochs_of_the_running_trial(url: str) -> int:
    running = [t for t in trials_of(url) if t.state == TrialState.RUNNING]
    return len(running[0].intermediate_values) if running else 0


def _fill(volume: Path) -> Path:
    """Write a file on ``volume`` until the file system says it is full."""
    filler = volume / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_a_storage_that_stops_taking_writes_mid_trial_is_one_line_and_loses_no_trial(
    fault: str, slow_trial_study: Path, tmp_path: Path
) -> None:
    """The SQLite file's volume goes read-only, or fills up, while a trial trains: the worker
    stops with exit 2 and one line naming the cause (no traceback, no "Should not reach."),
    and once the volume takes writes again the next search fails the stranded trial as stale
    and runs its params again: nothing is left RUNNING and no config is lost."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        require_or_skip("mounting a small tmpfs (and binding it read-only) needs root")
    volume = tmp_path / "volume"
    volume.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(volume)], check=True)
    try:
        url = f"sqlite:///{volume / 'study.db'}?{FAST_HEARTBEAT}"
        log = tmp_path / "worker.log"
        worker = start_worker(
            search_argv(slow_trial_study, "--storage", url, "--n-trials", "1"), log
        )
        wait_for("a trial's second epoch", lambda: _epochs_of_the_running_trial(url) >= 2)
        if fault == "read-only":
            # The tmpfs itself cannot be remounted read-only while the worker holds its file
            # open for writing; a read-only bind over it leaves that open file writable but
            # refuses the journal SQLite creates beside it for every write, as a volume gone
            # read-only does.
            subprocess.run(["mount", "--bind", str(volume), str(volume)], check=True)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(volume)], check=True)
            cause = "not writable: read-only volume"
        else:
            filler = _fill(volume)
            cause = "database or disk is full"
        code = worker.wait(timeout=60)
        output = log.read_text()
        errors = [line for line in output.splitlines() if line.startswith("lstm-tune: error:")]
        assert code == 2, output[-3000:]
        assert len(errors) == 1 and cause in errors[0], output[-3000:]
        assert "Traceback" not in output and "Should not reach" not in output, output[-3000:]
        if fault == "read-only":
            subprocess.run(["umount", str(volume)], check=True)  # the bind: writable again
        else:
            filler.unlink()
        assert _epochs_of_the_running_trial(url) >= 2  # stranded: nobody could end it
        time.sleep(3.5)  # the URL's grace_period: its heartbeat is now stale
        recovery = subprocess.run(
            search_argv(slow_trial_study, "--storage", url, "--n-trials", "1"),
            capture_output=True, text=True, env=worker_env(), cwd=ROOT, timeout=180,
        )  # fmt: skip
        assert recovery.returncode == 0, recovery.stderr[-3000:]
        assert "failed and its params re-queued" in recovery.stderr
        trials = trials_of(url)
        _requeued_cleanly(trials)
        assert _states(trials) == Counter({"FAIL": 1, "COMPLETE": 1}), _states(trials)
    finally:
        subprocess.run(["umount", "-R", "-l", str(volume)], check=False)
