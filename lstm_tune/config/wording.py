"""How a study file's problems are worded: one line naming the file, the dotted field, the
bad value (cut short, however deep or long it is) and what is allowed."""

from __future__ import annotations

import itertools
import reprlib
from typing import Any

from lstm_tune.errors import ConfigError

__all__ = ["MAX_VALUE_CHARS", "FieldProblem", "config_error", "short"]

# Longest rendering of a bad value in an error line: a huge value (a YAML "billion laughs"
# alias bomb) must not turn into a huge message.
MAX_VALUE_CHARS = 80


class _ShortRepr(reprlib.Repr):
    """reprlib's bounded repr, keeping a mapping's keys in the order the file gave them."""

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        pieces = [
            f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
            for k, v in itertools.islice(x.items(), self.maxdict)
        ]
        return "{" + ", ".join(pieces + (["..."] if len(x) > self.maxdict else [])) + "}"


_REPR = _ShortRepr()  # keyword arguments need Python 3.12
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 3, 6, 6
_REPR.maxstring, _REPR.maxother = MAX_VALUE_CHARS, 40


class FieldProblem(Exception):
    """A rule broken inside a hand-checked part (the space); not a ValueError, so pydantic
    lets it through unchanged and :func:`parse_spec` words it like every other error."""

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        super().__init__(field)
        self.field, self.value, self.allowed = field, value, allowed


def short(value: Any) -> str:
    """``value`` as a bounded repr for an error line."""
    # reprlib stops early in deep or long values; plain repr of a YAML alias bomb would
    # build a string of gigabytes before it could be cut.
    text = _REPR.repr(value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 3] + "..."
    return text


def config_error(file: str, field: str, value: Any, allowed: str) -> ConfigError:
    """The one-line error for ``field`` of ``file`` holding ``value`` instead of ``allowed``."""
    return ConfigError(f"{file}: {field or '<top level>'}: got {short(value)}; expected {allowed}")
