"""The ``lstm-tune`` command line: the only layer that reads the environment, prints for the
user and maps errors to exit codes (0 ok, 2 a problem the user can fix, 3 gave up, 130
interrupted)."""

from lstm_tune.cli.main import (
    DATA_PATH_ENV,
    EXIT_GAVE_UP,
    _load_with_overrides,
    _version,
    _with_overrides,
    default_cache_dir,
    main,
)

__all__ = [
    "DATA_PATH_ENV",
    "EXIT_GAVE_UP",
    "_load_with_overrides",
    "_version",
    "_with_overrides",
    "default_cache_dir",
    "main",
]
