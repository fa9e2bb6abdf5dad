"""Errors that lstm-tune raises on purpose; the CLI turns each into one line and exit code 2
(4 for :class:`StorageUnreachable`: the one kind that waiting, or a restart, may cure)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Optuna, SQLAlchemy and a trial's failure chain a handful of levels at most.
DEFAULT_CHAIN_LIMIT = 8


class LstmTuneError(Exception):
    """Base class: a problem the user can fix, stated in one line."""


class ConfigError(LstmTuneError):
    """A study or config file is missing, unreadable or breaks a rule."""


class DataError(LstmTuneError):
    """The dataset cannot be loaded or does not have the expected shape."""


class StorageError(LstmTuneError):
    """The Optuna storage cannot be reached or does not hold what was asked for."""


class StorageUnreachable(StorageError):
    """The storage stayed unreachable for the whole retry timeout (a server down, a network
    cut): not the input's fault, so a pool restarts the worker instead of stopping it."""


def exception_chain(
    exc: BaseException, *, limit: int = DEFAULT_CHAIN_LIMIT
) -> Iterator[BaseException]:
    """``exc``, then what it was raised from or while handling, nearest first.

    Each step follows ``__cause__`` (``raise ... from``), else ``__context__``; at most
    ``limit`` exceptions, so a cycle in a chain cannot loop forever.
    """
    seen: BaseException | None = exc
    for _ in range(limit):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


@dataclass(frozen=True)
class UserFile:
    """One kind of file a user names (a study file, a data file), and how its problems are
    worded: each is one line that starts with the path."""

    error: type[LstmTuneError]
    missing: str
    directory: str
    unreadable: str

    def read(self, path: str | Path, size: int = -1) -> bytes:
        """The file's first ``size`` bytes (all of it when negative), or ``error`` saying why
        the file cannot be read."""
        try:
            with Path(path).open("rb") as file:
                return file.read(size)
        except FileNotFoundError:
            raise self.error(f"{path}: {self.missing}") from None
        except IsADirectoryError:
            raise self.error(f"{path}: {self.directory}") from None
        except OSError as exc:
            raise self.error(f"{path}: {self.unreadable}: {exc.strerror}") from None
