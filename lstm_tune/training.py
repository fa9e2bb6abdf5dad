"""Fit a compiled model on length-bucketed batches, recording what a trial or report needs.

Knows nothing of Optuna: the objective passes its pruning callback in with the others.
Batches come from :mod:`lstm_tune.batching` (each padded only to its longest review).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from lstm_tune.batching import dataset, evaluation_batches, truncated_lengths
from lstm_tune.data import Split

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
EpochHook = Callable[["EpochRecorder"], None]


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; the message says when."""


class EpochRecorder(keras.callbacks.Callback):  # type: ignore[misc]
    """Keeps per-epoch history and wall time, stops on a non-finite loss, calls ``on_epoch``."""

    def __init__(self, on_epoch: EpochHook | None = None) -> None:
        super().__init__()
        self.on_epoch = on_epoch
        self.history: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
        self.seconds_per_epoch: list[float] = []
        self._epoch_start = 0.0

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
        for key in HISTORY_KEYS:
            self.history[key].append(float(logs.get(key, float("nan"))))
        if self.on_epoch is not None:
            self.on_epoch(self)

    @property
    def best_epoch(self) -> int:
        """The 1-based epoch with the highest validation accuracy (the first, on ties)."""
        return int(np.argmax(self.history["val_accuracy"])) + 1

    @property
    def best_value(self) -> float:
        """The highest validation accuracy seen."""
        return max(self.history["val_accuracy"])


CheckpointHook = Callable[[int, float], None]


class CheckpointEvaluator(keras.callbacks.Callback):  # type: ignore[misc]
    """Every ``every_reviews`` training reviews, measures accuracy on a fixed sample.

    Calls ``on_checkpoint(step, accuracy)`` with ``step`` = checkpoints passed so far (1, 2,
    ...), counted across epochs, so trials of any batch size report at the same steps. The hook
    may raise to stop training (the objective raises ``optuna.TrialPruned``).
    """

    def __init__(
        self,
        *,
        every_reviews: int,
        sample: Split,
        sequence_length: int,
        batch_size: int,
        on_checkpoint: CheckpointHook,
    ) -> None:
        super().__init__()
        self.every_reviews = every_reviews
        self.sample = sample
        self.sequence_length = sequence_length
        self.batch_size = batch_size
        self.on_checkpoint = on_checkpoint
        self.reviews_seen = 0
        self.steps_reported = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.reviews_seen += self.batch_size
        step = self.reviews_seen // self.every_reviews
        if step > self.steps_reported:
            self.steps_reported = step
            probabilities = predict_proba(
                self.model,
                self.sample,
                sequence_length=self.sequence_length,
                batch_size=self.batch_size,
            )
            accuracy = float(np.mean((probabilities >= 0.5) == (self.sample.labels >= 0.5)))
            self.on_checkpoint(step, accuracy)


def fit(
    model: keras.Model,
    train: Split,
    validation: Split,
    *,
    sequence_length: int,
    batch_size: int,
    epochs: int,
    seed: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    on_epoch: EpochHook | None = None,
) -> EpochRecorder:
    """Train ``model`` for ``epochs`` and return the recorder of its history and timings.

    ``seed`` fixes the order of training batches. The recorder runs before ``callbacks``, so a
    callback that stops training (pruning) still finds the epoch it stopped on in the history.
    """
    recorder = EpochRecorder(on_epoch=on_epoch)
    model.fit(
        dataset(train, sequence_length=sequence_length, batch_size=batch_size, shuffle_seed=seed),
        validation_data=dataset(
            validation, sequence_length=sequence_length, batch_size=batch_size, shuffle_seed=None
        ),
        epochs=epochs,
        shuffle=False,  # the batches are already drawn in a new random order each epoch
        callbacks=[recorder, *callbacks],
        verbose=0,
    )
    return recorder


def predict_proba(
    model: keras.Model, split: Split, *, sequence_length: int, batch_size: int
) -> np.ndarray:
    """Return the model's positive-class probability for each review of ``split``, in order."""
    batches = dataset(
        split,
        sequence_length=sequence_length,
        batch_size=batch_size,
        shuffle_seed=None,
        with_labels=False,
    )
    in_length_order = np.asarray(model.predict(batches, verbose=0)).reshape(-1)
    order = np.concatenate(
        evaluation_batches(truncated_lengths(split, sequence_length), batch_size)
    )
    probabilities = np.empty_like(in_length_order)
    probabilities[order] = in_length_order
    return probabilities
