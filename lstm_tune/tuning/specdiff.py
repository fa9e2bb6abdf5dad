"""Which fields differ between two study documents (what ``config.spec_to_dict`` returns).

Generic over the documents' keys: a recursive diff of nested dicts, with a short list of
fields that may change on resume without changing what a trial means (budget, timeout,
sampler and pruner options, file locations). Anything else that differs, including keys
added by a newer lstm-tune, counts as a change of the study.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

# Dotted fields (fnmatch patterns) that may change freely; a match covers everything below it.
FREE_FIELDS = (
    "name",  # the study name comes from --study-name or the file, not from what trials mean
    "result",
    "search.n_trials",
    "search.timeout",
    "search.sampler",
    "search.pruner",
    "search.enqueue",  # only read when the study is created
    "search.warm_start",  # likewise
    "data.path",
    "data.*_path",
    "data.cache_dir",
    # Machine settings, never in a stored spec (config.spec.spec_to_dict leaves them out); free
    # here too, should a document written with them (local=True) be compared.
    "training.tensorboard",
    "tracking",
)
_ABSENT = object()


@dataclass(frozen=True)
class Change:
    """One field that differs: its dotted path, its old and its new value."""

    path: str
    old: Any
    new: Any

    def describe(self) -> str:
        """``path: old -> new``, values shortened to keep the message on one line."""
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"


def diff(old: Any, new: Any, path: str = "") -> list[Change]:
    """Every leaf where ``old`` and ``new`` differ (dicts recursively, other values whole)."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[Change] = []
        for key in [*old, *(k for k in new if k not in old)]:
            sub = f"{path}.{key}" if path else str(key)
            changes += diff(old.get(key, _ABSENT), new.get(key, _ABSENT), sub)
        return changes
    if old is new or (old is not _ABSENT and new is not _ABSENT and old == new):
        return []
    return [Change(path, old, new)]


def is_free(path: str, free: tuple[str, ...] = FREE_FIELDS) -> bool:
    """Whether ``path`` or a field above it may change freely."""
    parts = path.split(".")
    prefixes = [".".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatchcase(prefix, pattern) for prefix in prefixes for pattern in free)


def meaningful_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """The changes from ``old`` to ``new`` that change the study (not in :data:`FREE_FIELDS`)."""
    return [change for change in diff(old, new) if not is_free(change.path)]


def _show(value: Any, limit: int = 60) -> str:
    text = "(absent)" if value is _ABSENT else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
