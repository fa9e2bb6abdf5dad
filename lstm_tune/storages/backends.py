"""Open the storage a URL names, through the module that serves its scheme.

:data:`~lstm_tune.storages.url.BACKENDS` maps each scheme to a module with an
``open_url(parsed)`` function; the module is imported when a storage of that scheme is first
opened, so a command that only checks a URL, or a SQLite user, never loads gRPC.
"""

from __future__ import annotations

import importlib
from typing import Protocol, cast

from optuna.storages import BaseStorage

from lstm_tune.storages.url import StorageURL, parse_url, require_existing_sqlite

__all__ = ["Backend", "open_storage"]


class Backend(Protocol):
    """What a backend module provides (see :data:`~lstm_tune.storages.url.BACKENDS`)."""

    def open_url(self, parsed: StorageURL) -> BaseStorage:
        """Open the storage ``parsed`` names; raise StorageError when it cannot."""
        ...


def open_storage(url: str, *, must_exist: bool = False) -> BaseStorage:
    """Return the Optuna storage for ``url`` (``sqlite:///path.db``, ``postgresql+psycopg://``,
    or ``grpc://host:port`` for ``lstm-tune storage-proxy``).

    Waits (with logged retries) for a database that is not reachable yet; raises
    :class:`~lstm_tune.errors.StorageError` for a malformed URL, an unsupported scheme, a bad
    option, or a database still unreachable after ``retry_timeout`` seconds. ``must_exist``
    (read-only commands) refuses a SQLite file that does not exist instead of creating it.
    """
    parsed = parse_url(url)
    if must_exist:
        require_existing_sqlite(url)
    backend = cast(Backend, importlib.import_module(parsed.backend))
    return backend.open_url(parsed)
