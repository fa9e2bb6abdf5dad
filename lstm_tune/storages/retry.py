"""Database errors: which mean "unreachable or busy right now", how to say one in a line, and
running a storage call through them with backoff.

While the database is unreachable (not started yet, restarting, network cut, SQLite
"database is locked") a call waits with exponential backoff, logging each retry on the
``lstm_tune.storages`` logger, for up to ``retry_timeout`` seconds (``first_contact_timeout``
until the database has answered once), then raises :class:`~lstm_tune.errors.StorageError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy.exc

from lstm_tune.errors import StorageError, StorageUnreachable, exception_chain
from lstm_tune.storages.interrupts import pause, storage_call
from lstm_tune.storages.url import StorageOptions

__all__ = ["QUERY_CALLS", "Retrier", "describe_storage_error", "is_transient"]

# Storage API calls that read or write without keeping the held-trial ledger: each storage
# retries them as a whole while its database or proxy is unreachable.
QUERY_CALLS = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_all_studies",
    "set_trial_param",
    "get_trial_id_from_study_id_trial_number",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial",
    "get_all_trials",
)

# Backoff between retries: start fast (SQLite locks clear in milliseconds), cap at 10 s so a
# restarted server is noticed quickly.
FIRST_RETRY_DELAY = 0.05
MAX_RETRY_DELAY = 10.0
# Waits shorter than this (SQLite locks) are logged at DEBUG: only a real outage is worth a line.
_OUTAGE_SECONDS = 0.5

# PostgreSQL SQLSTATE classes worth retrying: connection exceptions (08), server shutting down
# or starting (57P01-57P03), too many connections (53300), serialization failure and deadlock
# (40001, 40P01). Anything else (bad password 28P01, unknown database 3D000) will not heal.
_RETRYABLE_SQLSTATE_PREFIXES = ("08", "57P01", "57P02", "57P03", "53300", "40001", "40P01")

# Connection refusals that waiting will not fix (matched in the server's message).
_PERMANENT_CONNECT_ERRORS = (
    "does not exist",
    "authentication failed",
    "pg_hba.conf",
    "permission denied",
    "no password supplied",
    "invalid",
)

# SQLite says "unable to open database file" when it cannot create its journal beside the
# database, which is what a volume gone read-only (or a directory without write permission)
# looks like mid-run; the bare message reads like a wrong path.
_SQLITE_HINTS = {
    "unable to open database file": "its directory is not writable: read-only volume or "
    "permissions?",
    "attempt to write a readonly database": "read-only volume or file permissions?",
}

_log = logging.getLogger("lstm_tune.storages")
T = TypeVar("T")


def _db_errors(exc: BaseException) -> list[sqlalchemy.exc.SQLAlchemyError]:
    """The SQLAlchemy errors behind ``exc`` (Optuna wraps them in StorageInternalError)."""
    return [e for e in exception_chain(exc) if isinstance(e, sqlalchemy.exc.SQLAlchemyError)]


def _root_db_error(exc: BaseException) -> BaseException | None:
    errors = _db_errors(exc)
    return errors[-1] if errors else None


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` means "the database (or the gRPC storage proxy) is unreachable or
    busy right now", not a bug."""
    if _rpc_status(exc) == "UNAVAILABLE":
        return True
    return any(_is_transient_db_error(err) for err in _db_errors(exc))


def _rpc_status(exc: BaseException) -> str | None:
    """The gRPC status name of a failed call (``UNAVAILABLE``: the proxy is down or
    restarting), or None for an error that is no gRPC call's (grpc is not imported here)."""
    code = getattr(exc, "code", None)
    if not callable(code):
        return None
    try:
        return getattr(code(), "name", None)
    except Exception:  # not a gRPC error after all
        return None


def _is_transient_db_error(err: sqlalchemy.exc.SQLAlchemyError) -> bool:
    if isinstance(err, sqlalchemy.exc.DBAPIError) and err.connection_invalidated:
        return True
    if isinstance(err, sqlalchemy.exc.PendingRollbackError):
        # A connection died inside a transaction; the session is rolled back and closed when
        # the failed call unwinds, so the retry starts clean.
        return True
    if not isinstance(err, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        return False
    orig = getattr(err, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        return str(sqlstate).startswith(_RETRYABLE_SQLSTATE_PREFIXES)
    message = str(orig or err).lower()
    if "sqlite" in type(orig).__module__:
        return "locked" in message or "busy" in message
    # psycopg raises connection-time errors without a SQLSTATE, whether the server is down
    # (worth waiting for) or says no for good (wrong password, unknown database or role).
    return not any(marker in message for marker in _PERMANENT_CONNECT_ERRORS)


def describe_storage_error(exc: BaseException) -> str:
    """One line (200 characters at most) for a storage failure: the database driver's own
    error behind ``exc`` when there is one, as ``Type: first line (hint)``."""
    status = _rpc_status(exc)
    if status is not None:
        details = exc.details() if callable(getattr(exc, "details", None)) else ""  # type: ignore[attr-defined]
        return f"gRPC {status}: {details}"[:200]
    root = _root_db_error(exc)
    orig = getattr(root, "orig", None) or root or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    hint = _SQLITE_HINTS.get(text) if "sqlite" in type(orig).__module__ else None
    return f"{type(orig).__name__}: {text}{f' ({hint})' if hint else ''}"[:200]


class Retrier:
    """Runs one storage's calls, retrying while its database is unreachable or busy.

    Each call counts as a storage call for signals (:func:`~lstm_tune.storages.interrupts.
    storage_call`): a stop asked for meanwhile is raised once the outermost call returns.
    """

    def __init__(self, display_url: str, options: StorageOptions) -> None:
        self.display_url = display_url
        self.options = options
        # Until the database has answered once, a wrong host or port is a mistake to report
        # within seconds, not an outage to wait out (see ``first_contact_timeout``).
        self.reached = False

    def call(self, what: str, call: Callable[[], T]) -> T:
        """Return ``call()``, retried with backoff while the failure is transient.

        Raises :class:`StorageError` when the database refuses the write (read-only file,
        full disk) or is still unreachable after ``retry_timeout`` (or, never reached yet,
        ``first_contact_timeout``) seconds; any other error as it is.
        """
        started = time.monotonic()
        delay = FIRST_RETRY_DELAY
        attempt = 0
        with storage_call():
            while True:
                try:
                    result = call()
                except Exception as exc:
                    self._give_up_unless_transient(what, exc, time.monotonic() - started)
                    attempt += 1
                    log = _log.warning if delay >= _OUTAGE_SECONDS else _log.debug
                    log(
                        "storage %s unreachable during %s (%s); retry %d in %.1fs",
                        self.display_url,
                        what,
                        describe_storage_error(exc),
                        attempt,
                        delay,
                    )
                    pause(delay)
                    delay = min(delay * 2, MAX_RETRY_DELAY)
                    continue
                if attempt and time.monotonic() - started >= _OUTAGE_SECONDS:
                    _log.warning(
                        "storage %s reachable again; %s succeeded after %d retries (%.1fs)",
                        self.display_url,
                        what,
                        attempt,
                        time.monotonic() - started,
                    )
                self.reached = True
                return result

    def _give_up_unless_transient(self, what: str, exc: Exception, waited: float) -> None:
        """Raise (from ``exc``) unless ``exc`` is transient and there is time left to wait."""
        if not is_transient(exc):
            if isinstance(_root_db_error(exc), sqlalchemy.exc.OperationalError):
                # A database that refuses the write (read-only file, full disk): say what it
                # said, in one line, instead of Optuna's generic "invalid data in the commit".
                raise StorageError(
                    f"storage {self.display_url!r} refused {what}: {describe_storage_error(exc)}"
                ) from exc
            raise exc
        limit, option = self.options.retry_timeout, "retry_timeout"
        if not self.reached and self.options.first_contact_timeout < limit:
            limit, option = self.options.first_contact_timeout, "first_contact_timeout"
        if waited >= limit:
            never = "" if self.reached else " (never reached from this process)"
            raise StorageUnreachable(
                f"storage {self.display_url!r} still unreachable after "
                f"{waited:.0f}s{never} ({option}={limit:g}s, a URL option): "
                f"{describe_storage_error(exc)}"
            ) from exc
