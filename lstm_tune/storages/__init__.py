"""Where trials live: storage URLs (parsed, checked, redacted), the SQLite/PostgreSQL database
with retries and the held-trial ledger, and Optuna's gRPC proxy in front of it.

:func:`open_storage` is the one door: it turns any supported URL into an Optuna storage.
Modules, each importing only those below it (``lint-imports`` checks it): ``proxy`` and
``backends`` on top; the backends ``rdb`` and ``grpc``; ``ledger`` and ``retry``;
``interrupts``; ``url`` and ``attrs``.
"""

from lstm_tune.storages.attrs import BUDGET_ATTR, SPEC_ATTR
from lstm_tune.storages.backends import open_storage
from lstm_tune.storages.interrupts import in_storage_call, raise_when_safe
from lstm_tune.storages.ledger import HeldTrial, held_trials
from lstm_tune.storages.retry import describe_storage_error
from lstm_tune.storages.url import (
    absolute_url,
    check_url,
    parse_url,
    redact_url,
    require_existing_sqlite,
    split_options,
)

__all__ = [
    "BUDGET_ATTR",
    "SPEC_ATTR",
    "HeldTrial",
    "absolute_url",
    "check_url",
    "describe_storage_error",
    "held_trials",
    "in_storage_call",
    "open_storage",
    "parse_url",
    "raise_when_safe",
    "redact_url",
    "require_existing_sqlite",
    "split_options",
]
