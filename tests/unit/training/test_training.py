"""Fitting records history and timings, and a NaN loss stops training with a reason."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_tune.tasks.text_classification.batching import dataset
from lstm_tune.tasks.text_classification.data import Split
from lstm_tune.tasks.text_classification.task import build_classifier
from lstm_tune.training.fit import TrainingDiverged, fit
from lstm_tune.types import Objective

ACCURACY = Objective("val_accuracy", "maximize")
LOSS = Objective("val_loss", "minimize")

PARAMS = {
    "hidden_size": 8,
    "num_layers": 1,
    "learning_rate": 1e-2,
    "dropout_rate": 0.0,
    "sequence_length": 12,
    "batch_size": 16,
}


def _batches(split: Split, shuffle_seed: int | None) -> object:
    return dataset(split, sequence_length=12, batch_size=16, shuffle_seed=shuffle_seed)


def _toy(n: int, seed: int, labels: np.ndarray | None = None) -> Split:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n) if labels is None else labels
    # Positive reviews contain token 7, negative ones token 3: learnable in a few epochs.
    seqs = [
        np.append(rng.integers(10, 40, rng.integers(3, 20)), 7 if label else 3).astype(np.int32)
        for label in y
    ]
    return Split(seqs, np.asarray(y))


@pytest.mark.slow
def test_fit_records_per_epoch_history_timings_and_best_epoch() -> None:
    seen: list[int] = []
    recorder = fit(
        build_classifier(PARAMS, vocab_size=50),
        _batches(_toy(256, 0), 0),
        _batches(_toy(64, 1), None),
        objective=ACCURACY,
        epochs=4,
        on_epoch=lambda r: seen.append(len(r.seconds_per_epoch)),
    )
    assert seen == [1, 2, 3, 4]
    assert all(len(v) == 4 for v in recorder.history.values())
    assert len(recorder.seconds_per_epoch) == 4 and min(recorder.seconds_per_epoch) > 0
    assert recorder.best_value == max(recorder.history["val_accuracy"])
    assert recorder.history["val_accuracy"][recorder.best_epoch - 1] == recorder.best_value
    assert recorder.best_value > 0.9  # the toy task is learnable: training really happens


@pytest.mark.slow
def test_nan_loss_raises_with_epoch_and_batch() -> None:
    bad = _toy(64, 0)
    bad = Split(bad.sequences, np.full(64, np.nan))
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 1, batch 1"):
        fit(
            build_classifier(PARAMS, vocab_size=50),
            _batches(bad, 0),
            _batches(_toy(16, 1), None),
            objective=ACCURACY,
            epochs=2,
        )


@pytest.mark.slow
def test_a_minimised_objective_picks_the_epoch_with_the_lowest_value() -> None:
    recorder = fit(
        build_classifier(PARAMS, vocab_size=50),
        _batches(_toy(256, 0), 0),
        _batches(_toy(64, 1), None),
        objective=LOSS,
        epochs=3,
    )
    losses = recorder.history["val_loss"]
    assert recorder.values == losses and recorder.metric_name == "val_loss"
    assert recorder.best_value == min(losses)
    assert recorder.best_epoch == losses.index(min(losses)) + 1
