"""The SQLite or PostgreSQL storage: Optuna's RDBStorage with retries, the set-up lock, the
held-trial ledger and logged re-queues of stale trials.

Contract of the storage :func:`open_url` returns:

* **Heartbeats.** Every running trial records a heartbeat every ``heartbeat_interval`` seconds.
  A trial whose heartbeat is older than ``grace_period`` (its worker was killed or cut off) is
  failed by the next worker that starts a trial, and a copy with the same params is queued
  (``RetryHeartbeatStaleTrialCallback``), so a dead worker costs time, never a configuration.
* **Retries.** Every storage call waits out an unreachable database (:mod:`.retry`). Pooled
  connections are pre-pinged, so a connection the server dropped during a long epoch is
  replaced instead of failing the worker.
* **A ledger of held trials** (:mod:`.ledger`), so a worker told to stop fails and re-queues
  exactly its own trials.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from lstm_tune.errors import StorageError
from lstm_tune.storages.interrupts import storage_call
from lstm_tune.storages.ledger import TrialLedger, hold
from lstm_tune.storages.requeue import requeue_failed
from lstm_tune.storages.retry import QUERY_CALLS, Retrier, describe_storage_error
from lstm_tune.storages.url import DatabaseURL, StorageOptions, StorageURL, redact_url, sqlite_file

__all__ = ["ResilientRDBStorage", "open_url", "setup_lock"]

# Fail fast on a PostgreSQL host that does not answer, so retries (and signals) are not stuck
# in one connect() for the OS default of minutes.
PG_CONNECT_TIMEOUT = 5
# SQLite: how long one statement waits for another process's write lock before "database is
# locked" (which we then retry on top).
SQLITE_BUSY_TIMEOUT = 30

# The PostgreSQL advisory lock (one per database) held while a process creates Optuna's schema
# or a study; any constant works as long as every lstm-tune version uses the same one.
SETUP_LOCK_KEY = 0x6C73_746D_7475_6E65 & 0x7FFF_FFFF_FFFF_FFFF  # "lstmtune"

# RDBStorage methods that only run a query: each is retried as a whole while the database is
# unreachable. The ones that also keep the ledger or log are written out in the class.
_RETRIED = (
    *QUERY_CALLS,
    "get_trial_number_from_id",
    "get_trial_param",
    "get_n_trials",
    "get_best_trial",
    # Optuna's cache layer (_CachedStorage) calls these private ones directly.
    "_get_trials",
    "_set_trial_param",
    "_get_best_trial_id",
)

_log = logging.getLogger("lstm_tune.storages")
T = TypeVar("T")
C = TypeVar("C", bound=type)


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
    path = sqlite_file(url)
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
    elif path is not None:
        fd = os.open(Path(path).resolve().parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock
    else:
        yield


def _retried(*names: str) -> Callable[[C], C]:
    """Class decorator: each RDBStorage method in ``names`` runs through the class's retries."""

    def decorate(cls: C) -> C:
        for name in names:
            setattr(cls, name, _retrying(name))
        return cls

    return decorate


def _retrying(name: str) -> Callable[..., Any]:
    base = getattr(optuna.storages.RDBStorage, name)

    @functools.wraps(base)
    def method(self: ResilientRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return self._with_retry(name, lambda: base(self, *args, **kwargs))

    return method


@_retried(*_RETRIED)
class ResilientRDBStorage(TrialLedger, optuna.storages.RDBStorage):
    """RDBStorage that retries while the database is unreachable and tracks held trials.

    Heartbeats are on unless ``options.heartbeat_interval`` is None; stale trials are failed
    and re-queued up to ``options.max_requeue`` times.
    """

    stale_failed_by = "by another worker while this one ran it"
    stale_checked_by = "another worker's stale-trial check"

    def __init__(
        self, url: str, *, options: StorageOptions, engine_kwargs: dict[str, Any]
    ) -> None:
        self.options = options
        self.display_url = redact_url(url)
        self._retry = Retrier(self.display_url, options)
        self._heartbeat_refused: set[int] = set()
        heartbeat: dict[str, Any] = {}
        # Heartbeats and their retry callback are "experimental" in Optuna 5; we rely on them on
        # purpose (tests/unit/storages and the conformance suite pin their behaviour), so
        # silence that warning.
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
        """Hold this database's set-up lock (see :func:`setup_lock`), e.g. to create a study;
        taking it waits out an unreachable database like every other call (the chaos soak saw
        a worker that opened its study during a restart die with ``AdminShutdown``)."""

        def take() -> contextlib.ExitStack:
            held = contextlib.ExitStack()
            try:
                held.enter_context(
                    setup_lock(make_url(self.url), self.engine_kwargs.get("connect_args"))
                )
            except BaseException:
                held.close()
                raise
            return held

        with self._with_retry("setup_lock", take):
            yield

    def _with_retry(self, what: str, call: Callable[[], T]) -> T:
        return self._retry.call(what, call)

    def _write_trial_state(self, write: Callable[[], bool]) -> bool:
        return self._with_retry("set_trial_state_values", write)

    # Optuna's trial life cycle, plus the ledger and idempotent retries.

    def _send_heartbeat(self, trial_id: int) -> None:
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
        """Create a trial (retrying while unreachable); hold it when it starts RUNNING.

        One storage call for both: a stop asked for during the create is raised once the
        trial is held (see :meth:`TrialLedger.set_trial_state_values`).
        """
        base = optuna.storages.RDBStorage._create_new_trial
        with storage_call():
            trial = self._with_retry(
                "create_new_trial", lambda: base(self, study_id, template_trial)
            )
            if trial.state == TrialState.RUNNING:
                hold(self, trial._trial_id, study_id)
        return trial

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """The study's stale trials, each one's params already re-queued (:mod:`.requeue`).

        Optuna's ``fail_stale_trials`` fails the stale trials first and queues their copies
        after, in a second step: a checker killed or cut off between the two lost the config
        (the 30-minute chaos soak lost one so). Queued here, before the FAIL, a checker that
        dies in between leaves a trial still stale, which the next checker fails, finding its
        copy queued (the retry callback then queues no second one). The set-up lock makes two
        checkers at once queue one copy. If the trial's worker finishes it in the few
        milliseconds between, its copy runs once more: a config run twice, none lost.
        """
        base = optuna.storages.RDBStorage._get_stale_trial_ids
        stale = self._with_retry("_get_stale_trial_ids", lambda: base(self, study_id))
        callback = self.get_heartbeat_stale_trial_callback()
        if not stale or not isinstance(callback, _LoggingRetryCallback):
            return stale
        study = optuna.study.Study(
            study_name=self.get_study_name_from_id(study_id),
            storage=self,
            sampler=optuna.samplers.RandomSampler(),
        )
        with self.setup_lock():
            for trial_id in stale:
                trial = self.get_trial(trial_id)
                if trial.state == TrialState.RUNNING:
                    requeue_failed(study, trial, callback.max_requeue)
        return stale

    def quiet_running_trials(self, study_id: int, quiet_for: float) -> list[int]:
        """The study's RUNNING trials whose last heartbeat is older than ``quiet_for`` seconds
        (by the database's clock, as Optuna's stale check): their worker may be dead, and
        they go stale at ``grace_period``. Optuna's own query, with this threshold instead of
        the grace period (it has no public call for it)."""
        from optuna.storages._rdb import models

        def call() -> list[int]:
            with self.scoped_session() as session:
                now = session.execute(sqlalchemy.func.now()).scalar()
                assert now is not None
                now = now.replace(tzinfo=None)  # PostgreSQL answers timezone-aware
                rows = (
                    session.query(models.TrialModel.trial_id, models.TrialHeartbeatModel.heartbeat)
                    .join(models.TrialHeartbeatModel)
                    .filter(models.TrialModel.state == TrialState.RUNNING)
                    .filter(models.TrialModel.study_id == study_id)
                    .all()
                )
            return [t for t, beat in rows if (now - beat).total_seconds() > quiet_for]

        return self._with_retry("quiet_running_trials", call)

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


class _LoggingRetryCallback:
    """Re-queue a stale trial's params (see :func:`.requeue.requeue_failed`, which calls
    Optuna's ``RetryHeartbeatStaleTrialCallback``) and say so."""

    def __init__(self, max_requeue: int, *, grace_period: int) -> None:
        self.grace_period = grace_period
        self.max_requeue = max_requeue

    def __call__(self, study: optuna.study.Study, trial: FrozenTrial) -> None:
        requeued = requeue_failed(study, trial, self.max_requeue)
        if requeued.copy is not None:
            _log.warning(
                "trial %d had no heartbeat for %ds (its worker died or was cut off): "
                "failed and its params re-queued as trial %d",
                trial.number,
                self.grace_period,
                requeued.copy,
            )
        else:
            _log.warning(
                "trial %d had no heartbeat for %ds: failed; not re-queued, %s",
                trial.number,
                self.grace_period,
                requeued.why_not,
            )


def _engine_kwargs(url: URL) -> dict[str, Any]:
    if url.drivername == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": PG_CONNECT_TIMEOUT}}


def open_url(
    parsed: StorageURL, *, storage_class: type[ResilientRDBStorage] = ResilientRDBStorage
) -> ResilientRDBStorage:
    """Open the database ``parsed`` names (waiting, with logged retries, while unreachable).

    ``storage_class`` replaces :class:`ResilientRDBStorage` (the proxy's own database storage
    is a subclass). Raises :class:`StorageError` for a database still unreachable after
    ``retry_timeout`` seconds or one that refuses to open.
    """
    if not isinstance(parsed, DatabaseURL):
        raise TypeError(f"{parsed.scheme}:// is not a database URL; this module opens those")
    try:
        return storage_class(
            parsed.database.render_as_string(hide_password=False),
            options=parsed.options,
            engine_kwargs=_engine_kwargs(parsed.database),
        )
    except StorageError:
        raise
    except Exception as exc:  # sqlalchemy raises many kinds; all mean "cannot open"
        raise StorageError(
            f"cannot open storage {redact_url(parsed.text)!r}: {describe_storage_error(exc)}"
        ) from exc
