"""lstm_tune.storages.retry: which database errors are worth waiting out, how one is said in
a line, and the Retrier's backoff, time limits and log lines (with made-up errors)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

import optuna
import pytest
import sqlalchemy.exc

from lstm_tune.errors import StorageError
from lstm_tune.storages import describe_storage_error
from lstm_tune.storages.retry import Retrier, is_transient
from lstm_tune.storages.url import StorageOptions


class _PgError(Exception):
    """Stands in for a psycopg error: a message and, when the server sent one, a SQLSTATE."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _operational(orig: BaseException) -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, orig)


def _wrapped_by_optuna(err: BaseException) -> BaseException:
    """``err`` as Optuna raises it: a StorageInternalError raised from it."""
    try:
        try:
            raise err
        except Exception as exc:
            raise optuna.exceptions.StorageInternalError("An exception is raised") from exc
    except optuna.exceptions.StorageInternalError as outer:
        return outer


@pytest.mark.parametrize(
    ("orig", "transient"),
    [
        (_PgError("server closed the connection", "08006"), True),
        (_PgError("the database system is shutting down", "57P01"), True),
        (_PgError("sorry, too many clients already", "53300"), True),
        (_PgError("password authentication failed", "28P01"), False),
        (_PgError("connection refused"), True),  # no SQLSTATE: the server is not up yet
        (_PgError('database "x" does not exist'), False),
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("attempt to write a readonly database"), False),
    ],
)
def test_only_errors_that_waiting_can_heal_are_transient(
    orig: BaseException, transient: bool
) -> None:
    assert is_transient(_operational(orig)) is transient
    assert is_transient(_wrapped_by_optuna(_operational(orig))) is transient


def test_errors_that_are_not_the_databases_are_not_transient() -> None:
    assert not is_transient(ValueError("bad value"))
    integrity = sqlalchemy.exc.IntegrityError("INSERT", {}, _PgError("duplicate key", "23505"))
    assert not is_transient(integrity)
    assert is_transient(sqlalchemy.exc.PendingRollbackError("connection died mid-transaction"))


def test_a_storage_error_is_described_in_one_line_with_the_drivers_words() -> None:
    readonly = _wrapped_by_optuna(
        _operational(sqlite3.OperationalError("attempt to write a readonly database"))
    )
    assert describe_storage_error(readonly) == (
        "OperationalError: attempt to write a readonly database "
        "(read-only volume or file permissions?)"
    )
    multiline = _operational(_PgError("connection failed\nDETAIL: more"))
    assert describe_storage_error(multiline) == "_PgError: connection failed"
    assert describe_storage_error(ValueError("x" * 300)) == ("ValueError: " + "x" * 300)[:200]
    assert describe_storage_error(KeyError()) == "KeyError: KeyError"


def _failing(times: int, error: BaseException) -> tuple[list[int], Callable[[], str]]:
    """A call that raises ``error`` ``times`` times, then returns; and its call count."""
    calls = [0]

    def call() -> str:
        calls[0] += 1
        if calls[0] <= times:
            raise error
        return "done"

    return calls, call


LOCKED = _operational(sqlite3.OperationalError("database is locked"))


def test_a_transient_failure_is_retried_until_the_call_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    retrier = Retrier("sqlite:///x.db", StorageOptions())
    calls, call = _failing(2, LOCKED)
    with caplog.at_level(logging.DEBUG, logger="lstm_tune.storages"):
        assert retrier.call("get_trial", call) == "done"
    assert calls == [3] and retrier.reached
    lines = [r for r in caplog.records if r.name == "lstm_tune.storages"]
    # Lock waits of milliseconds are DEBUG lines, not an outage worth a warning.
    assert [r.levelname for r in lines] == ["DEBUG", "DEBUG"]
    assert lines[0].getMessage() == (
        "storage sqlite:///x.db unreachable during get_trial "
        "(OperationalError: database is locked); retry 1 in 0.1s"
    )


def test_a_database_never_reached_is_reported_after_first_contact_timeout() -> None:
    options = StorageOptions(retry_timeout=60, first_contact_timeout=0.2)
    retrier = Retrier("postgresql+psycopg://u:***@db/x", options)
    _, call = _failing(10**6, LOCKED)
    with pytest.raises(StorageError) as info:
        retrier.call("connect", call)
    assert str(info.value) == (
        "storage 'postgresql+psycopg://u:***@db/x' still unreachable after 0s "
        "(never reached from this process) (first_contact_timeout=0.2s, a URL option): "
        "OperationalError: database is locked"
    )
    assert isinstance(info.value.__cause__, sqlalchemy.exc.OperationalError)


def test_a_database_reached_before_is_waited_for_up_to_retry_timeout() -> None:
    retrier = Retrier("sqlite:///x.db", StorageOptions(retry_timeout=0.2))
    retrier.call("connect", lambda: None)
    _, call = _failing(10**6, LOCKED)
    with pytest.raises(StorageError, match=r"after 0s \(retry_timeout=0.2s, a URL option\)"):
        retrier.call("get_trial", call)


def test_a_refused_write_is_one_line_and_other_errors_pass_through_untouched() -> None:
    retrier = Retrier("sqlite:///x.db", StorageOptions())
    readonly = _operational(sqlite3.OperationalError("attempt to write a readonly database"))
    calls, call = _failing(1, _wrapped_by_optuna(readonly))
    with pytest.raises(StorageError, match="^storage 'sqlite:///x.db' refused create_new_study: "):
        retrier.call("create_new_study", call)
    assert calls == [1]  # not retried
    bug = KeyError("no such trial")
    with pytest.raises(KeyError) as info:
        retrier.call("get_trial", _failing(1, bug)[1])
    assert info.value is bug
