"""lstm_tune.storages.url: every scheme's URL parsed and checked by one set of option rules,
passwords kept out of what is printed, SQLite paths checked and made absolute."""

from __future__ import annotations

from pathlib import Path

import pytest

from lstm_tune.errors import StorageError
from lstm_tune.storages import (
    absolute_url,
    check_url,
    open_storage,
    parse_url,
    redact_url,
    require_existing_sqlite,
    split_options,
)
from lstm_tune.storages.url import (
    BACKENDS,
    OPTION_NAMES,
    SUPPORTED_SCHEMES,
    DatabaseURL,
    GrpcURL,
    StorageOptions,
)


def _matching(message: str) -> str:
    return message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")


# --- database URLs --------------------------------------------------------------------------


def test_options_come_from_the_url_query_and_never_reach_the_driver() -> None:
    clean, options = split_options(
        "postgresql+psycopg://u:secret@db/optuna?heartbeat_interval=5&grace_period=20"
        "&retry_timeout=30&max_requeue=1&sslmode=disable"
    )
    assert (options.heartbeat_interval, options.grace_period) == (5, 20)
    assert (options.retry_timeout, options.max_requeue) == (30.0, 1)
    assert dict(clean.query) == {"sslmode": "disable"}
    assert split_options("sqlite:///x.db?heartbeat_interval=0")[1].heartbeat_interval is None


def test_a_url_without_options_gets_the_documented_defaults() -> None:
    parsed = parse_url("sqlite:///x.db")
    assert isinstance(parsed, DatabaseURL)
    assert parsed.options == StorageOptions()
    assert (parsed.options.heartbeat_interval, parsed.options.grace_period) == (10, 60)
    assert parsed.scheme == "sqlite" and parsed.backend == "lstm_tune.storages.rdb"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@h/db", "scheme 'mysql' is not supported; allowed: sqlite"),
        ("not a url", "is not a valid URL"),
        ("postgresql+psycopg://u:pw@db:port/x", "is not a valid URL"),
        ("sqlite://", "is an in-memory SQLite database"),
        ("sqlite:///:memory:", "is an in-memory SQLite database"),
        ("sqlite:///x.db?heartbeat_interval=soon", "heartbeat_interval='soon' is not allowed"),
        ("sqlite:///x.db?grace_period=0", "grace_period='0' is not allowed; expected an integer"),
        ("sqlite:///x.db?heartbeat_interval=10&grace_period=10", "must be greater than"),
        ("sqlite:///x.db?heartbeat_interval=60", "grace_period=60 must be greater than"),
        ("sqlite:///x.db?retry_timeout=-1", "retry_timeout='-1' is not allowed"),
        ("sqlite:///x.db?retry_timeout=nan", "retry_timeout='nan' is not allowed"),
        (
            "sqlite:///x.db?max_requeue=x",
            "max_requeue='x' is not allowed; expected an integer >= 0",
        ),
        ("sqlite:///x.db?first_contact_timeout=x", "first_contact_timeout='x' is not allowed"),
        ("sqlite:///x.db?heartbeat_intervall=5", "option 'heartbeat_intervall' is not one of"),
    ],
)
def test_bad_urls_name_the_value_and_what_is_allowed(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=_matching(message)):
        open_storage(url)
    with pytest.raises(StorageError, match=_matching(message)):
        check_url(url)


def test_postgresql_passes_its_own_query_arguments_to_the_driver() -> None:
    parsed = parse_url("postgresql+psycopg://u@db/x?sslmode=require&max_requeue=2")
    assert isinstance(parsed, DatabaseURL)
    assert dict(parsed.database.query) == {"sslmode": "require"}
    assert parsed.options.max_requeue == 2


def test_whole_numbers_may_be_written_as_floats_and_the_last_of_a_repeated_option_counts() -> None:
    assert parse_url("sqlite:///x.db?heartbeat_interval=5.0").options.heartbeat_interval == 5
    assert parse_url("grpc://h:1?heartbeat_interval=5&heartbeat_interval=6").options == (
        StorageOptions(heartbeat_interval=6)
    )
    with pytest.raises(StorageError, match="heartbeat_interval='x' is not allowed"):
        parse_url("sqlite:///x.db?heartbeat_interval=x&heartbeat_interval=5")


# --- grpc:// URLs ---------------------------------------------------------------------------


def test_grpc_urls_are_parsed_and_bad_ones_named() -> None:
    parsed = parse_url("grpc://proxy.ns.svc:13000?heartbeat_interval=5&retry_timeout=30")
    assert isinstance(parsed, GrpcURL)
    assert (parsed.host, parsed.port, parsed.options.heartbeat_interval) == (
        "proxy.ns.svc",
        13000,
        5,
    )
    assert parsed.options.retry_timeout == 30
    assert parsed.address == "grpc://proxy.ns.svc:13000"
    assert parsed.backend == "lstm_tune.storages.grpc"
    assert parse_url("grpc://h:1?heartbeat_interval=0").options.heartbeat_interval is None
    bad = {
        "grpc://h": "expected grpc://HOST:PORT",
        "grpc://h:99999": "expected grpc://HOST:PORT",
        "grpc://h:abc": "expected grpc://HOST:PORT",
        "grpc://u:pw@h:1": "has no user, password or database",
        "grpc://h:1/optuna": "has no user, password or database",
        "grpc://h:1?grace_period=60": "'grace_period' is not allowed on a grpc:// URL",
        "grpc://h:1?heartbeat_interval=1.5": "heartbeat_interval='1.5' is not allowed",
        "grpc://h:1?heartbeat_interval=inf": "heartbeat_interval='inf' is not allowed",
        "grpc://h:1?heartbeat_interval=": "heartbeat_interval='' is not allowed",
        "grpc://h:1?retry_timeout=-1": "retry_timeout='-1' is not allowed",
    }
    for url, message in bad.items():
        with pytest.raises(StorageError, match=_matching(message)):
            parse_url(url)


def test_a_grpc_url_takes_no_staleness_options_so_any_heartbeat_interval_is_fine() -> None:
    # grace_period belongs on the proxy's --storage URL: the default here must not refuse a
    # long heartbeat interval as if the worker judged staleness itself.
    assert parse_url("grpc://h:1?heartbeat_interval=100").options.heartbeat_interval == 100


# --- redaction ------------------------------------------------------------------------------


def test_redact_url_hides_the_password() -> None:
    assert redact_url("postgresql+psycopg://lstm:hunter2@db:5432/optuna") == (
        "postgresql+psycopg://lstm:***@db:5432/optuna"
    )
    assert redact_url("postgresql+psycopg://u@db/x?password=hunter2") == (
        "postgresql+psycopg://u@db/x?password=***"
    )
    # A URL SQLAlchemy cannot parse is still printed without its password.
    assert redact_url("postgresql://u:hunter2@db:port/x") == "postgresql://u:***@db:port/x"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u:hunter2@db/x?heartbeat_interval=soon",
        "postgresql+psycopg://u:hunter2@db:port/x",
        "mysql+x://u:hunter2@db/x",
        "sqlite:///x.db?password=hunter2",
        "grpc://u:hunter2@h:1",
        "grpc://h:1?password=hunter2",
        "grpc://h:1?retry_timeout=-1&pwd=hunter2",
    ],
)
def test_no_error_about_a_url_shows_its_password(url: str) -> None:
    with pytest.raises(StorageError) as info:
        check_url(url)
    assert "hunter2" not in str(info.value)


# --- SQLite files ---------------------------------------------------------------------------


def test_a_missing_sqlite_file_is_named_with_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError, match="SQLite file 'typo.db' does not exist") as info:
        require_existing_sqlite("sqlite:///typo.db")
    assert f"sqlite:///{tmp_path / 'typo.db'}" in str(info.value)
    (tmp_path / "there.db").touch()
    require_existing_sqlite("sqlite:///there.db")  # exists: no error
    require_existing_sqlite("postgresql+psycopg://u@db/x")  # not a file: nothing to check
    require_existing_sqlite("not a url")  # parse_url explains that one


def test_open_storage_must_exist_creates_no_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    with pytest.raises(StorageError, match="does not exist"):
        open_storage(url, must_exist=True)
    assert not (tmp_path / "none.db").exists()


def test_absolute_url_resolves_a_relative_sqlite_path_and_hides_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert absolute_url("sqlite:///studies/a.db") == f"sqlite:///{tmp_path / 'studies/a.db'}"
    assert absolute_url("postgresql+psycopg://u:pw@db/x") == "postgresql+psycopg://u:***@db/x"
    assert absolute_url("not a url") == "not a url"


# --- the scheme table -----------------------------------------------------------------------


def test_every_supported_scheme_has_a_backend_module_that_opens_it() -> None:
    import importlib

    assert SUPPORTED_SCHEMES == tuple(BACKENDS)
    for scheme, module in BACKENDS.items():
        assert callable(importlib.import_module(module).open_url), scheme
    assert OPTION_NAMES[0] == "heartbeat_interval"  # the order error messages list them in
