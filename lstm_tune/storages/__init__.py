"""Where trials live: storage URLs (parsed, checked, redacted), the SQLite/PostgreSQL database
with retries and the held-trial ledger, and Optuna's gRPC proxy in front of it.

:func:`open_storage` is the one door: it turns any supported URL into an Optuna storage.
"""

from lstm_tune.storages.grpc import DEFAULT_PROXY_PORT
from lstm_tune.storages.rdb import (
    BUDGET_ATTR,
    SPEC_ATTR,
    HeldTrial,
    _short,
    absolute_url,
    check_url,
    held_trials,
    open_storage,
    raise_when_safe,
    redact_url,
    require_existing_sqlite,
    split_options,
)

__all__ = [
    "BUDGET_ATTR",
    "DEFAULT_PROXY_PORT",
    "SPEC_ATTR",
    "HeldTrial",
    "_short",
    "absolute_url",
    "check_url",
    "held_trials",
    "open_storage",
    "raise_when_safe",
    "redact_url",
    "require_existing_sqlite",
    "split_options",
]
