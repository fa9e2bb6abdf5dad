"""The ``lstm-tune`` entry point: the parser built from the command registry, and the one place
where errors become exit codes (0 ok, 2 a problem the user can fix, 3 gave up, 4 the storage
stayed unreachable, 130 interrupted; a search stopped by a signal ends with 128 + its number;
an unexpected error's traceback exits 1)."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any, TextIO

from lstm_tune.cli.command import (
    EXIT_INTERRUPTED,
    EXIT_STORAGE_UNREACHABLE,
    EXIT_USAGE,
    PROG,
    OneLineErrorParser,
    error,
)
from lstm_tune.cli.commands import COMMANDS
from lstm_tune.errors import LstmTuneError, StorageUnreachable

__all__ = ["build_parser", "main", "version"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lstm-tune`` and every subcommand in the registry."""
    parser = OneLineErrorParser(
        prog=PROG, description="Hyperparameter search for Keras LSTM models."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command_class in COMMANDS:
        command = command_class()
        parents = [make() for make in command.parents]
        subparser = sub.add_parser(command.name, help=command.help, parents=parents)
        command.add_arguments(subparser)
        subparser.set_defaults(handler=command)
    return parser


def version() -> str:
    """The installed lstm-tune's version, or a note that it is not installed."""
    from importlib import metadata

    try:
        return metadata.version("lstm-tune")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


class _ClosedPipeTolerant:
    """Standard output or error that goes quiet instead of raising once its reader has gone.

    A worker whose output pipe closes (``search ... | head``, or a pool parent that was
    killed) must still finish or stop cleanly: a BrokenPipeError mid-trial would end the
    trial as a crash, which is not re-queued. A pool's worker writes both streams to the
    pool's pipe, and its warnings (e.g. the line saying its trial was re-queued) go to
    standard error.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._closed = False

    def write(self, text: str) -> int:
        if not self._closed:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._closed = True
        return len(text)

    def flush(self) -> None:
        if not self._closed:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._closed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lstm-tune``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if not args.debug:
        # Heartbeats and the retry callback are marked experimental by Optuna; we rely on them
        # on purpose, so the warning would only be noise in every user's terminal.
        warnings.filterwarnings("ignore", message=r".*experimental.*", category=Warning)
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = _ClosedPipeTolerant(stdout)  # type: ignore[assignment]
    sys.stderr = _ClosedPipeTolerant(stderr)  # type: ignore[assignment]
    try:
        return int(args.handler.run(args))
    except LstmTuneError as exc:
        if args.debug:
            raise
        error(str(exc))
        return EXIT_STORAGE_UNREACHABLE if isinstance(exc, StorageUnreachable) else EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        sys.stdout, sys.stderr = stdout, stderr


if __name__ == "__main__":
    sys.exit(main())
