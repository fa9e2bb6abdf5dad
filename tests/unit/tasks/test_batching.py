"""Length-bucketed batches: every review once per epoch, little padding, order restored."""

from __future__ import annotations

import numpy as np

from lstm_tune.tasks.text_classification.batching import (
    WINDOW_BATCHES,
    dataset,
    evaluation_batches,
    training_batches,
    truncated_lengths,
)
from lstm_tune.tasks.text_classification.data import Split, pad
from lstm_tune.tasks.text_classification.task import build_classifier, predict_proba


def _split(n: int, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(2, 50, rng.integers(1, 120)).astype(np.int32) for _ in range(n)]
    return Split(seqs, rng.integers(0, 2, n).astype(np.int8))


def test_each_epoch_visits_every_review_once_in_a_new_order() -> None:
    lengths = truncated_lengths(_split(1000), 100)
    rng = np.random.default_rng(0)
    first = training_batches(lengths, 32, rng)
    second = training_batches(lengths, 32, rng)
    for epoch in (first, second):
        assert sorted(np.concatenate(epoch).tolist()) == list(range(1000))
    assert [b.tolist() for b in first] != [b.tolist() for b in second]


def test_batches_hold_similar_lengths_so_padding_is_small() -> None:
    split = _split(4 * 32 * WINDOW_BATCHES)
    lengths = truncated_lengths(split, 100)
    batches = training_batches(lengths, 32, np.random.default_rng(0))
    padded_steps = sum(len(b) * lengths[b].max() for b in batches)
    # Padding every review to the longest (100) would make this about 1.7x; bucketing ~1.0x.
    assert padded_steps / lengths.sum() < 1.1
    assert (len(split) * 100) / lengths.sum() > 1.6


def test_dataset_cuts_to_sequence_length_keeping_the_end_and_pads_after_it() -> None:
    split = Split([np.arange(2, 12, dtype=np.int32), np.array([5], np.int32)], np.array([1, 0]))
    ((ids, labels),) = list(dataset(split, sequence_length=4, batch_size=2, shuffle_seed=None))
    assert ids.numpy().tolist() == [[5, 0, 0, 0], [8, 9, 10, 11]]
    assert labels.numpy().tolist() == [0.0, 1.0]
    assert evaluation_batches(np.array([4, 1]), 2)[0].tolist() == [1, 0]


def test_predictions_come_back_in_the_original_order_and_ignore_padding() -> None:
    split = _split(40, seed=3)
    params = {
        "hidden_size": 6,
        "num_layers": 2,
        "learning_rate": 1e-3,
        "dropout_rate": 0.0,
        "sequence_length": 64,
        "batch_size": 8,
    }
    model = build_classifier(params, 50)
    bucketed = predict_proba(model, split, params)[:, 1]
    one_by_one = np.array(
        [
            model.predict(pad([s[-64:]], min(64, len(s)), side="right"), verbose=0)[0, 0]
            for s in split.sequences
        ]
    )
    padded_to_64 = model.predict(pad(split.sequences, 64, side="right"), verbose=0).reshape(-1)
    np.testing.assert_allclose(bucketed, one_by_one, atol=1e-5)
    np.testing.assert_allclose(padded_to_64, one_by_one, atol=1e-5)


def test_dataset_declares_its_number_of_batches_so_keras_knows_an_epochs_length() -> None:
    split = _split(100)
    for seed in (None, 1):
        batches = dataset(split, sequence_length=50, batch_size=32, shuffle_seed=seed)
        assert int(batches.cardinality()) == 4 == len(list(batches))
