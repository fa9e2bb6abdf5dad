"""The gRPC storage proxy with real processes: a worker killed behind the proxy is recovered,
and a search through it stops at its budget and releases its trial on SIGTERM.

`lstm-tune storage-proxy` in front of a fresh database on the real PostgreSQL, and worker
processes that run Optuna trials through `grpc://`. What every storage does alike, the proxy
included, is in test_storage_conformance.py.
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
from tests.helpers import ROOT
from tests.helpers.servers import storage_proxy
from tests.helpers.studies import StudyFile


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
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    log = tmp_path / "proxy.log"
    proxied = f"{pg_url}?heartbeat_interval=1&grace_period=3"
    with storage_proxy(proxied, log) as address:
        grpc_url = f"{address}?heartbeat_interval=1&retry_timeout=30"
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
    out = log.read_text()
    assert "stale-trial sweep every 1s" in out
    assert "trial 1 had no heartbeat for 3s" in out, out


@pytest.mark.postgres
@pytest.mark.slow
def test_search_through_the_proxy_stops_at_the_budget_and_releases_on_sigterm(
    pg_url: str, tmp_path: Path, imdb_slice: Path, study_file: StudyFile
) -> None:
    # The tiny study's 1-epoch trials, random sampler and no pruner; the budget is given below.
    data = {"path": str(imdb_slice), "max_features": 1000, "train_limit": 200}
    study = study_file(name="proxied", seed=1, data=data)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LSTM_TUNE_CACHE_DIR": str(tmp_path / "c")}
    with storage_proxy(pg_url, tmp_path / "proxy.log", env=env) as grpc_url:
        search = [sys.executable, "-m", "lstm_tune.cli", "search", str(study)]
        search += ["--storage", grpc_url, "--artifact-dir", str(tmp_path / "artifacts")]
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
