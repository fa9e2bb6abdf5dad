"""Start real servers in a subprocess: ``lstm-tune``'s dashboard (and find its URL) and gRPC
storage proxy (and wait until it serves), and an MLflow tracking server (``mlflow server``, from
the full ``mlflow`` package)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers import ROOT
from tests.helpers.pg import free_port

START_TIMEOUT_S = 60.0  # importing optuna-dashboard on a busy 2-core machine takes seconds


@contextmanager
def dashboard_process(
    storage_url: str, artifact_dir: Path, output: list[str] | None = None
) -> Iterator[str]:
    """Run ``lstm-tune dashboard`` on a free port; yield its base URL (``.../dashboard/``).

    ``output``, when given, receives every line the dashboard prints while it runs.
    """
    cmd = [
        sys.executable, "-m", "lstm_tune.cli", "dashboard",
        "--storage", storage_url, "--port", "0", "--artifact-dir", str(artifact_dir),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
            if output is not None:
                output.append(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    try:
        url = None
        while url is None:
            try:
                line = lines.get(timeout=START_TIMEOUT_S)
            except queue.Empty:
                raise AssertionError(f"dashboard printed no URL; output: {seen}") from None
            seen.append(line)
            url = next((w for w in line.split() if w.startswith("http://")), None)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get_json(url: str) -> Any:
    """GET ``url`` and decode its JSON body."""
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.load(resp)


def api_url(base: str, path: str) -> str:
    """``http://h:p/dashboard/`` + ``studies`` → ``http://h:p/api/studies``."""
    return base.removesuffix("dashboard/") + "api/" + path


@contextmanager
def storage_proxy(
    storage_url: str, log: Path, *, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Run ``lstm-tune storage-proxy`` for ``storage_url`` on a free port until the block ends
    (then SIGTERM); yield its address ``grpc://127.0.0.1:PORT`` once it serves.

    Everything the proxy prints goes to ``log`` (read it after the block for its last lines).
    """
    port = free_port()
    cmd = [
        sys.executable, "-m", "lstm_tune.cli", "storage-proxy",
        "--port", str(port), "--storage", storage_url,
    ]  # fmt: skip
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=environ, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Listening..." not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"storage proxy did not start; it said: {log.read_text()}")
            time.sleep(0.1)
        yield f"grpc://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# `mlflow server` imports its app twice (the CLI, then uvicorn's worker): 45 s until /health
# answered on the 2-core machine at load 12, a few seconds when idle.
MLFLOW_START_TIMEOUT_S = 240.0


def mlflow_server_problem() -> str | None:
    """Why ``mlflow server`` cannot run here (the full ``mlflow`` package is not installed:
    mlflow-skinny, ``lstm-tune[mlflow]``, has no server), or None."""
    try:
        importlib.metadata.distribution("mlflow")
    except importlib.metadata.PackageNotFoundError:
        return "`mlflow server` needs the full mlflow package (mlflow-skinny has no server)"
    return None


@contextmanager
def mlflow_server(directory: Path) -> Iterator[str]:
    """Run ``mlflow server`` on a free port of 127.0.0.1 until the block ends; yield its URL
    (``http://127.0.0.1:PORT``) once ``/health`` answers.

    Its SQLite backend store (``mlflow.db``), its artifacts (``artifacts/``, served through the
    server) and its output (``server.log``) are in ``directory``. The server runs in a process
    group of its own, stopped whole at the end (uvicorn runs in a child process).
    """
    port = free_port()
    log = directory / "server.log"
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}",
        "--artifacts-destination", str(directory / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    # MLflow 3's server also starts a job runner (7 huey processes of ~150 MB: LLM judges,
    # trace roll-ups) that tracking runs does not use.
    environ = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=directory,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + MLFLOW_START_TIMEOUT_S
        while not _answers(f"{url}/health"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mlflow server did not start; it said: {log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        _stop_group(proc)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group ``proc`` leads; SIGKILL what is left of it after 30 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
