"""Before training: estimate a config's peak memory and time from its shape.

Memory: a config that cannot fit is refused. Time: the estimate is recorded on the trial and
a trial expected to outlast the search's timeout is warned about.

A config whose training needs more memory than the machine has would be killed by the
kernel mid-trial, taking its worker with it (and, in a pool, its trial would be re-queued
and kill the next worker). The estimate lets the trial fail at once, with the reason.

Peak memory of a training step, in bytes:

    base                     the worker before the model (TensorFlow, the tokenized corpus)
  + 16 x parameters          weights, gradients and Adam's two moments, float32
  + 4 x batch x steps x (input width + layers x ACTIVATION_FLOATS_PER_UNIT x hidden)
                             the LSTM's input (an embedding's output, or features) and what
                             back-propagation through time keeps for every step of every layer

``steps`` is ``sequence_length`` (a batch of the longest examples is padded to it); a
bidirectional stack keeps both directions' (``hidden`` counts twice). Each task
counts its own weights and input width (:meth:`lstm_tune.tasks.base.Task.estimate`).
``ACTIVATION_FLOATS_PER_UNIT`` is fitted to a measured peak (``benchmarks/memory.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lstm_tune.types import MemoryEstimate

# Floats kept per LSTM unit, per step, per layer, for back-propagation: gate inputs and
# outputs, cell and hidden states, and the while-loop's stacked copies. Fitted to
# benchmarks/memory.py: the largest imdb.yaml config (hidden 512, 3 layers, 500 steps,
# batch 128) peaked at 4,817 MiB with 617 MiB before its model, i.e. 10.4 floats; rounded up
# to 11, the estimate for that config is 5,124 MiB (6% above the measurement).
ACTIVATION_FLOATS_PER_UNIT = 11
# What a worker holds before building a model (TensorFlow runtime, tokenized full IMDB):
# 617 MiB measured by benchmarks/memory.py, and up to 786 MiB between small trials.
BASE_BYTES = 700 * 2**20
# Refuse a config whose estimate exceeds this share of the memory available: the estimate is
# rough and other processes (other workers of a pool) need room too.
MAX_SHARE_OF_AVAILABLE = 0.8


class ConfigTooLarge(RuntimeError):
    """A config's estimated peak memory exceeds what the machine has available."""


def directions(params: Mapping[str, Any]) -> int:
    """2 for a ``bidirectional`` stack (an LSTM per direction per layer), else 1."""
    return 2 if params.get("bidirectional", False) else 1


def lstm_parameter_count(params: Mapping[str, Any], input_width: int) -> int:
    """Weights of the shared LSTM stack whose first layer reads ``input_width`` features
    (bidirectional: two LSTMs per layer, the next layer reading both directions' outputs)."""
    hidden, layers = int(params["hidden_size"]), int(params["num_layers"])
    both = directions(params)
    total, width = 0, input_width
    for _ in range(layers):
        total += both * 4 * (hidden * (width + hidden) + hidden)
        width = both * hidden
    return total


def estimate_memory(
    params: Mapping[str, Any], *, weights: int, input_width: int
) -> MemoryEstimate:
    """Estimate the peak memory of training ``params`` (see the module doc for the formula).

    ``weights`` counts the whole model's parameters (the task knows its input side and head);
    ``input_width`` is what the first LSTM layer reads at each step.
    """
    hidden, layers = int(params["hidden_size"]), int(params["num_layers"])
    units = directions(params) * hidden  # a bidirectional layer keeps both directions' steps
    cells = int(params["batch_size"]) * int(params["sequence_length"])
    activations = 4 * cells * (input_width + layers * ACTIVATION_FLOATS_PER_UNIT * units)
    return MemoryEstimate(BASE_BYTES, 16 * weights, activations)


def available_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Memory the kernel says is available for new work, or None where it does not say."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_fits(
    estimate: MemoryEstimate, params: Mapping[str, Any], available: int | None
) -> MemoryEstimate:
    """Return ``estimate``, or raise :class:`ConfigTooLarge` if it cannot fit ``available``."""
    if available is not None and estimate.total > MAX_SHARE_OF_AVAILABLE * available:
        raise ConfigTooLarge(
            f"estimated peak memory {estimate.total / 2**30:.1f} GiB (hidden_size="
            f"{params['hidden_size']}, num_layers={params['num_layers']}, sequence_length="
            f"{params['sequence_length']}, batch_size={params['batch_size']}) exceeds "
            f"{MAX_SHARE_OF_AVAILABLE:.0%} of the {available / 2**30:.1f} GiB available"
        )
    return estimate


# --- time ------------------------------------------------------------------------------------
#
# An epoch's time is dominated by the LSTM's steps: one step of one layer over one batch costs
# a fixed part (the step's dozen small ops) plus a part that grows with the step's matrix work,
# batch x hidden^2. Batches are padded only to their longest review, so the steps an epoch runs
# are the sum over its batches of that longest length. Validation (and checkpoint) predictions
# run the forward pass only, about a third of a training step's work.
#
#   seconds per epoch = layers x (train steps + forward steps / 3)
#                       x (STEP_SECONDS + batch x hidden^2 x SECONDS_PER_BATCH_HIDDEN2)
#
# Both constants are fitted by benchmarks/epoch_time_fit.py to the epochs lstm-tune's trials
# recorded on full IMDB in benchmarks/search_efficiency.py: 4 trials (31.7 to 191.7 s/epoch),
# each within 10% of its estimate (BENCHMARKS.md). Another machine differs by its speed, so
# the estimate is a guide (recorded, warned about), never a reason to refuse a config.
STEP_SECONDS = 3.42e-4
SECONDS_PER_BATCH_HIDDEN2 = 1.13e-10


def lstm_steps(lengths: np.ndarray, batch_size: int) -> int:
    """LSTM time steps one pass over reviews of ``lengths`` runs in length-sorted batches."""
    if len(lengths) == 0:
        return 0
    ordered = np.sort(np.asarray(lengths))
    last_of_each_batch = np.minimum(
        np.arange(batch_size - 1, len(ordered) + batch_size - 1, batch_size), len(ordered) - 1
    )
    return int(ordered[last_of_each_batch].sum())


def forward_lengths(
    validation_lengths: np.ndarray, train_count: int, report_every: int | None, report_sample: int
) -> np.ndarray:
    """Lengths of every review predicted per epoch: validation, and each checkpoint's sample."""
    if not report_every:
        return validation_lengths
    sample = validation_lengths[:report_sample]
    return np.concatenate([validation_lengths, *[sample] * (train_count // report_every)])


def epoch_seconds(params: Mapping[str, Any], train_steps: float, forward_steps: float) -> float:
    """Estimated seconds of one epoch that runs ``train_steps`` training and ``forward_steps``
    prediction steps of the LSTM stack per layer (see the formula above; a bidirectional
    stack runs each step twice)."""
    batch, hidden = int(params["batch_size"]), int(params["hidden_size"])
    per_step = STEP_SECONDS + batch * hidden * hidden * SECONDS_PER_BATCH_HIDDEN2
    layers = int(params["num_layers"]) * directions(params)
    return layers * (train_steps + forward_steps / 3) * per_step


def estimate_epoch_seconds(
    params: Mapping[str, Any], train_lengths: np.ndarray, forward: np.ndarray
) -> float:
    """Estimated seconds of one epoch over variable-length examples in length-sorted batches.

    ``train_lengths`` are the training examples' lengths; ``forward`` those of every example
    predicted per epoch (:func:`forward_lengths`). Lengths are cut to ``sequence_length``.
    """
    length, batch = int(params["sequence_length"]), int(params["batch_size"])
    return epoch_seconds(
        params,
        lstm_steps(np.minimum(train_lengths, length), batch),
        lstm_steps(np.minimum(forward, length), batch),
    )


def time_warning(seconds_per_epoch: float, epochs: int, timeout: float | None) -> str | None:
    """A warning when a trial is expected to outlast the search's ``timeout``, else None."""
    total = seconds_per_epoch * epochs
    if timeout is None or total <= timeout:
        return None
    return (
        f"this trial is estimated at {total / 60:.0f} min ({epochs} epochs of "
        f"{seconds_per_epoch:.0f} s), longer than the search's timeout of {timeout / 60:.0f} min"
    )
