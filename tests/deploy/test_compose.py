"""docker-compose.yml, read by a real compose parser, and its services run as local processes.

There is no container engine here, so the last test takes the `init`, `worker` and
`dashboard` services exactly as `docker-compose config` resolves them (command and
environment) and runs them against the real PostgreSQL. Only what names the inside of a
container is mapped to this machine: the `postgres` host (to a fresh test database), the
volume mount points (/cache, /artifacts: to temporary directories), and the dashboard's
bind address and port (to 127.0.0.1 and a free port).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from lstm_tune.storages import open_storage
from tests.helpers import ROOT, require_or_skip
from tests.helpers.studies import StudyFile

COMPOSE_FILE = ROOT / "docker-compose.yml"
MOUNTS = ("/cache", "/artifacts")


def _compose_config(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        require_or_skip("docker-compose is not installed (apt-get install docker-compose)")
        raise AssertionError("unreachable")
    env_file = tmp_path / "compose.env"  # an explicit env file: a developer's .env is ignored
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "LSTM_"))}
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config"],
        capture_output=True, text=True, env=clean, cwd=ROOT, timeout=60,
    )  # fmt: skip


def _example_env() -> dict[str, str]:
    env = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def _config(env: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    result = _compose_config(env, tmp_path)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_compose_file_is_valid_and_safe_by_default(tmp_path: Path) -> None:
    services = _config(_example_env(), tmp_path)["services"]
    assert set(services) == {
        "postgres",
        "init",
        "worker",
        "worker-gpu",
        "dashboard",
        "storage-proxy",
    }

    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "ports" not in postgres  # the database is not published on the host
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert postgres["volumes"][0].startswith("pgdata:")

    worker = services["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert worker["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "init": {"condition": "service_completed_successfully"},
    }
    # Exit 0 at the budget: stays down. Compose restarts on any failure, so an input error
    # (exit 2) stops after a few tries instead of looping for ever.
    assert worker["restart"] == services["worker-gpu"]["restart"] == "on-failure:3"
    # init reads the study as the workers do (file, name, environment): a study file that
    # disagrees with the stored study stops there, before any worker starts.
    study_args = worker["command"][1:4]
    assert services["init"]["command"][1:4] == study_args
    assert services["init"]["environment"] == {
        k: v for k, v in worker["environment"].items() if k != "LSTM_TUNE_THREADS"
    }
    assert any(v.startswith("cache:/cache") for v in worker["volumes"])
    assert worker["command"][0] == "search" and services["init"]["command"][0] == "create-study"

    assert services["dashboard"]["ports"] == ["127.0.0.1:8080:8080/tcp"]
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["args"]["TF_PACKAGE"] == "tensorflow[and-cuda]"

    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert dockerfile.count("\nFROM ") >= 2  # multi-stage
    assert "\nUSER lstm" in dockerfile  # not root
    # Defects found running the file for real (tests/deploy/test_compose_engine.py runs it):
    assert "\nVOLUME" not in dockerfile  # anonymous volumes outlived `down`
    assert "-h 127.0.0.1" in " ".join(postgres["healthcheck"]["test"])  # not the temp server
    assert all(services[name].get("init") is True for name in ("init", "worker", "dashboard"))
    assert all("LSTM_TUNE_DATA_PATH" in services[n]["environment"] for n in ("init", "worker"))


def test_compose_refuses_to_start_without_a_password(tmp_path: Path) -> None:
    env = {k: v for k, v in _example_env().items() if k != "POSTGRES_PASSWORD"}
    result = _compose_config(env, tmp_path)
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in result.stderr


def _free_port() -> int:
    from tests.helpers import pg as _pg

    return _pg.free_port()


def _local(service: dict[str, Any], db_url: str, tmp: Path) -> tuple[list[str], dict[str, str]]:
    """The service's command and environment, mapped from the container to this machine."""
    env = {**os.environ}
    for key, value in service["environment"].items():
        value = str(value)
        for mount in MOUNTS:
            if value == mount or value.startswith(mount + "/"):
                value = str(tmp / mount.strip("/")) + value[len(mount) :]
        env[key] = value
    # The compose URL names user `lstm` on host `postgres`; keep its query (heartbeat options).
    compose_url = make_url(env["LSTM_TUNE_STORAGE"])
    assert (compose_url.host, compose_url.port, compose_url.database) == (
        "postgres",
        5432,
        "optuna",
    )
    env["LSTM_TUNE_STORAGE"] = (
        make_url(db_url).set(query=compose_url.query).render_as_string(hide_password=False)
    )
    env["PYTHONPATH"] = str(ROOT)
    command = [str(part) for part in service["command"]]
    return [sys.executable, "-m", "lstm_tune.cli", *command], env


@pytest.mark.postgres
@pytest.mark.slow
def test_init_workers_and_dashboard_work_together(
    tmp_path: Path, pg_url: str, imdb_slice: Path, study_file: StudyFile
) -> None:
    # The tiny study's 1-epoch trials, random sampler and no pruner; the budget is given below.
    data = {"path": str(imdb_slice), "max_features": 1000, "train_limit": 200}
    study = study_file(name="compose", seed=1, data=data)
    env = {
        **_example_env(),
        "POSTGRES_PASSWORD": "test-password",
        "LSTM_TUNE_STUDY_FILE": str(study),
        "LSTM_TUNE_STUDY_NAME": "compose",
        "LSTM_TUNE_N_TRIALS": "2",
    }
    services = _config(env, tmp_path)["services"]

    init_cmd, init_env = _local(services["init"], pg_url, tmp_path)
    init = subprocess.run(init_cmd, env=init_env, capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    assert "study 'compose' ready" in init.stdout

    dash_cmd, dash_env = _local(services["dashboard"], pg_url, tmp_path)
    port = _free_port()
    dash_cmd[dash_cmd.index("--host") + 1] = "127.0.0.1"
    dash_cmd[dash_cmd.index("--port") + 1] = str(port)
    dashboard = subprocess.Popen(
        dash_cmd, env=dash_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    work_cmd, work_env = _local(services["worker"], pg_url, tmp_path)
    replicas = services["worker"]["deploy"]["replicas"]
    workers = [
        subprocess.Popen(work_cmd, env=work_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(replicas)
    ]
    try:
        outputs = [w.communicate(timeout=300)[0].decode() for w in workers]
        assert [w.returncode for w in workers] == [0] * replicas, outputs
        assert all("budget" in out for out in outputs)  # both stopped at the shared budget

        storage = open_storage(work_env["LSTM_TUNE_STORAGE"])
        trials = storage.get_all_trials(storage.get_study_id_from_name("compose"))
        assert sorted(t.state.name for t in trials) == ["COMPLETE", "COMPLETE"]
        assert (tmp_path / "cache").is_dir()  # the dataset cache went to the cache volume

        summaries = _get_json(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
        summary = next(s for s in summaries if s["study_name"] == "compose")
        detail = _get_json(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}")
        assert len(detail["trials"]) == 2
    finally:
        for proc in [*workers, dashboard]:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)


def _get_json(url: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # the dashboard is still starting
