"""Turn a storage URL into an Optuna storage; the only module that builds one.

Contract of the storage :func:`open_storage` returns (SQLite file or PostgreSQL):

* **Heartbeats.** Every running trial records a heartbeat every ``heartbeat_interval`` seconds.
  A trial whose heartbeat is older than ``grace_period`` (its worker was killed or cut off) is
  failed by the next worker that starts a trial, and a copy with the same params is queued
  (``RetryHeartbeatStaleTrialCallback``), so a dead worker costs time, never a configuration.
* **Retries.** While the database is unreachable (not started yet, restarting, network cut,
  SQLite "database is locked") every storage call waits with exponential backoff, logging each
  retry on the ``lstm_tune.storages`` logger, for up to ``retry_timeout`` seconds, then raises
  :class:`~lstm_tune.errors.StorageError`. Pooled connections are pre-pinged, so a connection
  the server dropped during a long epoch is replaced instead of failing the worker.
* **A ledger of held trials.** The process remembers which trials it holds RUNNING, so a
  worker that is told to stop can fail and re-queue exactly its own trials
  (:func:`held_trials`).

The tuning knobs are query parameters of the URL (stripped before it reaches the driver), so
one URL string describes the storage everywhere (CLI flag, env var, compose file)::

    postgresql+psycopg://user:pw@db/optuna?heartbeat_interval=10&grace_period=60
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy.exc
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from lstm_tune.errors import StorageError

__all__ = [
    "BUDGET_ATTR",
    "SPEC_ATTR",
    "SUPPORTED_SCHEMES",
    "HeldTrial",
    "ResilientRDBStorage",
    "StorageOptions",
    "held_trials",
    "in_storage_call",
    "open_storage",
    "raise_when_safe",
    "redact_url",
    "require_existing_sqlite",
    "setup_lock",
    "split_options",
]

SUPPORTED_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "grpc")

# Study user attributes lstm-tune keeps: the study file it was created from (so export-best
# and every worker read the same spec), and the shared trial budget. Here, not in worker.py,
# so commands that only read a study do not import the training stack (TensorFlow).
SPEC_ATTR = "lstm_tune_spec"
BUDGET_ATTR = "lstm_tune_budget"

# Heartbeat every 10 s: one tiny UPDATE per worker, invisible next to an epoch of training.
DEFAULT_HEARTBEAT_INTERVAL = 10
# A trial is declared dead after 60 s without a heartbeat: long enough to ride out a database
# restart or a stalled network (the heartbeat thread retries meanwhile), short enough that a
# killed worker's configuration runs again within about a minute.
DEFAULT_GRACE_PERIOD = 60
# Keep waiting for an unreachable database for 10 minutes: covers a database container being
# recreated or a managed database failing over, but still ends a worker pointed at a dead host.
DEFAULT_RETRY_TIMEOUT = 600.0
# ... but a database this process has never reached (a wrong host, a refused port) is most
# likely a mistake: say so after this long. A pool whose database starts later than its
# workers sets the URL option first_contact_timeout higher.
DEFAULT_FIRST_CONTACT_TIMEOUT = 20.0
# A configuration whose worker dies three times in a row is itself suspect (e.g. it exhausts
# memory and gets OOM-killed); do not re-queue it forever.
DEFAULT_MAX_REQUEUE = 3
# Backoff between retries: start fast (SQLite locks clear in milliseconds), cap at 10 s so a
# restarted server is noticed quickly.
FIRST_RETRY_DELAY = 0.05
MAX_RETRY_DELAY = 10.0
# Fail fast on a PostgreSQL host that does not answer, so retries (and signals) are not stuck
# in one connect() for the OS default of minutes.
PG_CONNECT_TIMEOUT = 5
# SQLite: how long one statement waits for another process's write lock before "database is
# locked" (which we then retry on top).
SQLITE_BUSY_TIMEOUT = 30

_OPTION_NAMES = (
    "heartbeat_interval",
    "grace_period",
    "retry_timeout",
    "max_requeue",
    "first_contact_timeout",
)
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

# The PostgreSQL advisory lock (one per database) held while a process creates Optuna's schema
# or a study; any constant works as long as every lstm-tune version uses the same one.
SETUP_LOCK_KEY = 0x6C73_746D_7475_6E65 & 0x7FFF_FFFF_FFFF_FFFF  # "lstmtune"

_log = logging.getLogger("lstm_tune.storages")
T = TypeVar("T")


@dataclass(frozen=True)
class StorageOptions:
    """Heartbeat, retry and re-queue settings read from the storage URL's query string."""

    heartbeat_interval: int | None = DEFAULT_HEARTBEAT_INTERVAL
    grace_period: int = DEFAULT_GRACE_PERIOD
    retry_timeout: float = DEFAULT_RETRY_TIMEOUT
    max_requeue: int = DEFAULT_MAX_REQUEUE
    first_contact_timeout: float = DEFAULT_FIRST_CONTACT_TIMEOUT


@dataclass(frozen=True)
class HeldTrial:
    """A trial this process moved to RUNNING and has not finished yet."""

    trial_id: int
    study_id: int
    storage: optuna.storages.BaseStorage


# A password in a URL's user part (``//user:secret@``) or its query (``password=secret``),
# found by pattern so that even a URL SQLAlchemy cannot parse is printed without it.
_USERINFO_PASSWORD = re.compile(r"(//[^/:@]*:)([^@/]*)(@)")
_QUERY_PASSWORD = re.compile(r"([?&](?:password|passwd|pwd)=)([^&#]*)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (safe to print or export): in
    the user part and in the query string, and also when the URL does not parse."""
    try:
        text = make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        text = _USERINFO_PASSWORD.sub(r"\1***\3", url)
    return _QUERY_PASSWORD.sub(r"\1***", text)


def _int_option(name: str, raw: str, url: str, *, allow_zero: bool) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0 or (value == 0 and not allow_zero):
        allowed = "an integer >= 0" if allow_zero else "an integer >= 1"
        raise StorageError(
            f"storage URL {redact_url(url)!r}: {name}={raw!r} is not allowed; expected {allowed}"
        )
    return value


def split_options(url: str) -> tuple[URL, StorageOptions]:
    """Parse ``url``; return it without lstm-tune's query options, and those options."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise StorageError(
            f"storage URL {redact_url(url)!r} is not a valid URL; "
            f"expected e.g. sqlite:///studies/imdb.db or postgresql+psycopg://user@host/db"
        ) from exc
    if parsed.drivername.startswith("sqlite") and parsed.database in (None, "", ":memory:"):
        raise StorageError(
            f"storage URL {redact_url(url)!r} is an in-memory SQLite database: the study would "
            f"vanish when the process exits; give a file, e.g. sqlite:///studies/imdb.db"
        )
    if parsed.drivername not in SUPPORTED_SCHEMES:
        raise StorageError(
            f"storage URL scheme {parsed.drivername!r} is not supported; "
            f"allowed: {', '.join(SUPPORTED_SCHEMES)}"
        )
    query = dict(parsed.query)
    raw = {name: query.pop(name) for name in _OPTION_NAMES if name in query}
    if parsed.drivername == "sqlite" and query:
        # SQLite's driver ignores other query arguments with only a warning: a misspelt
        # option (heartbeat_intervall=5) would silently run with the default.
        raise StorageError(
            f"storage URL {redact_url(url)!r}: option {sorted(query)[0]!r} is not one of "
            f"lstm-tune's ({', '.join(_OPTION_NAMES)}), and SQLite takes no other"
        )
    values: dict[str, Any] = {}
    for name, value in raw.items():
        text = value if isinstance(value, str) else value[-1]
        if name in ("retry_timeout", "first_contact_timeout"):
            try:
                seconds = float(text)
            except ValueError:
                seconds = -1.0
            if seconds < 0:
                raise StorageError(
                    f"storage URL {redact_url(url)!r}: {name}={text!r} is not allowed; "
                    f"expected seconds >= 0"
                )
            values[name] = seconds
        else:
            number = _int_option(name, text, url, allow_zero=name != "grace_period")
            values[name] = None if number == 0 and name == "heartbeat_interval" else number
    options = StorageOptions(**values)
    interval = options.heartbeat_interval
    if interval is not None and options.grace_period <= interval:
        raise StorageError(
            f"storage URL {redact_url(url)!r}: grace_period={options.grace_period} must be "
            f"greater than heartbeat_interval={options.heartbeat_interval}, or a live worker's "
            f"trial would be declared dead between two heartbeats"
        )
    return parsed.set(query=query), options


def check_url(url: str) -> None:
    """Raise :class:`StorageError` for a storage URL of the wrong form; connects to nothing."""
    if url.startswith("grpc:"):
        from lstm_tune.storages.grpc import parse_grpc_url

        parse_grpc_url(url)
    else:
        split_options(url)


def require_existing_sqlite(storage_url: str) -> None:
    """Fail if ``storage_url`` names a SQLite file that does not exist.

    Opening it would silently create an empty database (a read-only command such as
    export-best would leave ``studies/<typo>.db`` behind), and a viewer would show no studies
    instead of saying the path is wrong.
    """
    try:
        url = make_url(storage_url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return  # open_storage explains what is wrong with the URL
    if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
        if not Path(url.database).exists():
            raise StorageError(
                f"storage {absolute_url(storage_url)!r}: SQLite file {url.database!r} does not "
                f"exist (relative paths start at {str(Path.cwd())!r}); run a search first or "
                f"fix the path"
            )


def absolute_url(url: str) -> str:
    """``url`` redacted, with a relative SQLite path made absolute (what a user can paste)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return redact_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        parsed = parsed.set(database=str(Path(parsed.database).resolve()))
    return redact_url(parsed.render_as_string(hide_password=False))


@contextmanager
def setup_lock(url: URL, connect_args: dict[str, Any] | None = None) -> Iterator[None]:
    """Hold the database's set-up lock: one process at a time creates tables or a study.

    Optuna creates its schema (tables, enum types, version rows) and a study without a lock,
    so workers starting together on a new database collided (``UniqueViolation ... CREATE TYPE
    studydirection``). PostgreSQL: a session advisory lock, released when its connection
    closes, even if the holder is killed. SQLite: ``flock`` on the file's directory (not on the
    file: closing another descriptor of the file would drop SQLite's own locks), released by
    the kernel when the holder exits.
    """
    if url.drivername.startswith("postgresql"):
        engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args=connect_args or {})
        try:
            with engine.connect() as connection:
                connection.execute(
                    sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": SETUP_LOCK_KEY}
                )
                connection.commit()  # a session lock: it outlives this transaction
                yield  # closing the connection (NullPool: for real) releases the lock
        finally:
            engine.dispose()
    elif url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
        fd = os.open(Path(url.database).resolve().parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock
    else:
        yield


def open_storage(
    url: str,
    *,
    must_exist: bool = False,
    storage_class: type[ResilientRDBStorage] | None = None,
) -> optuna.storages.BaseStorage:
    """Return the Optuna storage for ``url`` (``sqlite:///path.db``, ``postgresql+psycopg://``,
    or ``grpc://host:port`` for ``lstm-tune storage-proxy``, see :mod:`lstm_tune.storages.grpc`).

    Waits (with logged retries) for a database that is not reachable yet; raises
    :class:`StorageError` for a malformed URL, an unsupported scheme, a bad option, or a
    database still unreachable after ``retry_timeout`` seconds. ``must_exist`` (read-only
    commands) refuses a SQLite file that does not exist instead of creating it.
    ``storage_class`` replaces :class:`ResilientRDBStorage` (the proxy's own database storage
    is a subclass).
    """
    if url.startswith("grpc:"):
        from lstm_tune.storages.grpc import open_grpc_storage

        return open_grpc_storage(url)
    clean, options = split_options(url)
    if must_exist:
        require_existing_sqlite(url)
    if clean.drivername == "sqlite":
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
    else:
        engine_kwargs = {
            "pool_pre_ping": True,
            "connect_args": {"connect_timeout": PG_CONNECT_TIMEOUT},
        }
    try:
        return (storage_class or ResilientRDBStorage)(
            clean.render_as_string(hide_password=False),
            options=options,
            engine_kwargs=engine_kwargs,
        )
    except StorageError:
        raise
    except Exception as exc:  # sqlalchemy raises many kinds; all mean "cannot open"
        raise StorageError(f"cannot open storage {redact_url(url)!r}: {_short(exc)}") from exc


# --- retry classification -------------------------------------------------------------------


def _db_errors(exc: BaseException) -> list[sqlalchemy.exc.SQLAlchemyError]:
    """The SQLAlchemy errors behind ``exc`` (Optuna wraps them in StorageInternalError)."""
    found: list[sqlalchemy.exc.SQLAlchemyError] = []
    seen: BaseException | None = exc
    for _ in range(8):  # Optuna and SQLAlchemy chain a handful of levels at most
        if seen is None:
            break
        if isinstance(seen, sqlalchemy.exc.SQLAlchemyError):
            found.append(seen)
        seen = seen.__cause__ or seen.__context__
    return found


def _root_db_error(exc: BaseException) -> BaseException | None:
    errors = _db_errors(exc)
    return errors[-1] if errors else None


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` means "the database is unreachable or busy right now", not a bug."""
    return any(_is_transient_db_error(err) for err in _db_errors(exc))


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


# --- signals: do not interrupt a storage call halfway -----------------------------------------

_call_state = threading.local()
_pending_interrupt: BaseException | None = None


def in_storage_call() -> bool:
    """True while the calling thread is inside a storage call (a transaction may be open)."""
    return getattr(_call_state, "depth", 0) > 0


def raise_when_safe(exc: BaseException) -> None:
    """Raise ``exc`` now, or, inside a storage call, as soon as that call has returned.

    Meant for signal handlers (which run in the main thread): raising in the middle of a
    commit could leave a trial half-written, raising between calls cannot.
    """
    global _pending_interrupt
    if in_storage_call():
        _pending_interrupt = exc
        return
    raise exc


def _raise_pending() -> None:
    global _pending_interrupt
    if _pending_interrupt is not None and threading.current_thread() is threading.main_thread():
        exc, _pending_interrupt = _pending_interrupt, None
        raise exc


def _sleep(seconds: float) -> None:
    """Sleep in short steps, so a stop requested meanwhile is raised promptly."""
    deadline = time.monotonic() + seconds
    while True:
        _raise_pending()
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.2))  # 0.2 s: how late a stop request may be noticed


# --- the ledger of trials this process holds RUNNING ------------------------------------------

_held: dict[int, HeldTrial] = {}
_held_lock = threading.Lock()


def held_trials() -> list[HeldTrial]:
    """Trials this process moved to RUNNING and has not finished (e.g. to fail on SIGTERM)."""
    with _held_lock:
        return list(_held.values())


def _hold(storage: Any, trial_id: int) -> None:
    study_id = storage.get_study_id_of_trial(trial_id)
    with _held_lock:
        _held[trial_id] = HeldTrial(trial_id, study_id, storage)


def _is_held(trial_id: int) -> bool:
    with _held_lock:
        return trial_id in _held


def _release(trial_id: int) -> None:
    with _held_lock:
        _held.pop(trial_id, None)


# --- the storage -----------------------------------------------------------------------------


class ResilientRDBStorage(optuna.storages.RDBStorage):
    """RDBStorage that retries while the database is unreachable and tracks held trials.

    Heartbeats are on unless ``options.heartbeat_interval`` is None; stale trials are failed
    and re-queued up to ``options.max_requeue`` times.
    """

    def __init__(
        self, url: str, *, options: StorageOptions, engine_kwargs: dict[str, Any]
    ) -> None:
        self.options = options
        self.display_url = redact_url(url)
        # Until the database has answered once, a wrong host or port is a mistake to report
        # within seconds, not an outage to wait out (see ``first_contact_timeout``).
        self._reached = False
        self._heartbeat_refused: set[int] = set()
        heartbeat: dict[str, Any] = {}
        # Heartbeats and their retry callback are "experimental" in Optuna 5; we rely on them on
        # purpose (tests/test_storage.py pins their behaviour), so silence that warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if options.heartbeat_interval is not None:
                heartbeat = {
                    "heartbeat_interval": options.heartbeat_interval,
                    "grace_period": options.grace_period,
                    "heartbeat_stale_trial_callback": _LoggingRetryCallback(
                        options.max_requeue, grace_period=options.grace_period
                    ),
                }

            # The first connection happens here (table creation, schema check): retry it too,
            # and create the schema under the set-up lock (workers may start together).
            def connect() -> None:
                with setup_lock(make_url(url), engine_kwargs.get("connect_args")):
                    optuna.storages.RDBStorage.__init__(
                        self, url, engine_kwargs=engine_kwargs, **heartbeat
                    )

            self._with_retry("connect", connect)

    @contextmanager
    def setup_lock(self) -> Iterator[None]:
        """Hold this database's set-up lock (see :func:`setup_lock`), e.g. to create a study."""
        with setup_lock(make_url(self.url), self.engine_kwargs.get("connect_args")):
            yield

    def _with_retry(self, what: str, call: Callable[[], T]) -> T:
        started = time.monotonic()
        delay = FIRST_RETRY_DELAY
        attempt = 0
        _call_state.depth = getattr(_call_state, "depth", 0) + 1
        try:
            while True:
                try:
                    result = call()
                except Exception as exc:
                    if not is_transient(exc):
                        if isinstance(_root_db_error(exc), sqlalchemy.exc.OperationalError):
                            # A database that refuses the write (read-only file, full disk):
                            # say what it said, in one line, instead of Optuna's generic
                            # "invalid data in the commit".
                            raise StorageError(
                                f"storage {self.display_url!r} refused {what}: {_short(exc)}"
                            ) from exc
                        raise
                    waited = time.monotonic() - started
                    limit, option = self.options.retry_timeout, "retry_timeout"
                    if not self._reached and self.options.first_contact_timeout < limit:
                        limit, option = self.options.first_contact_timeout, "first_contact_timeout"
                    if waited >= limit:
                        never = "" if self._reached else " (never reached from this process)"
                        raise StorageError(
                            f"storage {self.display_url!r} still unreachable after "
                            f"{waited:.0f}s{never} ({option}={limit:g}s, a URL option): "
                            f"{_short(exc)}"
                        ) from exc
                    attempt += 1
                    # Locks (SQLite) clear in milliseconds: only a real outage is worth a line.
                    log = _log.warning if delay >= 0.5 else _log.debug
                    log(
                        "storage %s unreachable during %s (%s); retry %d in %.1fs",
                        self.display_url,
                        what,
                        _short(exc),
                        attempt,
                        delay,
                    )
                    _sleep(delay)
                    delay = min(delay * 2, MAX_RETRY_DELAY)
                    continue
                if attempt and time.monotonic() - started >= 0.5:
                    _log.warning(
                        "storage %s reachable again; %s succeeded after %d retries (%.1fs)",
                        self.display_url,
                        what,
                        attempt,
                        time.monotonic() - started,
                    )
                self._reached = True
                return result
        finally:
            _call_state.depth -= 1
            if _call_state.depth == 0:
                _raise_pending()

    # Optuna's trial life cycle, plus the ledger and idempotent retries.

    def record_heartbeat(self, trial_id: int) -> None:
        """Record a running trial's heartbeat (retried while unreachable); a refusal is logged.

        This runs in Optuna's heartbeat thread, where an exception would print a thread
        traceback and end the heartbeats for good. A storage that refuses writes (read-only,
        full) is met by the main thread's next write too, which stops the worker with one
        line; heartbeats resume by themselves if the storage takes writes again first.
        """
        base = optuna.storages.RDBStorage.record_heartbeat
        try:
            self._with_retry("record_heartbeat", lambda: base(self, trial_id))
        except StorageError as exc:
            if trial_id not in self._heartbeat_refused:
                self._heartbeat_refused.add(trial_id)
                _log.warning("heartbeat of a running trial not recorded: %s", exc)

    def _create_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None = None
    ) -> FrozenTrial:
        """Create a trial (retrying while unreachable); remember it when it starts RUNNING."""
        base = optuna.storages.RDBStorage._create_new_trial
        trial = self._with_retry("create_new_trial", lambda: base(self, study_id, template_trial))
        if trial.state == TrialState.RUNNING:
            with _held_lock:
                _held[trial._trial_id] = HeldTrial(trial._trial_id, study_id, self)
        return trial

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        """Move a trial to ``state``; a retry that finds its own earlier write counts as done."""
        base = optuna.storages.RDBStorage.set_trial_state_values
        attempts = [0]

        def call() -> bool:
            attempts[0] += 1
            return base(self, trial_id, state, values)

        try:
            updated = self._with_retry("set_trial_state_values", call)
        except optuna.exceptions.UpdateFinishedTrialError:
            current = self.get_trial(trial_id).state
            if attempts[0] > 1 and current == state:
                updated = True  # the first attempt committed; only its answer was lost
            elif state.is_finished() and current == TrialState.FAIL and _is_held(trial_id):
                # Another worker declared this trial dead (no heartbeat for grace_period, e.g.
                # while the database was down) and queued a copy: the copy will run it again.
                _log.warning(
                    "trial %d was failed as stale by another worker while this one ran it; "
                    "its result is discarded and its re-queued copy will run it again",
                    self.get_trial_number_from_id(trial_id),
                )
                _release(trial_id)
                return False
            else:
                raise
        if updated and state == TrialState.RUNNING:
            _hold(self, trial_id)
        elif state.is_finished():
            _release(trial_id)
        return updated

    def get_study_id_of_trial(self, trial_id: int) -> int:
        """The id of the study that holds ``trial_id``."""
        from optuna.storages._rdb import models

        def call() -> int:
            with self.scoped_session() as session:
                trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
                study_id = trial.study_id  # typed Optional by Optuna's model; never None stored
                assert study_id is not None
                return study_id

        return self._with_retry("get_study_id_of_trial", call)


class _LoggingRetryCallback(RetryHeartbeatStaleTrialCallback):
    """Re-queue a stale trial's params (up to ``max_retry`` times) and say so in the log."""

    def __init__(self, max_retry: int, *, grace_period: int) -> None:
        super().__init__(max_retry=max_retry)
        self.grace_period = grace_period
        self.max_requeue = max_retry

    def __call__(self, study: optuna.study.Study, trial: FrozenTrial) -> None:
        failures = len(trial.system_attrs.get("retry_history", [])) + 1
        super().__call__(study, trial)
        if failures <= self.max_requeue:
            _log.warning(
                "trial %d had no heartbeat for %ds (its worker died or was cut off): "
                "failed and its params re-queued",
                trial.number,
                self.grace_period,
            )
        else:
            _log.warning(
                "trial %d had no heartbeat for %ds: failed; not re-queued, its params already "
                "lost their worker %d times",
                trial.number,
                self.grace_period,
                failures,
            )


# SQLite says "unable to open database file" when it cannot create its journal beside the
# database, which is what a volume gone read-only (or a directory without write permission)
# looks like mid-run; the bare message reads like a wrong path.
_SQLITE_HINTS = {
    "unable to open database file": "its directory is not writable: read-only volume or "
    "permissions?",
    "attempt to write a readonly database": "read-only volume or file permissions?",
}


def _short(exc: BaseException) -> str:
    root = _root_db_error(exc)
    orig = getattr(root, "orig", None) or root or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    hint = _SQLITE_HINTS.get(text) if "sqlite" in type(orig).__module__ else None
    return f"{type(orig).__name__}: {text}{f' ({hint})' if hint else ''}"[:200]


_RETRIED = (
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
    "get_trial_number_from_id",
    "get_trial_param",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial",
    "get_all_trials",
    "get_n_trials",
    "get_best_trial",
    # Optuna's cache layer (_CachedStorage) calls these private ones directly.
    "_get_trials",
    "_set_trial_param",
    "_get_best_trial_id",
    "_get_stale_trial_ids",
)


def _retrying(name: str) -> Callable[..., Any]:
    base = getattr(optuna.storages.RDBStorage, name)

    @functools.wraps(base)
    def method(self: ResilientRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return self._with_retry(name, lambda: base(self, *args, **kwargs))

    return method


for _name in _RETRIED:
    setattr(ResilientRDBStorage, _name, _retrying(_name))
