"""What an ``lstm-tune`` subcommand is (:class:`Command`), the parser class of every command,
the exit codes a command returns, and the prefixed lines a command writes for the user."""

from __future__ import annotations

import argparse
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, NoReturn

__all__ = [
    "EXIT_GAVE_UP",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SIGNAL_BASE",
    "EXIT_STORAGE_UNREACHABLE",
    "EXIT_USAGE",
    "PROG",
    "Command",
    "OneLineErrorParser",
    "error",
    "note",
    "say",
    "warning",
]

PROG = "lstm-tune"
# What each exit code tells a pool's supervisor (compose's restart policy, a Kubernetes Job's
# podFailurePolicy): restart on every code but EXIT_USAGE, which no restart can cure.
EXIT_OK = 0
# A problem the user can fix: a bad flag, study file, data file or storage URL, or a study file
# that disagrees with the stored study.
EXIT_USAGE = 2
# search stopped short of its budget because trials kept failing (data, memory, a bug).
EXIT_GAVE_UP = 3
# The storage stayed unreachable for its whole retry timeout (errors.StorageUnreachable).
EXIT_STORAGE_UNREACHABLE = 4
# A process ended by signal N exits with this plus N, as a shell reports it.
EXIT_SIGNAL_BASE = 128
# Ctrl-C outside a search's graceful stop (128 + SIGINT).
EXIT_INTERRUPTED = 130


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (and exit 2) like every other
    error; ``--help`` still shows the usage. The class of every parser here, parents too."""

    def error(self, message: str) -> NoReturn:
        """Exit 2 with ``PROG: error: MESSAGE (see --help)``."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


class Command(ABC):
    """One subcommand: its name and help line, its flags and what it does.

    A new command is one subclass in a module of :mod:`lstm_tune.cli.commands`, listed in
    that package's ``COMMANDS``; the parser is built from that list.
    """

    name: ClassVar[str]
    help: ClassVar[str]
    # Parent parsers of the flags the command shares with others (lstm_tune.cli.options);
    # their flags come first in the command's --help.
    parents: ClassVar[tuple[Callable[[], OneLineErrorParser], ...]] = ()

    @abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the command's own flags, after its parents'."""

    @abstractmethod
    def run(self, args: argparse.Namespace) -> int:
        """Do the command and return its exit code; a problem the user can fix is raised as
        an :class:`~lstm_tune.errors.LstmTuneError` (one line, exit 2, from ``main``)."""


def say(line: str) -> None:
    """Write ``line`` to standard output at once (a pool's parent copies it as it comes)."""
    print(line, flush=True)


def note(line: str) -> None:
    """Write ``line`` to standard output as the program's own (``lstm-tune: ...``)."""
    say(f"{PROG}: {line}")


def error(message: str) -> None:
    """Write the one-line error ``lstm-tune: error: ...`` to standard error."""
    print(f"{PROG}: error: {message}", file=sys.stderr)


def warning(message: str) -> None:
    """Write ``lstm-tune: warning: ...`` to standard error."""
    print(f"{PROG}: warning: {message}", file=sys.stderr)
