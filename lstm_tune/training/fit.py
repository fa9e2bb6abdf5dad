"""Fit a compiled model on a task's batches, recording what a trial or report needs.

Knows nothing of Optuna or of tasks: the objective passes the pruning callback in with the
others, and the :class:`~lstm_tune.tasks.base.Objective` that names the validation metric
(and whether higher or lower is better).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import keras

from lstm_tune.training.lstm_stack import plan_learning_rate, scheduled_rate

if TYPE_CHECKING:
    import tensorflow as tf

    from lstm_tune.types import Objective

EpochHook = Callable[["EpochRecorder"], None]


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; the message says when."""


class EpochRecorder(keras.callbacks.Callback):  # type: ignore[misc]
    """Keeps per-epoch history and wall time, stops on a non-finite loss, calls ``on_epoch``.

    ``history`` holds every value Keras logs at an epoch end (``loss``, ``val_loss``, the
    task's metric and its ``val_`` twin); ``objective`` names the one trials are judged by.
    """

    def __init__(self, objective: Objective, on_epoch: EpochHook | None = None) -> None:
        super().__init__()
        self.objective = objective
        self.on_epoch = on_epoch
        self.history: dict[str, list[float]] = {}
        self.seconds_per_epoch: list[float] = []
        self._epoch_start = 0.0

    @property
    def metric_name(self) -> str:
        """The validation metric trials are judged by, e.g. ``val_accuracy``."""
        return self.objective.name

    @property
    def values(self) -> list[float]:
        """The objective's value at each epoch end so far."""
        return self.history.get(self.objective.name, [])

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDiverged(
                f"training loss became {float(loss)} at epoch {len(self.seconds_per_epoch) + 1}, "
                f"batch {batch + 1}"
            )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.seconds_per_epoch.append(time.perf_counter() - self._epoch_start)
        logs = logs or {}
        if self.objective.name not in logs:
            raise KeyError(
                f"the model logs no {self.objective.name!r} at epoch ends (it logs "
                f"{', '.join(sorted(logs))}); the task must compile a metric of that name"
            )
        earlier = len(self.seconds_per_epoch) - 1
        for key in sorted(set(logs) | set(self.history)):
            column = self.history.setdefault(key, [float("nan")] * earlier)
            column.append(float(logs.get(key, float("nan"))))
        if self.on_epoch is not None:
            self.on_epoch(self)

    @property
    def best_epoch(self) -> int:
        """The 1-based epoch with the best objective value (the first, on ties)."""
        return self.objective.best_index(self.values) + 1

    @property
    def best_value(self) -> float:
        """The best objective value seen."""
        return self.values[self.best_epoch - 1]


CheckpointHook = Callable[[int, float], None]


class CheckpointEvaluator(keras.callbacks.Callback):  # type: ignore[misc]
    """Every ``every_examples`` training examples, scores the model with ``score``.

    Calls ``on_checkpoint(step, value)`` with ``step`` = checkpoints passed so far (1, 2,
    ...), counted across epochs, so trials of any batch size report at the same steps. The hook
    may raise to stop training (the objective raises ``optuna.TrialPruned``).
    """

    def __init__(
        self,
        *,
        every_examples: int,
        batch_size: int,
        score: Callable[[keras.Model], float],
        on_checkpoint: CheckpointHook,
    ) -> None:
        super().__init__()
        self.every_examples = every_examples
        self.batch_size = batch_size
        self.score = score
        self.on_checkpoint = on_checkpoint
        self.examples_seen = 0
        self.steps_reported = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.examples_seen += self.batch_size
        step = self.examples_seen // self.every_examples
        if step > self.steps_reported:
            self.steps_reported = step
            self.on_checkpoint(step, float(self.score(self.model)))


class EarlyStopper(keras.callbacks.EarlyStopping):  # type: ignore[misc]
    """Keras's ``EarlyStopping`` on the objective, in its direction, counting epochs, or
    checkpoints when ``per_checkpoint`` (fed by :meth:`on_checkpoint`, not by epoch ends).

    Stops after ``patience`` checks in a row that do not beat the best value so far by more
    than ``min_delta``. Restoring the best weights is :class:`BestWeights`' job: Keras's
    ``restore_best_weights`` keeps the last epoch that beat the best by ``min_delta``, which
    with ``min_delta > 0`` need not be the best epoch the recorder reports.
    """

    def __init__(
        self, objective: Objective, *, patience: int, min_delta: float, per_checkpoint: bool
    ) -> None:
        super().__init__(
            monitor=objective.name,
            mode="max" if objective.direction == "maximize" else "min",
            patience=patience,
            min_delta=min_delta,
        )
        self.per_checkpoint = per_checkpoint
        self.checks = 0
        # The epoch (1-based) or checkpoint step at which training was told to stop.
        self.stopped_at: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.per_checkpoint:
            self._check(logs, epoch + 1)

    def on_checkpoint(self, step: int, value: float) -> None:
        """Count checkpoint ``step`` (scored ``value``) as one check."""
        if self.per_checkpoint:
            self._check({self.monitor: value}, step)

    def _check(self, logs: dict[str, Any] | None, at: int) -> None:
        self.checks += 1
        super().on_epoch_end(self.checks - 1, logs)
        if self.stopped_epoch and self.stopped_at is None:  # Keras: the check it stopped at
            self.stopped_at = at

    def reason(self) -> str | None:
        """Why training stopped early, in words, or None if it did not."""
        if self.stopped_at is None:
            return None
        unit = "checkpoints" if self.per_checkpoint else "epochs"
        # Keras stores min_delta negated when lower is better.
        delta = f" by more than {abs(self.min_delta):g}" if self.min_delta else ""
        return f"{self.monitor} did not improve{delta} for {self.patience} {unit}"


class BestWeights(keras.callbacks.Callback):  # type: ignore[misc]
    """Puts back, when training ends, the weights of the recorder's best epoch.

    Runs after ``recorder`` (which must come first in the callbacks), so the epoch just
    ended is in its history; on ties the first best epoch is kept, as the recorder reports.
    """

    def __init__(self, recorder: EpochRecorder) -> None:
        super().__init__()
        self.recorder = recorder
        self.weights: list[Any] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.recorder.best_epoch == len(self.recorder.values):
            self.weights = self.model.get_weights()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.weights is not None:
            self.model.set_weights(self.weights)


def fit(
    model: keras.Model,
    train: tf.data.Dataset,
    validation: tf.data.Dataset,
    *,
    objective: Objective,
    epochs: int,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    on_epoch: EpochHook | None = None,
    planned_epochs: int | None = None,
    restore_best: bool = False,
) -> EpochRecorder:
    """Train ``model`` for at most ``epochs`` and return the recorder of its history and
    timings; ``restore_best`` leaves the model with its best epoch's weights.

    The recorder runs before ``callbacks``, so a callback that stops training (pruning, early
    stopping) still finds the epoch it stopped on in the history. A learning-rate schedule
    (``lr_schedule``, ``lr_warmup``) is spread over ``planned_epochs`` (default ``epochs``)
    epochs of ``train``'s batches: ``train`` replays a trial's first epochs at the trial's rates.
    """
    schedule = scheduled_rate(model)
    if schedule is not None:
        plan_learning_rate(schedule, (planned_epochs or epochs) * _batches_per_epoch(train))
    recorder = EpochRecorder(objective, on_epoch=on_epoch)
    keep = [BestWeights(recorder)] if restore_best else []
    model.fit(
        train,
        validation_data=validation,
        epochs=epochs,
        shuffle=False,  # the task's batches are already drawn in a new random order each epoch
        callbacks=[recorder, *keep, *callbacks],
        verbose=0,
    )
    return recorder


def _batches_per_epoch(train: tf.data.Dataset) -> int:
    """The batches of one pass over ``train`` (every task's pipeline declares its count)."""
    count = int(train.cardinality())
    if count < 0:
        raise ValueError(
            "the training batches do not declare how many they are (tf.data cardinality "
            f"{count}); the task's batches() must, e.g. with assert_cardinality"
        )
    return count
