"""The shared stacked LSTM that every task wraps, and its optimizer; knows nothing of Optuna or
of tasks.

``hidden_size``, ``num_layers`` and ``dropout_rate`` mean the same in every task: that many
LSTM layers of that width, each followed by Dropout, as in the seed notebook. A task puts its
input side in front (an embedding of token ids, or numeric features) and its head behind.

The optional knobs read here (``config.space.KNOBS``) default to the seed's model when a
config leaves them out: ``bidirectional`` (a second, backward LSTM per layer), and the
optimizer's ``weight_decay`` (AdamW), ``clipnorm``, ``lr_schedule`` and ``lr_warmup``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from lstm_tune.training.preflight import directions

ParamValues = Mapping[str, Any]

# A cosine schedule (or a warm-up) is built over this many steps and rescaled to the steps a
# training run plans (plan_learning_rate): build() does not know the epochs, fit() does.
UNIT_PLAN_STEPS = 10_000


def lstm_stack(params: ParamValues, *, return_sequences: bool = False) -> list[keras.layers.Layer]:
    """``num_layers`` LSTMs of ``hidden_size`` units, each followed by Dropout.

    Every layer but the last returns its whole sequence (the next layer reads it); the last
    returns only its final step unless ``return_sequences`` (a language model predicts at
    every position). With ``bidirectional`` each LSTM is Keras's ``Bidirectional`` wrapper
    (outputs of both directions side by side): for inputs without padding (forecasting
    windows); right-padded texts use :func:`bidirectional_over_lengths`.
    """
    hidden_size = int(params["hidden_size"])
    num_layers = int(params["num_layers"])
    dropout_rate = float(params["dropout_rate"])
    layers: list[keras.layers.Layer] = []
    for index in range(num_layers):
        last = index == num_layers - 1
        lstm = keras.layers.LSTM(hidden_size, return_sequences=return_sequences or not last)
        layers.append(keras.layers.Bidirectional(lstm) if directions(params) == 2 else lstm)
        layers.append(keras.layers.Dropout(dropout_rate))
    return layers


def reverse_within(steps: Any, lengths: Any) -> Any:
    """Each row's first ``lengths[row]`` steps in reverse order, the steps after them (the
    right padding) where they are: (batch, time, features) in and out. Keras ops, so a model
    that uses it loads with Keras alone."""
    positions = ops.cumsum(ops.ones_like(steps[:, :, 0], dtype="int32"), axis=1) - 1
    length = ops.reshape(lengths, (-1, 1))
    source = ops.where(positions < length, length - 1 - positions, positions)
    return ops.take_along_axis(steps, ops.expand_dims(source, -1), axis=1)


def bidirectional_over_lengths(steps: Any, params: ParamValues, lengths: Any) -> Any:
    """The stack, bidirectional, over right-padded sequences of ``lengths`` real steps, each
    layer's outputs at every step (forward, then backward, side by side), without the last
    layer's Dropout (the caller applies it after pooling).

    Keras's ``Bidirectional`` would read the padding first in its backward direction (the
    padding is not masked, for speed). Here the backward LSTM reads each sequence's real
    steps reversed in place (:func:`reverse_within`), so the padding comes after them and
    its outputs at real steps do not depend on how much padding follows.
    """
    hidden_size = int(params["hidden_size"])
    num_layers = int(params["num_layers"])
    for index in range(num_layers):
        forward = keras.layers.LSTM(hidden_size, return_sequences=True)(steps)
        backward = keras.layers.LSTM(hidden_size, return_sequences=True)(
            reverse_within(steps, lengths)
        )
        steps = keras.layers.Concatenate()([forward, reverse_within(backward, lengths)])
        if index < num_layers - 1:
            steps = keras.layers.Dropout(float(params["dropout_rate"]))(steps)
    return steps


def learning_rate(params: ParamValues) -> float | keras.optimizers.schedules.CosineDecay:
    """The config's ``learning_rate``, as a schedule when ``lr_schedule`` is ``cosine`` or
    ``lr_warmup`` is above 0: a linear warm-up from 0 over that share of the planned steps,
    then a cosine decay to 0 (``cosine``) or a constant rate. Keras's ``CosineDecay`` does
    both (``alpha=1`` keeps the rate constant after the warm-up), so a saved model's optimizer
    loads with Keras alone."""
    rate = float(params["learning_rate"])
    schedule = str(params.get("lr_schedule", "constant"))
    warmup = float(params.get("lr_warmup", 0.0))
    if schedule == "constant" and warmup == 0:
        return rate
    warmup_steps = round(warmup * UNIT_PLAN_STEPS)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else rate,
        decay_steps=max(1, UNIT_PLAN_STEPS - warmup_steps),
        alpha=1.0 if schedule == "constant" else 0.0,
        warmup_target=rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def optimizer(params: ParamValues, *, clipnorm: float | None = None) -> keras.optimizers.Optimizer:
    """Adam at the config's learning rate (the seed notebook's), or AdamW when
    ``weight_decay`` > 0; gradients clipped to a global norm of ``clipnorm`` (the config's,
    else the task's default ``clipnorm``; 0 or None: no clipping); the rate scheduled by
    :func:`learning_rate`."""
    clip = float(params.get("clipnorm", clipnorm or 0.0))
    options: dict[str, Any] = {"learning_rate": learning_rate(params)}
    if clip > 0:
        options["global_clipnorm"] = clip
    decay = float(params.get("weight_decay", 0.0))
    if decay > 0:
        return keras.optimizers.AdamW(weight_decay=decay, **options)
    return keras.optimizers.Adam(**options)


def scheduled_rate(model: keras.Model) -> keras.optimizers.schedules.CosineDecay | None:
    """The learning-rate schedule of ``model``'s optimizer, None for a constant rate."""
    # Keras keeps the schedule object in the optimizer's private _learning_rate (its public
    # learning_rate is the current value).
    schedule = getattr(model.optimizer, "_learning_rate", None)
    return schedule if isinstance(schedule, keras.optimizers.schedules.CosineDecay) else None


def plan_learning_rate(schedule: keras.optimizers.schedules.CosineDecay, steps: int) -> None:
    """Spread ``schedule`` over ``steps`` training steps, keeping its warm-up share: what a
    training run plans, known only when it starts (the steps are plain attributes, read at
    each step of the training function traced after this)."""
    share = schedule.warmup_steps / (schedule.warmup_steps + schedule.decay_steps)
    schedule.warmup_steps = round(share * steps)
    schedule.decay_steps = max(1, steps - schedule.warmup_steps)


# XLA made a training step several times slower on the 2-core CPUs we measured (BENCHMARKS.md,
# train_step); Keras's "auto" already leaves it off without a GPU. Tasks compile with this.
JIT_COMPILE = False
