"""Real PostgreSQL for tests: a throw-away database on the shared server, or a private cluster.

The shared server is ``$LSTM_TUNE_TEST_PG`` (a libpq conninfo, default
``host=127.0.0.1 port=5432 user=postgres dbname=postgres``). A private cluster is made with
``initdb`` from ``$LSTM_TUNE_PG_BIN`` (default ``/usr/lib/postgresql/15/bin`` or the first
``initdb`` on PATH) and started on a free port, so a test may stop and restart it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

ADMIN_CONNINFO = os.environ.get(
    "LSTM_TUNE_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
PG_BIN_CANDIDATES = [os.environ.get("LSTM_TUNE_PG_BIN", ""), "/usr/lib/postgresql/15/bin"]


def shared_server_problem() -> str | None:
    """None when the shared PostgreSQL server accepts connections, else why not."""
    try:
        with psycopg.connect(ADMIN_CONNINFO, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"no PostgreSQL server at {ADMIN_CONNINFO!r}: {str(exc).strip()}"


def create_database() -> tuple[str, Callable[[], None]]:
    """Create a fresh database; return its SQLAlchemy URL and a function that drops it."""
    name = f"lstm_tune_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_CONNINFO, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        info = conn.info
        user, host, port = info.user, info.host, info.port

    def drop() -> None:
        with psycopg.connect(ADMIN_CONNINFO, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql+psycopg://{user}@{host}:{port}/{name}", drop


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None."""
    for candidate in PG_BIN_CANDIDATES:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateCluster:
    """A PostgreSQL cluster of our own, on a free port, that a test may stop and start."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="lstm-tune-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "server.log"
        self._as_user: Callable[[], None] | None = None
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)

            def demote() -> None:
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)

            self._as_user = demote
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin_dir / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=self._as_user,  # noqa: PLW1509 - only drops root privileges
            cwd=self.dir,
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast`` disconnects clients, ``immediate`` is a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def wait_until_down(self, timeout: float = 10.0) -> None:
        """Block until nothing accepts connections on the cluster's port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.1)

    def destroy(self) -> None:
        """Stop the server if it runs and delete its files."""
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)
