"""A Docker-compatible engine for the container test: find it, ask its API, drive compose.

The engine is whatever ``$DOCKER_HOST`` (a ``unix://`` socket) names; on the developers'
machines and in CI that is podman's Docker API started by ``../shared/tools/container-engine``.
Compose is Debian's ``docker-compose`` (v1), which talks to the same socket.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

API_VERSION = "v1.41"
# The user property under which the container test records its image build's seconds; the
# suite's summary prints it, since README's 10-minute budget for the suite excludes the build.
BUILD_SECONDS = "container_image_build_s"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def socket_path() -> str | None:
    """The engine's socket from ``$DOCKER_HOST``, or None when it names none."""
    host = os.environ.get("DOCKER_HOST", "")
    return host[len("unix://") :] if host.startswith("unix://") else None


def problem() -> str | None:
    """None when an engine answers and docker-compose is installed, else why not."""
    if shutil.which("docker-compose") is None:
        return "docker-compose is not installed (apt-get install docker-compose)"
    path = socket_path()
    if path is None:
        return (
            "no container engine: DOCKER_HOST is not a unix socket; start one with "
            'eval "$(../shared/tools/container-engine start)"'
        )
    try:
        api("GET", "/_ping", raw=True)
    except OSError as exc:
        return f"the container engine at {path} does not answer: {exc}"
    return None


def api(method: str, path: str, *, raw: bool = False, timeout: float = 30.0) -> Any:
    """Call the engine's Docker API; the decoded JSON answer (or the bytes with ``raw``)."""
    sock = socket_path()
    assert sock is not None
    connection = _UnixConnection(sock, timeout)
    try:
        prefix = "" if path == "/_ping" else f"/{API_VERSION}"
        connection.request(method, prefix + path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status >= 400:
        raise OSError(f"{method} {path}: HTTP {response.status}: {body[:300]!r}")
    return body if raw else json.loads(body or b"null")


def inspect(container_id: str) -> dict[str, Any]:
    """``docker inspect`` of one container."""
    result: dict[str, Any] = api("GET", f"/containers/{container_id}/json")
    return result


def volume_names() -> set[str]:
    """Names of every volume the engine holds."""
    return {volume["Name"] for volume in api("GET", "/volumes").get("Volumes") or []}


class Compose:
    """``docker-compose -f … -p PROJECT --env-file FILE`` with a clean environment."""

    def __init__(self, root: Path, files: list[Path], project: str, env_file: Path) -> None:
        self.root = root
        self.base = ["docker-compose", "--no-ansi", "-p", project, "--env-file", str(env_file)]
        for file in files:
            self.base += ["-f", str(file)]
        # Variables come from the env file only: a developer's POSTGRES_*/LSTM_TUNE_* stay out.
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "LSTM_"))
        }

    def run(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run one compose command; its completed process (output captured)."""
        return subprocess.run(
            [*self.base, *args], cwd=self.root, env=self.env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip

    def check(self, *args: str, timeout: float = 300.0) -> str:
        """Run one compose command that must succeed; its standard output."""
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, (
            f"docker-compose {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        return result.stdout

    def ids(self, service: str) -> list[str]:
        """Ids of the service's containers, running or exited."""
        return self.check("ps", "-q", service).split()
