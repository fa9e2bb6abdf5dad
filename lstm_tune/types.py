"""Plain data every layer shares: a config's params, a task's prepared data, a metric to
optimise, a config's estimated memory and time. Imports nothing of lstm-tune's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Direction", "Estimate", "MemoryEstimate", "Objective", "Params", "Prepared"]

Params = Mapping[str, int | float | str]
Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Objective:
    """A metric a study optimises: its name (as Keras logs it on validation) and direction."""

    name: str
    direction: Direction

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b`` in this direction."""
        return a > b if self.direction == "maximize" else a < b

    def best_index(self, values: list[float]) -> int:
        """Index of the best value in ``values`` (the first one, on ties)."""
        best = 0
        for index, value in enumerate(values):
            if self.better(value, values[best]):
                best = index
        return best


@dataclass(frozen=True)
class Prepared:
    """A task's data, split and ready: ``fit`` trains, ``validation`` scores trials, ``test``
    is touched only by ``lstm-tune train``. ``meta`` holds what the model and the report need
    (e.g. ``vocab_size``, ``class_names``) and is JSON-ready."""

    fit: Any
    validation: Any
    test: Any
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MemoryEstimate:
    """The parts of a config's estimated peak memory, in bytes."""

    base: int
    weights: int
    activations: int

    @property
    def total(self) -> int:
        """Estimated peak resident memory of the worker while training this config."""
        return self.base + self.weights + self.activations


@dataclass(frozen=True)
class Estimate:
    """A config's pre-flight estimate: its peak memory and the seconds one epoch takes."""

    memory: MemoryEstimate
    epoch_seconds: float
