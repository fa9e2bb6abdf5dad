"""A study's largest config and the worker memory it needs (for container requests and limits).

The pre-flight estimate (:mod:`lstm_tune.training.preflight`, per task ``estimate``)
grows with
``hidden_size``, ``num_layers``, ``sequence_length`` and ``batch_size`` and does not depend on
``learning_rate`` or ``dropout_rate``, so the largest config of a space is its corner of
largest values. Configs queued with ``search.enqueue`` run too and are estimated as well
(their missing params taken at that corner); the largest estimate wins.

A worker container sized from it: the memory **request** is the estimate rounded up to
:data:`ROUND_MIB`; the **limit** leaves the same headroom the pre-flight check demands
(the estimate may use at most ``MAX_SHARE_OF_AVAILABLE`` of the memory), rounded up too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lstm_tune.config import StudySpec, largest_value, param_names
from lstm_tune.tasks import get_task
from lstm_tune.training.preflight import MAX_SHARE_OF_AVAILABLE
from lstm_tune.types import MemoryEstimate, Params, Prepared

__all__ = ["ROUND_MIB", "StudySize", "largest_configs", "largest_value", "study_size"]

# Kubernetes quantities are rounded up to this many MiB (readable, and a little headroom).
ROUND_MIB = 256
MIB = 2**20


def largest_configs(spec: StudySpec) -> list[dict[str, Any]]:
    """The space's corner of largest values (a knob's too: bidirectional true, the largest
    vocabulary), then each enqueued config completed by it."""
    corner = {name: largest_value(spec.space[name]) for name in param_names(spec.space)}
    return [corner, *({**corner, **queued} for queued in spec.search.enqueue)]


@dataclass(frozen=True)
class StudySize:
    """The study's largest config, its estimate, and the worker's memory request and limit."""

    params: Params
    estimate: MemoryEstimate
    request_mib: int
    limit_mib: int

    @property
    def estimate_mib(self) -> float:
        """The estimate in MiB."""
        return self.estimate.total / MIB


def _round_up(mib: float) -> int:
    return int(math.ceil(mib / ROUND_MIB) * ROUND_MIB)


def study_size(spec: StudySpec, prepared: Prepared) -> StudySize:
    """Estimate every config of :func:`largest_configs` with the task; size for the largest."""
    task = get_task(spec.task)
    estimates = [(task.estimate(p, prepared).memory, p) for p in largest_configs(spec)]
    estimate, params = max(estimates, key=lambda item: item[0].total)
    mib = estimate.total / MIB
    return StudySize(
        params=params,
        estimate=estimate,
        request_mib=_round_up(mib),
        limit_mib=_round_up(mib / MAX_SHARE_OF_AVAILABLE),
    )
