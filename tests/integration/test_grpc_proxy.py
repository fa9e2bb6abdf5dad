"""The gRPC storage proxy: grpc:// URLs, and a worker killed behind the proxy is recovered.

Real processes on the real PostgreSQL: `lstm-tune storage-proxy` in front of a fresh
database, and a worker process that runs an Optuna trial through `grpc://` and is SIGKILLed
in the middle of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest

from lstm_tune.errors import StorageError
from lstm_tune.storages import open_storage
from lstm_tune.storages.grpc import parse_grpc_url
from tests.helpers import ROOT
from tests.helpers.studies import StudyFile


def test_grpc_urls_are_parsed_and_bad_ones_named() -> None:
    options = parse_grpc_url("grpc://proxy.ns.svc:13000?heartbeat_interval=5&retry_timeout=30")
    assert (options.host, options.port, options.heartbeat_interval) == ("proxy.ns.svc", 13000, 5)
    assert options.retry_timeout == 30
    assert parse_grpc_url("grpc://h:1?heartbeat_interval=0").heartbeat_interval is None
    bad = {
        "grpc://h": "expected grpc://HOST:PORT",
        "grpc://h:99999": "expected grpc://HOST:PORT",
        "grpc://u:pw@h:1": "has no user, password or database",
        "grpc://h:1/optuna": "has no user, password or database",
        "grpc://h:1?grace_period=60": "'grace_period' is not allowed on a grpc:// URL",
        "grpc://h:1?heartbeat_interval=1.5": "heartbeat_interval='1.5' is not allowed",
        "grpc://h:1?retry_timeout=-1": "retry_timeout='-1' is not allowed",
    }
    for url, message in bad.items():
        with pytest.raises(StorageError, match=message.replace("?", r"\?")):
            parse_grpc_url(url)


def test_a_worker_gives_up_on_a_proxy_that_never_answers() -> None:
    from tests.helpers import pg as _pg

    started = time.monotonic()
    with pytest.raises(StorageError, match="no gRPC storage proxy answered within 1s"):
        open_storage(f"grpc://127.0.0.1:{_pg.free_port()}?retry_timeout=1")
    assert time.monotonic() - started < 10


WORKER = textwrap.dedent(
    """
    import sys, time, optuna
    from lstm_tune.storages import open_storage

    study = optuna.create_study(
        storage=open_storage(sys.argv[1]), study_name="behind-proxy", load_if_exists=True
    )

    def objective(trial):
        trial.suggest_int("hidden_size", 4, 512)
        print("running", trial.number, flush=True)
        time.sleep(float(sys.argv[2]))
        return 0.5

    study.optimize(objective, n_trials=1)
    print("done", flush=True)
    """
)


@pytest.mark.postgres
def test_trial_of_a_worker_killed_behind_the_proxy_is_failed_and_requeued(
    pg_url: str, tmp_path: Path
) -> None:
    from tests.helpers import pg as _pg

    port = _pg.free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proxy = subprocess.Popen(
        [sys.executable, "-m", "lstm_tune.cli", "storage-proxy", "--port", str(port),
         "--storage", f"{pg_url}?heartbeat_interval=1&grace_period=3"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    grpc_url = f"grpc://127.0.0.1:{port}?heartbeat_interval=1&retry_timeout=30"
    try:
        # A worker that finishes its trial: the proxy serves the study.
        done = subprocess.run(
            [sys.executable, str(script), grpc_url, "0"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0 and "done" in done.stdout, done.stderr
        # A worker killed in the middle of its trial.
        worker = subprocess.Popen(
            [sys.executable, str(script), grpc_url, "300"],
            env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert worker.stdout is not None
        assert worker.stdout.readline().split() == ["running", "1"]
        time.sleep(2)  # two heartbeats through the proxy
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        killed_at = time.monotonic()

        direct = open_storage(pg_url)
        study_id = direct.get_study_id_from_name("behind-proxy")
        while True:
            trials = {t.number: t for t in direct.get_all_trials(study_id)}
            if trials[1].state != optuna.trial.TrialState.RUNNING or len(trials) > 2:
                break
            assert time.monotonic() - killed_at < 30, "the killed worker's trial stayed RUNNING"
            time.sleep(0.5)
        recovered_after = time.monotonic() - killed_at
        time.sleep(1.5)  # the sweeper's re-queue follows its fail within the same pass
        trials = {t.number: t for t in direct.get_all_trials(study_id)}
        assert trials[1].state.name == "FAIL"
        assert trials[2].state.name == "WAITING"
        assert trials[2].params == trials[1].params
        assert trials[2].system_attrs["failed_trial"] == 1
        # grace_period 3 s, sweeps every second: recovered in about 3-5 s, never instantly
        # (a heartbeat had to go stale, which proves heartbeats went through the proxy).
        assert 1.0 <= recovered_after < 15, recovered_after
        # The heartbeat became the database's heartbeat row, not a stored system attribute.
        assert not any(k.startswith("lstm_tune:") for k in trials[1].system_attrs)
    finally:
        proxy.send_signal(signal.SIGTERM)
        out = proxy.communicate(timeout=30)[0]
    assert "stale-trial sweep every 1s" in out
    assert "trial 1 had no heartbeat for 3s" in out, out


@pytest.mark.postgres
@pytest.mark.slow
def test_search_through_the_proxy_stops_at_the_budget_and_releases_on_sigterm(
    pg_url: str, tmp_path: Path, imdb_slice: Path, study_file: StudyFile
) -> None:
    from tests.helpers import pg as _pg

    # The tiny study's 1-epoch trials, random sampler and no pruner; the budget is given below.
    data = {"path": str(imdb_slice), "max_features": 1000, "train_limit": 200}
    study = study_file(name="proxied", seed=1, data=data)
    port = _pg.free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LSTM_TUNE_CACHE_DIR": str(tmp_path / "c")}
    proxy = subprocess.Popen(
        [sys.executable, "-m", "lstm_tune.cli", "storage-proxy", "--port", str(port),
         "--storage", pg_url],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    grpc_url = f"grpc://127.0.0.1:{port}"
    search = [sys.executable, "-m", "lstm_tune.cli", "search", str(study), "--storage", grpc_url]
    search += ["--artifact-dir", str(tmp_path / "artifacts")]
    try:
        done = subprocess.run(
            [*search, "--n-trials", "2"], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "budget reached: 2/2 finished trials" in done.stdout
        # SIGTERM mid-search: the worker's own trial is failed and re-queued (its ledger).
        worker = subprocess.Popen(
            [*search, "--n-trials", "50"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert worker.stdout is not None
        for line in worker.stdout:
            if line.startswith("trial   3 "):
                break
        time.sleep(0.5)  # into trial 4
        worker.send_signal(signal.SIGTERM)
        out = worker.communicate(timeout=60)[0]
        assert worker.returncode == 143, out
        direct = open_storage(pg_url)
        trials = direct.get_all_trials(direct.get_study_id_from_name("proxied"))
        assert all(t.state.name != "RUNNING" for t in trials)
        if "failed and re-queued" in out:  # else the trial had just finished, and it says so
            assert trials[-1].state.name == "WAITING", out
        else:
            assert "before the worker stopped" in out, out
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(timeout=30)
