"""The flags commands share, each declared once here, and the argument types of every flag.

Two parent parsers carry the flags whole groups of commands share: :func:`study_file_flags`
(a command on a study file: the file, its study's storage and name) and
:func:`stored_study_flags` (a command on a study already in a storage: its name and storage).
``--storage`` is declared only by :func:`add_storage`, its help stating the default of
:mod:`lstm_tune.cli.env`'s one rule.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from lstm_tune.cli.command import OneLineErrorParser
from lstm_tune.cli.env import (
    ARTIFACT_DIR_ENV,
    DATA_PATH_ENV,
    MLFLOW_URI_ENV,
    STORAGE_ENV,
    default_artifact_dir_text,
    default_storage_text,
)
from lstm_tune.runtime.workers_and_threads import AUTO

__all__ = [
    "ACCEPT_CHANGES_HELP",
    "DATA_PATH_HELP",
    "add_accept_changes",
    "add_artifact_dir",
    "add_mlflow_tracking_uri",
    "add_storage",
    "add_study_file",
    "positive_int",
    "seconds",
    "stored_study_flags",
    "study_file_flags",
    "temperature",
    "worker_count",
]

DATA_PATH_HELP = (
    f"local data file instead of the study's data.path or download (default: ${DATA_PATH_ENV})"
)
ACCEPT_CHANGES_HELP = (
    "the study file changes the search space or what a trial means: record it as the study's "
    "spec from the next trial on (finished trials keep theirs)"
)


def add_storage(
    parser: argparse.ArgumentParser,
    *,
    default: str | None,
    meaning: str = "storage URL",
    note: str = "",
) -> None:
    """Declare ``--storage``: ``meaning`` and its fallbacks, ``$LSTM_TUNE_STORAGE`` and then
    ``default`` (a command without one needs the flag or the variable), then ``note``."""
    fallback = f"${STORAGE_ENV} or {default}" if default else f"${STORAGE_ENV}"
    parser.add_argument("--storage", help=f"{meaning} (default: {fallback}){note}")


def add_artifact_dir(parser: argparse.ArgumentParser, *, meaning: str, study_file: bool) -> None:
    """Declare ``--artifact-dir``: ``meaning``, then its fallbacks ``$LSTM_TUNE_ARTIFACT_DIR``
    and the study dir's ``artifacts`` (the study file's directory when ``study_file``)."""
    default = default_artifact_dir_text(study_file=study_file)
    parser.add_argument(
        "--artifact-dir", help=f"{meaning} (default: ${ARTIFACT_DIR_ENV} or {default})"
    )


def add_mlflow_tracking_uri(parser: argparse.ArgumentParser, *, what: str) -> None:
    """Declare ``--mlflow-tracking-uri``: log ``what`` to that MLflow tracking server."""
    parser.add_argument(
        "--mlflow-tracking-uri",
        metavar="URI",
        help=f"log {what} to this MLflow tracking URI (default: ${MLFLOW_URI_ENV}, then the "
        f"study file's tracking.mlflow; none); needs lstm-tune[mlflow]",
    )


def add_study_file(parser: argparse.ArgumentParser) -> None:
    """Declare the ``study`` positional: the study YAML file."""
    parser.add_argument("study", help="study YAML file, e.g. studies/imdb.yaml")


def add_warm_start(parser: argparse.ArgumentParser) -> None:
    """Declare ``--warm-start-from NAME``: queue an earlier study's best configs first."""
    parser.add_argument(
        "--warm-start-from",
        metavar="NAME",
        help="when the study is created, queue the best configs of the earlier study NAME in "
        "this study's storage (as search.warm_start; top from the file's, default 5)",
    )


def add_accept_changes(parser: argparse.ArgumentParser) -> None:
    """Declare ``--accept-changes``: record a changed study file as the study's spec."""
    parser.add_argument("--accept-changes", action="store_true", help=ACCEPT_CHANGES_HELP)


def study_file_flags() -> OneLineErrorParser:
    """Parent parser of a command on a study file: the file, and its study's storage and
    name (by default the file's ``name``, in a SQLite file beside it)."""
    parent = OneLineErrorParser(add_help=False)
    add_study_file(parent)
    add_storage(parent, default=default_storage_text(study_file=True))
    parent.add_argument("--study-name", help="study name (default: the file's `name`)")
    return parent


def stored_study_flags() -> OneLineErrorParser:
    """Parent parser of a command on a study already in a storage: its name and storage."""
    parent = OneLineErrorParser(add_help=False)
    parent.add_argument("--study-name", required=True)
    add_storage(parent, default=default_storage_text(study_file=False))
    return parent


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def worker_count(text: str) -> int | str:
    """An argparse type: a worker count >= 1, or ``auto``."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; expected a count >= 1 or 'auto'") from None


def _finite_above(low: float, *, inclusive: bool) -> Callable[[str], float]:
    """An argparse type: a finite number above ``low`` (or equal to it when ``inclusive``)."""
    rule = f"{'>=' if inclusive else '>'} {low:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number {rule}")
        return value

    return parse


# A sampling temperature: any finite number above 0.
temperature = _finite_above(0.0, inclusive=False)
# A time limit: at least one second, the resolution the search and finalize budgets work at.
seconds = _finite_above(1.0, inclusive=True)
