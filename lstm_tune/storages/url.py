"""Storage URLs: which backend serves each scheme, lstm-tune's query options (read once, by
one set of rules, for every scheme), and printing a URL without its password.

Database URLs (``sqlite:///studies/imdb.db``, ``postgresql+psycopg://user:pw@db/optuna``) are
SQLAlchemy's; ``grpc://host:port`` is the address of ``lstm-tune storage-proxy``. The tuning
knobs are query parameters, stripped before the URL reaches a driver, so one URL string
describes the storage everywhere (CLI flag, env var, compose file)::

    postgresql+psycopg://user:pw@db/optuna?heartbeat_interval=10&grace_period=60
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from lstm_tune.errors import StorageError

__all__ = [
    "BACKENDS",
    "GRPC_SCHEME",
    "OPTION_NAMES",
    "SUPPORTED_SCHEMES",
    "DatabaseURL",
    "GrpcURL",
    "StorageOptions",
    "StorageURL",
    "absolute_url",
    "check_url",
    "parse_database_url",
    "parse_grpc_url",
    "parse_url",
    "redact_url",
    "require_existing_sqlite",
    "split_options",
    "sqlite_file",
]

GRPC_SCHEME = "grpc"
# The module that opens a storage of each scheme (:func:`lstm_tune.storages.open_storage`
# imports it when such a storage is first opened): a new backend is one module, one line here
# and, if its URLs are not SQLAlchemy's, their form in :func:`parse_url`.
BACKENDS: dict[str, str] = {
    "sqlite": "lstm_tune.storages.rdb",
    "postgresql": "lstm_tune.storages.rdb",
    "postgresql+psycopg": "lstm_tune.storages.rdb",
    GRPC_SCHEME: "lstm_tune.storages.grpc",
}
SUPPORTED_SCHEMES = tuple(BACKENDS)

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

# Each option lstm-tune reads from a URL's query: ("whole" number or "seconds", least value).
_OPTION_RULES: dict[str, tuple[str, int]] = {
    "heartbeat_interval": ("whole", 0),  # 0: heartbeats off
    "grace_period": ("whole", 1),
    "retry_timeout": ("seconds", 0),
    "max_requeue": ("whole", 0),
    "first_contact_timeout": ("seconds", 0),
}
OPTION_NAMES = tuple(_OPTION_RULES)
# A grpc:// URL sets only what a worker decides; the proxy's --storage URL sets the rest.
_GRPC_OPTION_NAMES = ("heartbeat_interval", "retry_timeout")

# A password in a URL's user part (``//user:secret@``) or its query (``password=secret``),
# found by pattern so that even a URL SQLAlchemy cannot parse is printed without it.
_USERINFO_PASSWORD = re.compile(r"(//[^/:@]*:)([^@/]*)(@)")
_QUERY_PASSWORD = re.compile(r"([?&](?:password|passwd|pwd)=)([^&#]*)", re.IGNORECASE)


@dataclass(frozen=True)
class StorageOptions:
    """Heartbeat, retry and re-queue settings read from the storage URL's query string."""

    heartbeat_interval: int | None = DEFAULT_HEARTBEAT_INTERVAL
    grace_period: int = DEFAULT_GRACE_PERIOD
    retry_timeout: float = DEFAULT_RETRY_TIMEOUT
    max_requeue: int = DEFAULT_MAX_REQUEUE
    first_contact_timeout: float = DEFAULT_FIRST_CONTACT_TIMEOUT


@dataclass(frozen=True)
class StorageURL:
    """A checked storage URL: its scheme (which picks the backend) and lstm-tune's options."""

    text: str  # as given; may hold a password, so print redact_url(text)
    scheme: str
    options: StorageOptions

    @property
    def backend(self) -> str:
        """The module that opens this storage (see :data:`BACKENDS`)."""
        return BACKENDS[self.scheme]


@dataclass(frozen=True)
class DatabaseURL(StorageURL):
    """A SQLite or PostgreSQL URL."""

    database: URL  # without lstm-tune's options: what the driver is given


@dataclass(frozen=True)
class GrpcURL(StorageURL):
    """The address of ``lstm-tune storage-proxy`` (``grpc://host:port``)."""

    host: str
    port: int

    @property
    def address(self) -> str:
        """``grpc://host:port``, without options (safe to print)."""
        return f"{GRPC_SCHEME}://{self.host}:{self.port}"


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (safe to print or export): in
    the user part and in the query string, and also when the URL does not parse."""
    try:
        text = make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return _hide_passwords(url)
    return _QUERY_PASSWORD.sub(r"\1***", text)


def _hide_passwords(url: str) -> str:
    """``url`` as written, with any password in its user part or query replaced by ``***``."""
    return _QUERY_PASSWORD.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***\3", url))


def parse_url(url: str) -> DatabaseURL | GrpcURL:
    """Parse and check a storage URL of any supported scheme; connects to nothing.

    Raises :class:`StorageError` naming the URL (password hidden), the bad part and what is
    allowed: a malformed URL, an unsupported scheme, an unknown or bad option.
    """
    if url.startswith(f"{GRPC_SCHEME}:"):
        return parse_grpc_url(url)
    return parse_database_url(url)


def check_url(url: str) -> None:
    """Raise :class:`StorageError` for a storage URL of the wrong form; connects to nothing."""
    parse_url(url)


def parse_database_url(url: str) -> DatabaseURL:
    """Parse a SQLite or PostgreSQL URL; its lstm-tune options are taken out of its query."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise StorageError(
            f"storage URL {redact_url(url)!r} is not a valid URL; "
            f"expected e.g. sqlite:///studies/imdb.db or postgresql+psycopg://user@host/db"
        ) from exc
    if parsed.drivername.startswith("sqlite") and sqlite_file(parsed) is None:
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
    given = {name: query.pop(name) for name in OPTION_NAMES if name in query}
    if parsed.drivername == "sqlite" and query:
        # SQLite's driver ignores other query arguments with only a warning: a misspelt
        # option (heartbeat_intervall=5) would silently run with the default.
        raise StorageError(
            f"storage URL {redact_url(url)!r}: option {sorted(query)[0]!r} is not one of "
            f"lstm-tune's ({', '.join(OPTION_NAMES)}), and SQLite takes no other"
        )
    return DatabaseURL(
        text=url,
        scheme=parsed.drivername,
        options=_read_options(redact_url(url), given, OPTION_NAMES),
        database=parsed.set(query=query),
    )


def split_options(url: str) -> tuple[URL, StorageOptions]:
    """Parse a database ``url``; return it without lstm-tune's query options, and those."""
    parsed = parse_database_url(url)
    return parsed.database, parsed.options


def parse_grpc_url(url: str) -> GrpcURL:
    """Parse ``grpc://host:port[?heartbeat_interval=10&retry_timeout=600]``."""
    # urllib, not SQLAlchemy's URL: this is no database URL, and urllib checks that the port
    # is in range and keeps an option given without a value, so that one is refused too.
    parts = urlsplit(url)
    shown = _hide_passwords(url)  # as written: SQLAlchemy would reorder its query
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme != GRPC_SCHEME or not parts.hostname or port is None or port <= 0:
        raise StorageError(
            f"storage URL {shown!r}: expected grpc://HOST:PORT "
            f"(e.g. grpc://127.0.0.1:13000), the address of `lstm-tune storage-proxy`"
        )
    if parts.path not in ("", "/") or parts.username or parts.password:
        raise StorageError(
            f"storage URL {shown!r}: a grpc:// URL has no user, password or database "
            f"(the proxy's --storage URL holds them)"
        )
    given: dict[str, list[str]] = {}
    for name, text in parse_qsl(parts.query, keep_blank_values=True):
        if name not in _GRPC_OPTION_NAMES:
            raise StorageError(
                f"storage URL {shown!r}: option {name!r} is not allowed on a grpc:// "
                f"URL; allowed: {', '.join(_GRPC_OPTION_NAMES)} (grace_period and max_requeue "
                f"belong on the proxy's --storage URL)"
            )
        given.setdefault(name, []).append(text)
    return GrpcURL(
        text=url,
        scheme=GRPC_SCHEME,
        options=_read_options(shown, given, _GRPC_OPTION_NAMES),
        host=parts.hostname,
        port=port,
    )


def _read_options(
    shown: str, given: Mapping[str, str | Sequence[str]], names: Sequence[str]
) -> StorageOptions:
    """The options ``names`` of a URL's query (a name given twice: each value is checked, the
    last one counts); the rest keep their defaults. A URL that takes ``grace_period`` must
    leave it longer than ``heartbeat_interval``. Errors name the URL as ``shown``."""
    values: dict[str, Any] = {}
    for name in names:
        texts = given.get(name, ())
        for text in [texts] if isinstance(texts, str) else texts:
            values[name] = _option_value(shown, name, text)
    options = StorageOptions(**values)
    interval = options.heartbeat_interval
    if "grace_period" in names and interval is not None and options.grace_period <= interval:
        raise StorageError(
            f"storage URL {shown!r}: grace_period={options.grace_period} must be "
            f"greater than heartbeat_interval={options.heartbeat_interval}, or a live worker's "
            f"trial would be declared dead between two heartbeats"
        )
    return options


def _option_value(shown: str, name: str, text: str) -> int | float | None:
    kind, least = _OPTION_RULES[name]
    value: int | float | None
    if kind == "seconds":
        value, allowed = _number(text), f"seconds >= {least}"
    else:
        value, allowed = _whole_number(text), f"an integer >= {least}"
    if value is None or not value >= least:  # `not >=`: NaN is refused too
        raise StorageError(
            f"storage URL {shown!r}: {name}={text!r} is not allowed; expected {allowed}"
        )
    if name == "heartbeat_interval" and value == 0:
        return None  # heartbeats off
    return value


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _whole_number(text: str) -> int | None:
    """``text`` as an integer: ``10``, or a float with no fraction such as ``10.0``."""
    try:
        return int(text)
    except ValueError:
        number = _number(text)
    if number is None or not math.isfinite(number) or not number.is_integer():
        return None
    return int(number)


def sqlite_file(url: URL) -> str | None:
    """The file a SQLite URL names; None for another scheme or an in-memory database."""
    if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
        return url.database
    return None


def _lenient_parse(url: str) -> URL | None:
    """``url`` parsed by SQLAlchemy, or None when it does not parse (for helpers that leave
    explaining a bad URL to :func:`parse_url`)."""
    try:
        return make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return None


def require_existing_sqlite(storage_url: str) -> None:
    """Fail if ``storage_url`` names a SQLite file that does not exist.

    Opening it would silently create an empty database (a read-only command such as
    export-best would leave ``studies/<typo>.db`` behind), and a viewer would show no studies
    instead of saying the path is wrong.
    """
    parsed = _lenient_parse(storage_url)
    path = sqlite_file(parsed) if parsed is not None else None
    if path is not None and not Path(path).exists():
        raise StorageError(
            f"storage {absolute_url(storage_url)!r}: SQLite file {path!r} does not "
            f"exist (relative paths start at {str(Path.cwd())!r}); run a search first or "
            f"fix the path"
        )


def absolute_url(url: str) -> str:
    """``url`` redacted, with a relative SQLite path made absolute (what a user can paste)."""
    parsed = _lenient_parse(url)
    if parsed is None:
        return redact_url(url)
    path = sqlite_file(parsed)
    if path is not None:
        parsed = parsed.set(database=str(Path(path).resolve()))
    return redact_url(parsed.render_as_string(hide_password=False))
