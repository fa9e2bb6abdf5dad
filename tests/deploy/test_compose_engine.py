"""`docker compose up` for real: the project's image and compose file on a container engine.

Builds the image from docker/Dockerfile and runs the project's own docker-compose.yml with one
override (tests/deploy/compose/local-data.yml) that only mounts the local IMDB copy; the study, its
budget and the data path come in through the compose file's own variables. Then it checks
what a user relies on: workers stop at the shared budget with distinct configs, the dashboard
answers on loopback, nothing runs as root, `stop` is quick and re-queues running trials,
workers given a study file that disagrees with the stored study stop after 3 restarts with
their one line in the log, and `down` leaves only the named volumes.

Skipped without an engine (``eval "$(../shared/tools/container-engine start)"`` gives one),
unless LSTM_TUNE_REQUIRE_SERVICES=1. Takes about 4 minutes with the image layers cached.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, SHARED_DATA, require_or_skip
from tests.helpers import engine as _engine
from tests.helpers import pg as _pg

FILES = [ROOT / "docker-compose.yml", ROOT / "tests" / "deploy" / "compose" / "local-data.yml"]
STUDY_NAME = "tiny"
BUDGET = 4
# A stop must end every service well within Docker's 10 s before SIGKILL.
STOP_LIMIT = 5.0
NAMED_VOLUMES = ("pgdata", "cache", "artifacts")
NON_ROOT_USER = "lstm"


def _env_file(
    path: Path, port: int, budget: int, study_file: str = "studies/imdb_tiny.yaml"
) -> Path:
    variables = {
        "POSTGRES_PASSWORD": "composetest1",
        "LSTM_TUNE_STUDY_FILE": study_file,
        "LSTM_TUNE_STUDY_NAME": STUDY_NAME,
        "LSTM_TUNE_N_TRIALS": str(budget),
        "LSTM_TUNE_DATA_PATH": f"/data/{SHARED_DATA.name}",
        "LSTM_TUNE_STORAGE_OPTIONS": "heartbeat_interval=5&grace_period=30",
        "DASHBOARD_PORT": str(port),
    }
    path.write_text("".join(f"{key}={value}\n" for key, value in variables.items()))
    return path


def _get_json(url: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)  # the dashboard is still starting


def _trials(port: int) -> list[dict[str, Any]]:
    base = f"http://127.0.0.1:{port}/api/studies"
    summaries = _get_json(base)["study_summaries"]
    study = next(s for s in summaries if s["study_name"] == STUDY_NAME)
    trials: list[dict[str, Any]] = _get_json(f"{base}/{study['study_id']}?after=0")["trials"]
    return trials


def _params(trial: dict[str, Any], key: str = "params") -> tuple[tuple[str, str], ...]:
    return tuple(sorted((p["name"], p["param_external_value"]) for p in trial[key]))


def _attr(trial: dict[str, Any], key: str) -> str | None:
    return next((a["value"] for a in trial["user_attrs"] if a["key"] == key), None)


def _wait_exited(ids: list[str], timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        states = [_engine.inspect(i) for i in ids]
        if all(s["State"]["Status"] == "exited" for s in states):
            return states
        assert time.monotonic() < deadline, [s["State"]["Status"] for s in states]
        time.sleep(2.0)


def _wait_stopped_for_good(ids: list[str], retries: int, timeout: float) -> list[dict[str, Any]]:
    """The containers' states once each has exited after its last restart (``retries``), or
    has stayed exited for 60 s (a policy that restarts less)."""
    deadline = time.monotonic() + timeout
    exited_since: dict[str, float] = {}
    while True:
        states = [_engine.inspect(i) for i in ids]
        now = time.monotonic()
        for container_id, state in zip(ids, states, strict=True):
            if state["State"]["Status"] != "exited":
                exited_since.pop(container_id, None)
            else:
                exited_since.setdefault(container_id, now)
        if all(
            i in exited_since and (s["RestartCount"] >= retries or now - exited_since[i] > 60)
            for i, s in zip(ids, states, strict=True)
        ):
            return states
        counts = [s["RestartCount"] for s in states]
        assert now < deadline and max(counts) <= retries, counts  # restarted for ever?
        time.sleep(2.0)


def _timed_stop(compose: _engine.Compose, service: str) -> float:
    started = time.monotonic()
    compose.check("stop", service, timeout=120)
    return time.monotonic() - started


@pytest.mark.container
@pytest.mark.slow
def test_compose_pool_runs_distinct_trials_stops_quickly_and_cleans_up(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    problem = _engine.problem()
    if problem:
        require_or_skip(problem)
    if not SHARED_DATA.exists():
        require_or_skip(f"the IMDB corpus is not at {SHARED_DATA}")
    port = _pg.free_port()
    project = f"lstmtunetest{uuid.uuid4().hex[:8]}"
    env_file = _env_file(tmp_path / "compose.env", port, BUDGET)
    compose = _engine.Compose(ROOT, FILES, project, env_file)
    volumes_before = _engine.volume_names()
    measured: dict[str, Any] = {}
    phases: dict[str, float] = {}  # seconds each part took, to see where the time goes
    started = time.monotonic()

    def phase_done(name: str) -> None:
        nonlocal started
        phases[name] = round(time.monotonic() - started, 1)
        started = time.monotonic()

    try:
        compose.check("build", "worker", timeout=1500)
        phase_done("build")
        record_property(_engine.BUILD_SECONDS, phases["build"])

        compose.check("up", "-d", timeout=600)
        workers = compose.ids("worker")
        assert len(workers) == 2  # the compose file's replicas, not the test's choice
        finished = _wait_exited(workers, timeout=600)
        assert [w["State"]["ExitCode"] for w in finished] == [0, 0], compose.run("logs").stdout

        # The shared budget exactly, nothing left RUNNING, distinct configs from both replicas.
        trials = _trials(port)
        states = Counter(t["state"] for t in trials)
        assert states["Complete"] + states["Pruned"] == BUDGET and states["Running"] == 0, states
        done = [t for t in trials if t["state"] in ("Complete", "Pruned")]
        configs = {_params(t) for t in done}
        hosts = {w["Config"]["Hostname"] for w in finished}
        ran_on = Counter(str(_attr(t, "lstm_tune_worker")).split(":")[0] for t in done)
        assert set(ran_on) == hosts, (ran_on, hosts)  # both replicas ran trials
        assert len(configs) == len(done) == BUDGET
        measured["configs"] = f"{len(configs)} distinct configs in {len(done)} trainings"
        measured["per_replica"] = dict(ran_on)
        phase_done("up to the budget")

        # Every container runs as the non-root user (PID 1 of the running ones checked too).
        for service in ("init", "worker", "dashboard"):
            for container in compose.ids(service):
                assert _engine.inspect(container)["Config"]["User"] == NON_ROOT_USER, service
        for service in ("dashboard", "postgres"):
            status = compose.check("exec", "-T", service, "cat", "/proc/1/status")
            uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
            assert uid != "0", f"{service} PID 1 runs as root"

        # Raise the budget so the workers are mid-trial, then stop them.
        _env_file(env_file, port, BUDGET + 10)
        compose.check("up", "-d", "--no-deps", "worker", timeout=300)
        first_seen: dict[int, float] = {}
        deadline = time.monotonic() + 300
        while True:
            now = time.monotonic()
            running = [t["number"] for t in _trials(port) if t["state"] == "Running"]
            for number in running:
                first_seen.setdefault(number, now)
            if any(now - first_seen[n] >= 1.5 for n in running):
                break  # one trial is well inside its training
            assert now < deadline, "no trial started after raising the budget"
            time.sleep(0.5)
        stop_seconds = {"worker": _timed_stop(compose, "worker")}
        stopped = [_engine.inspect(i) for i in compose.ids("worker")]
        assert [s["State"]["ExitCode"] for s in stopped] == [143, 143]  # SIGTERM, handled
        trials = _trials(port)
        assert not [t for t in trials if t["state"] == "Running"]
        failed = [t for t in trials if t["state"] == "Fail"]
        # A re-queued copy is a WAITING trial holding the same params (Optuna's retry callback
        # adds it with params; an enqueued config would show them as fixed_params).
        queued = Counter(
            _params(t) or _params(t, "fixed_params") for t in trials if t["state"] == "Waiting"
        )
        assert failed, "the stop caught no trial mid-training"
        for trial in failed:
            assert queued[_params(trial)] >= 1, f"trial {trial['number']} was not re-queued"
        measured["requeued"] = len(failed)
        phase_done("raise the budget, stop mid-trial")

        # Workers whose study file disagrees with the stored study (another file under the
        # same study name) stop on their one line after at most 3 restarts (the compose file's
        # `on-failure:3`), instead of being restarted for ever (issue 34).
        _env_file(env_file, port, BUDGET, study_file="studies/imdb_smoke.yaml")
        compose.check("up", "-d", "--no-deps", "worker", timeout=300)
        refused = _wait_stopped_for_good(compose.ids("worker"), retries=3, timeout=900)
        logs = compose.run("logs", "--no-color", "worker").stdout
        assert [s["State"]["ExitCode"] for s in refused] == [2, 2], logs
        assert [s["RestartCount"] for s in refused] == [3, 3], logs
        assert "was created from another spec" in logs, logs
        measured["mismatch_restarts"] = [s["RestartCount"] for s in refused]
        measured["mismatch_lines"] = logs.count("was created from another spec")
        phase_done("mismatched workers' 3 restarts")

        for service in ("dashboard", "postgres"):
            stop_seconds[service] = _timed_stop(compose, service)
        measured["stop_s"] = {k: round(v, 1) for k, v in stop_seconds.items()}
        assert all(seconds < STOP_LIMIT for seconds in stop_seconds.values()), stop_seconds

        compose.check("down", timeout=300)
        left = _engine.volume_names() - volumes_before
        assert left == {f"{project}_{name}" for name in NAMED_VOLUMES}, left
        phase_done("stop the rest, down")
    finally:
        print(f"compose test measured: {measured}; phases (s): {phases}")
        compose.run("down", "-v", "-t", "5", timeout=300)
