"""lstm_tune.storages.rdb on real SQLite files and a real PostgreSQL (shared server and a
private cluster): what only a database storage does. What every storage does alike is in
tests/integration/test_storage_conformance.py."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.synchronize
import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest

from lstm_tune.errors import StorageError
from lstm_tune.storages import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)
# These tests play a dead worker by hand (ask without optimize) and call Optuna's stale-trial
# check directly, which Optuna flags as experimental: both warnings are expected here.
pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used"),
]


def _states(study: optuna.study.Study) -> Counter[str]:
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


# --- stale trials -------------------------------------------------------------------------


def test_a_requeued_trial_is_not_requeued_forever(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}?heartbeat_interval=1&grace_period=2&max_requeue=1"
    study = optuna.create_study(storage=open_storage(url), study_name="s")
    for _ in range(2):  # the original dies, then its one retry dies too
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        study._storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
        time.sleep(3.5)
        optuna.storages.fail_stale_trials(study)
    assert _states(study) == Counter(FAIL=2)


# --- several processes on one SQLite file ---------------------------------------------------


def _hammer(url: str, n_trials: int, start_together: multiprocessing.synchronize.Barrier) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="s", storage=open_storage(url))
    start_together.wait(timeout=120)
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=n_trials)


def test_sqlite_survives_several_processes_writing_at_once(tmp_path: Path) -> None:
    """Trivial trials make far more writes per second than LSTM trials: the worst case."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    storage = open_storage(url)
    optuna.create_study(storage=storage, study_name="s")
    storage.engine.dispose()
    # spawn, not fork: a fork copies whatever the pytest process holds, and once another test
    # has loaded TensorFlow a fork taken while one of its threads holds a lock aborts the child
    # (seen once in CI: abseil's "Mutex::Fer while waiting on Condition", exit -6). The barrier
    # keeps what fork gave: the three start writing together, after their imports.
    context = multiprocessing.get_context("spawn")
    start_together = context.Barrier(3)
    workers = [context.Process(target=_hammer, args=(url, 30, start_together)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    study = optuna.load_study(study_name="s", storage=open_storage(url))
    assert _states(study) == Counter(COMPLETE=90)


# --- an unreachable database ----------------------------------------------------------------


@pytest.mark.postgres
def test_open_waits_for_a_database_that_is_not_up_yet(
    private_pg: object, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = private_pg
    cluster.stop()  # type: ignore[attr-defined]
    threading.Timer(3.0, cluster.start).start()  # type: ignore[attr-defined]
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="lstm_tune.storages"):
        storage = open_storage(cluster.url)  # type: ignore[attr-defined]
    assert time.monotonic() - started >= 2.5
    optuna.create_study(storage=storage, study_name="s").optimize(
        lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=2
    )
    retries = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert retries and "retry" in retries[0]
    assert "reachable again" in caplog.records[-1].getMessage()


@pytest.mark.postgres
def test_an_unreachable_database_ends_with_a_clear_error_after_retry_timeout(
    private_pg: object,
) -> None:
    private_pg.stop()  # type: ignore[attr-defined]
    url = f"{private_pg.url}?retry_timeout=2"  # type: ignore[attr-defined]
    with pytest.raises(StorageError, match=r"still unreachable after \d+s .*\(retry_timeout=2s"):
        open_storage(url)


@pytest.mark.postgres
def test_a_database_never_reached_is_reported_after_first_contact_timeout(
    private_pg: object,
) -> None:
    private_pg.stop()  # type: ignore[attr-defined]
    url = f"{private_pg.url}?first_contact_timeout=2"  # type: ignore[attr-defined]
    started = time.monotonic()
    with pytest.raises(
        StorageError,
        match=r"still unreachable after \d+s \(never reached from this process\) "
        r"\(first_contact_timeout=2s, a URL option\): OperationalError",
    ) as info:
        open_storage(url)
    assert time.monotonic() - started < 15  # not the 600 s an outage mid-study is given
    assert "\n" not in str(info.value) and "sqlalche.me" not in str(info.value)


def test_a_database_that_does_not_exist_is_not_retried(pg_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(StorageError, match="does not exist"):
        open_storage(pg_url + "_missing")
    assert time.monotonic() - started < 5


@pytest.mark.postgres
def test_a_study_rides_out_a_server_restart_without_losing_a_trial(private_pg: object) -> None:
    cluster = private_pg
    url = f"{cluster.url}?heartbeat_interval=1&grace_period=30"  # type: ignore[attr-defined]
    study = optuna.create_study(storage=open_storage(url), study_name="s")

    def objective(trial: optuna.Trial) -> float:
        time.sleep(0.05)  # a "trial" long enough that the restart lands inside one
        return trial.suggest_float("x", 0.0, 1.0)

    errors: list[BaseException] = []

    def run() -> None:
        try:
            study.optimize(objective, n_trials=40)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    while len(study.get_trials(deepcopy=False)) < 10:
        time.sleep(0.05)
    cluster.stop("fast")  # type: ignore[attr-defined]
    time.sleep(2.0)
    cluster.start()  # type: ignore[attr-defined]
    runner.join(timeout=120)
    assert not errors
    reloaded = optuna.load_study(study_name="s", storage=open_storage(url))
    assert _states(reloaded) == Counter(COMPLETE=40)


def test_a_read_only_database_is_one_line_naming_the_cause(tmp_path: Path) -> None:
    """A SQLite file on a file system mounted read-only (a volume gone read-only): the error
    says what SQLite said, not Optuna's generic "invalid data in the commit"."""
    import os
    import shutil
    import subprocess
    import sys

    from tests.helpers import require_or_skip

    if os.geteuid() != 0 or shutil.which("mount") is None:
        require_or_skip("mounting a read-only tmpfs needs root")
    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        # In another process, so no connection holds the file open when it goes read-only.
        create = f"import optuna; optuna.create_study(storage='sqlite:///{mount / 's.db'}')"
        subprocess.run([sys.executable, "-c", create], check=True, capture_output=True)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with pytest.raises(StorageError) as info:
            optuna.create_study(
                storage=open_storage(f"sqlite:///{mount / 's.db'}"), study_name="new"
            )
        assert (
            "refused create_new_study: OperationalError: attempt to write a readonly database"
            in str(info.value)
        )
        assert "\n" not in str(info.value)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)  # lazy: the pool may hold it


def test_the_set_up_lock_waits_out_a_database_restart(private_pg: object) -> None:
    # Found by the chaos soak (issue 33): a worker opening its study while PostgreSQL
    # restarted died with a traceback (AdminShutdown) taking the lock every creator takes.
    cluster = private_pg
    storage = open_storage(f"{cluster.url}?retry_timeout=60")  # type: ignore[attr-defined]
    cluster.stop("fast")  # type: ignore[attr-defined]
    restart = threading.Timer(3.0, cluster.start)  # type: ignore[attr-defined]
    restart.start()
    try:
        started = time.monotonic()
        with storage.setup_lock():  # type: ignore[attr-defined]
            waited = time.monotonic() - started
    finally:
        restart.join()
    assert waited >= 2.5
