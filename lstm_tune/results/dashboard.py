"""Serve optuna-dashboard for a study storage, with the trial artifacts the workers upload.

The server binds 127.0.0.1 unless told otherwise: optuna-dashboard has no login, and anyone
who reaches it can rename or delete studies. The container opens it up on purpose.
"""

from __future__ import annotations

from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna_dashboard
from optuna.artifacts import FileSystemArtifactStore

from lstm_tune.errors import ConfigError, LstmTuneError
from lstm_tune.storages import open_storage, require_existing_sqlite

__all__ = [
    "DEFAULT_ARTIFACT_DIR",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "LOOPBACK_HOSTS",
    "dashboard_url",
    "make_dashboard_server",
    "open_artifact_store",
    "require_existing_sqlite",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080  # optuna-dashboard's own default, so its docs still apply
# Next to the default SQLite files (studies/<name>.db); compose mounts a volume here instead.
DEFAULT_ARTIFACT_DIR = "studies/artifacts"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class _ThreadedWSGIServer(ThreadingMixIn, WSGIServer):
    """One thread per request: the dashboard polls while a user clicks through trials."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """Do not log every request (the page polls the API every few seconds)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        return


def open_artifact_store(
    artifact_dir: str | Path, *, create: bool = True
) -> FileSystemArtifactStore:
    """Return the artifact store in ``artifact_dir``, creating the directory if needed.

    ``create=False`` (a viewer): a missing directory is left alone and simply has no
    artifacts yet; a read-only command creates nothing.
    """
    path = Path(artifact_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"artifact dir {str(path)!r} exists but is not a directory")
    if not create:
        return FileSystemArtifactStore(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create artifact dir {str(path)!r}: {exc}") from exc
    return FileSystemArtifactStore(path)


def make_dashboard_server(
    storage_url: str,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    artifact_dir: str | Path | None = DEFAULT_ARTIFACT_DIR,
) -> WSGIServer:
    """Bind an optuna-dashboard server for ``storage_url``; call ``serve_forever()`` on it.

    ``port=0`` lets the system pick a free port (read it back from ``server.server_port``).
    ``artifact_dir=None`` serves without artifacts.
    """
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")
    require_existing_sqlite(storage_url)
    storage = open_storage(storage_url)
    store = open_artifact_store(artifact_dir, create=False) if artifact_dir is not None else None
    app = optuna_dashboard.wsgi(storage, artifact_store=store)
    try:
        return make_server(
            host, port, app, server_class=_ThreadedWSGIServer, handler_class=_QuietHandler
        )
    except OSError as exc:  # address in use, host not resolvable, no permission for the port
        raise LstmTuneError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def dashboard_url(server: WSGIServer, host: str) -> str:
    """Return the URL a browser on this machine opens for ``server`` bound to ``host``."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    if ":" in shown:  # an IPv6 literal needs brackets in a URL
        shown = f"[{shown}]"
    return f"http://{shown}:{server.server_port}/dashboard/"
