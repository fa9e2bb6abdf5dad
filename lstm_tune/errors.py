"""Errors that lstm-tune raises on purpose; the CLI turns each into one line and exit code 2."""

from __future__ import annotations


class LstmTuneError(Exception):
    """Base class: a problem the user can fix, stated in one line."""


class ConfigError(LstmTuneError):
    """A study or config file is missing, unreadable or breaks a rule."""


class DataError(LstmTuneError):
    """The dataset cannot be loaded or does not have the expected shape."""


class StorageError(LstmTuneError):
    """The Optuna storage cannot be reached or does not hold what was asked for."""
