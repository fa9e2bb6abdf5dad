"""The task registry: the study file's ``task:`` → a :class:`~lstm_tune.tasks.base.Task`.

Every module of this package (but ``base`` and private ones) is a task that registers itself
with :func:`register` when imported. Modules are found and imported on the first lookup, so
adding a task is adding one module here; nothing else names it.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lstm_tune.tasks.base import Task

_REGISTRY: dict[str, Task] = {}
_ALIASES: dict[str, str] = {}
_discovered = False


def register(task: Task) -> Task:
    """Make ``task`` known under its name and aliases; a second task of a name is an error."""
    for key in (task.name, *task.aliases):
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"task name {key!r} is registered twice")
    _REGISTRY[task.name] = task
    for alias in task.aliases:
        _ALIASES[alias] = task.name
    return task


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base" and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def all_tasks() -> dict[str, Task]:
    """Every registered task by its canonical name."""
    _discover()
    return dict(_REGISTRY)


def task_names() -> tuple[str, ...]:
    """Every value ``task:`` may take: canonical names, then aliases."""
    _discover()
    return (*_REGISTRY, *_ALIASES)


def get_task(name: str) -> Task:
    """The task ``name`` (or an alias of it) stands for; KeyError if none."""
    _discover()
    return _REGISTRY[_ALIASES.get(name, name)]
