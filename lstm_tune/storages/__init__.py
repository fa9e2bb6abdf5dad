"""Where trials live: storage URLs (parsed, checked, redacted), the SQLite/PostgreSQL database
with retries and the held-trial ledger, and Optuna's gRPC proxy in front of it.

:func:`open_storage` is the one door: it turns any supported URL into an Optuna storage.
Modules, each importing only those below it (``lint-imports`` checks it): ``proxy`` and
``backends`` on top; the backends ``rdb`` and ``grpc``; ``ledger``, ``retry`` and ``requeue``;
``interrupts``; ``url`` and ``attrs``.

The names below are imported from their module on first use (PEP 562), as Ray Tune's
registries do, so that reading a constant (the CLI's ``--help``) does not load Optuna and
SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lstm_tune.storages.attrs import (
        BUDGET_ATTR,
        DEFAULT_PROXY_PORT,
        DEFAULT_PROXY_THREADS,
        SPEC_ATTR,
    )
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

# Public name -> the module of this package that defines it.
_HOME = {
    "BUDGET_ATTR": "attrs",
    "DEFAULT_PROXY_PORT": "attrs",
    "DEFAULT_PROXY_THREADS": "attrs",
    "SPEC_ATTR": "attrs",
    "open_storage": "backends",
    "in_storage_call": "interrupts",
    "raise_when_safe": "interrupts",
    "HeldTrial": "ledger",
    "held_trials": "ledger",
    "describe_storage_error": "retry",
    "absolute_url": "url",
    "check_url": "url",
    "parse_url": "url",
    "redact_url": "url",
    "require_existing_sqlite": "url",
    "split_options": "url",
}

__all__ = [
    "BUDGET_ATTR",
    "DEFAULT_PROXY_PORT",
    "DEFAULT_PROXY_THREADS",
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


def __getattr__(name: str) -> Any:
    """The public ``name``, imported from its module the first time it is asked for."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
