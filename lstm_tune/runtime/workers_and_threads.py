"""How a machine is shared: the number of worker processes and TensorFlow's threads in each.

An LSTM step is a chain of small matrix products: one TensorFlow process uses a second
thread poorly and cannot fill a many-core host, while whole processes scale with the cores.
Measured on a 2-core machine (BENCHMARKS.md ``pool_throughput``, 2 interleaved rounds of
45 s of real training on IMDB): on the seed config, 2 single-threaded workers trained 1.09x
the reviews per second of 1 worker with TensorFlow's default threads and the same as 2
unpinned workers (1.00x); on the study's largest config (hidden 512, 3 layers, batch 128)
1.51x and 1.15x. The same worker on 1 core (``taskset``) trained 0.56x of 2 cores, so a
worker per core scales with the cores where one process does not.

So ``--workers auto`` follows a rule, not a calibration run: one single-threaded worker per
usable core, fewer when the pre-flight memory estimate of the study's largest config does not
fit that many times (the spare cores then go to each worker's threads), and never more
workers than trials. The rule was never slower than the layouts it replaces in the benchmark,
and a calibration would cost every search minutes of training before its first trial.

``LSTM_TUNE_THREADS`` overrides the threads: ``N`` (intra-op) or ``N,M`` (intra-op,
inter-op); ``0`` leaves TensorFlow's default (all cores) in place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lstm_tune.errors import ConfigError

if TYPE_CHECKING:
    from lstm_tune.config import StudySpec
    from lstm_tune.types import Prepared

THREADS_ENV = "LSTM_TUNE_THREADS"
# The worker count that asks for the layout rule (``--workers auto``) instead of a number.
AUTO = "auto"

__all__ = [
    "AUTO",
    "THREADS_ENV",
    "Layout",
    "Threads",
    "apply_threads",
    "auto_layout",
    "parse_threads",
    "study_layout",
    "threads_for",
    "usable_cores",
]


@dataclass(frozen=True)
class Threads:
    """TensorFlow's intra-op and inter-op thread counts; 0 keeps TensorFlow's default."""

    intra: int = 0
    inter: int = 0

    def __str__(self) -> str:
        def name(count: int) -> str:
            return "default" if count == 0 else str(count)

        return f"intra-op {name(self.intra)}, inter-op {name(self.inter)}"

    def as_env(self) -> str:
        """The ``LSTM_TUNE_THREADS`` value that gives these threads."""
        return f"{self.intra},{self.inter}"


@dataclass(frozen=True)
class Layout:
    """Worker processes on this machine, the threads of each, and why."""

    workers: int
    threads: Threads
    reason: str


def parse_threads(text: str, source: str = THREADS_ENV) -> Threads:
    """``"N"`` or ``"N,M"`` (intra-op, inter-op; 0 = TensorFlow's default) → :class:`Threads`."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) in (1, 2) and all(part.isdigit() for part in parts):
        intra, inter = int(parts[0]), int(parts[1]) if len(parts) == 2 else 0
        if intra <= 1024 and inter <= 1024:
            return Threads(intra, inter)
    raise ConfigError(
        f"{source}: got {text[:40]!r}; expected N or N,M: intra-op[,inter-op] thread counts "
        f"from 0 to 1024, 0 for TensorFlow's default (e.g. 1 or 2,1)"
    )


def _cgroup_cpu_limit(cpu_max: Path) -> int | None:
    """Cores a cgroup v2 CPU quota allows (a container's ``--cpus``), or None if unlimited."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, int(int(quota) // int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def usable_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """Cores this process may run on: its CPU affinity (``taskset``, a cpuset), capped by a
    cgroup CPU quota when there is one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    limit = _cgroup_cpu_limit(cpu_max)
    return min(cores, limit) if limit is not None else cores


def threads_for(workers: int, cores: int) -> Threads:
    """The threads of each of ``workers`` processes on ``cores``: the cores split evenly; a
    lone worker keeps TensorFlow's default (it already uses every core)."""
    if workers <= 1:
        return Threads()
    return Threads(intra=max(1, cores // workers))


def auto_layout(
    *, cores: int, worker_bytes: float, available_bytes: int | None, max_share: float, trials: int
) -> Layout:
    """The ``--workers auto`` rule: one single-threaded worker per core, capped by memory
    (``max_share`` of ``available_bytes`` over the largest config's ``worker_bytes``) and by
    the ``trials`` left to run."""
    workers, limits = cores, [f"{cores} usable cores"]
    if available_bytes is not None and worker_bytes > 0:
        fit = int(max_share * available_bytes // worker_bytes)
        limits.append(
            f"memory for {fit} workers of the largest config ({worker_bytes / 2**30:.1f} GiB "
            f"each, {available_bytes / 2**30:.1f} GiB available)"
        )
        workers = min(workers, fit)
    limits.append(f"{trials} trials to run")
    workers = max(1, min(workers, trials))
    return Layout(workers, threads_for(workers, cores), "; ".join(limits))


def study_layout(spec: StudySpec, prepared: Prepared, trials: int) -> Layout:
    """The ``--workers auto`` layout for ``spec`` on this machine: :func:`auto_layout` fed
    with the usable cores, the pre-flight memory estimate of the study's largest config and
    the memory available now."""
    from lstm_tune.runtime.sizing import study_size
    from lstm_tune.training.preflight import MAX_SHARE_OF_AVAILABLE, available_memory_bytes

    return auto_layout(
        cores=usable_cores(),
        worker_bytes=study_size(spec, prepared).estimate.total,
        available_bytes=available_memory_bytes(),
        max_share=MAX_SHARE_OF_AVAILABLE,
        trials=trials,
    )


def apply_threads(threads: Threads) -> Threads:
    """Set TensorFlow's thread pools (before its first op runs); return what TensorFlow
    reports back, so a worker states the threads it really has."""
    import tensorflow as tf

    if threads.intra:
        tf.config.threading.set_intra_op_parallelism_threads(threads.intra)
    if threads.inter:
        tf.config.threading.set_inter_op_parallelism_threads(threads.inter)
    return Threads(
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )
