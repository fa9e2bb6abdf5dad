"""Readers every task shares: CSV rows (plain or gzipped) and text lines, with errors that
name the file, the field and the line, and values quoted back at a readable length."""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from lstm_tune.errors import DataError, UserFile

__all__ = ["QUOTE_CHARS", "quote", "read_csv_rows", "read_text_lines"]

_GZIP_MAGIC = b"\x1f\x8b"
# Enough of a file to tell gzip from text and text from binary.
_PROBE_BYTES = 8192
DATA_FILE = UserFile(
    DataError,
    missing="no such data file",
    directory="is a directory; expected a CSV file",
    unreadable="cannot read data file",
)
# Longest label or cell value quoted back in an error message.
QUOTE_CHARS = 60


def quote(value: str, limit: int = QUOTE_CHARS) -> str:
    """``value`` as a Python literal for an error message, cut to ``limit`` characters."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _open_text(path: Path) -> io.TextIOWrapper:
    head = DATA_FILE.read(path, _PROBE_BYTES)
    if head[:2] == _GZIP_MAGIC:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    if b"\x00" in head:
        raise DataError(f"{path}: binary file (NUL bytes); expected a UTF-8 CSV text file")
    return io.TextIOWrapper(path.open("rb"), encoding="utf-8", newline="")


def read_text_lines(path: Path, what: str = "input") -> Iterator[str]:
    """Non-empty lines of a UTF-8 text file (new inputs, prompts); DataError naming the file."""
    try:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield line.rstrip("\n")
    except FileNotFoundError:
        raise DataError(f"{path}: no such {what} file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text at byte {exc.start}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} file: {exc.strerror}") from None


def read_csv_rows(
    path: Path, required: dict[str, str], optional: Iterable[str] = ()
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV(.gz); ``required`` maps a column to the field naming it.

    A missing required column, a binary or non-UTF-8 file, a bad gzip stream or malformed CSV
    raise :class:`DataError` naming the file (and the field, column or line).
    """
    try:
        with _open_text(path) as text:
            reader = csv.DictReader(text)
            columns = reader.fieldnames or []
            if not columns:
                raise DataError(f"{path}: empty file; expected a CSV with a header row")
            for column, field in required.items():
                if column not in columns:
                    raise DataError(
                        f"{path}: {field}: no column {column!r}; the file has columns "
                        f"{', '.join(repr(c) for c in columns[:20])}"
                    )
            yield from enumerate(reader, start=2)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: unreadable gzip data ({exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text at byte {exc.start}") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from None
