"""Length-bucketed batches: each batch padded only to its own longest review.

The seed pads every review to ``sequence_length`` (500), but most IMDB reviews are far
shorter (median about 173 words), so most of its LSTM steps run over padding. Here reviews
are cut to ``sequence_length`` as before (keeping their end), grouped with reviews of similar
length, and right-padded to the longest of their batch. The classifier reads its output at
each review's last real token (an LSTM only looks back, so the padding after it cannot change
that output), so what it computes for a review does not depend on how much padding its batch
has; no mask is needed (see :func:`lstm_tune.tasks.text_classification.task.build_classifier`).

Training order stays random: each epoch shuffles the reviews, sorts them by length only inside
windows of ``WINDOW_BATCHES`` batches, and shuffles the order of the resulting batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from lstm_tune.tasks.text_classification.data import Split, pad, review_lengths

# Sorting inside windows of this many batches keeps batches nearly uniform in length (the
# padding left is a few percent) while each batch still mixes reviews from the whole split.
WINDOW_BATCHES = 32
# Batches prepared ahead of the training step, so input work overlaps the LSTM's compute.
PREFETCH_BATCHES = 4


def truncated_lengths(split: Split, sequence_length: int) -> np.ndarray:
    """Length of each review after cutting it to ``sequence_length`` tokens."""
    return np.minimum(review_lengths(split), sequence_length)


def training_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Index batches for one epoch: shuffled, sorted by length within windows, order shuffled."""
    order = rng.permutation(len(lengths))
    window = batch_size * WINDOW_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def evaluation_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Index batches in ascending length; fixed order, for validation and prediction."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _padded(split: Split, index: np.ndarray, sequence_length: int) -> np.ndarray:
    seqs = [split.sequences[i][-sequence_length:] for i in index]
    return pad(seqs, max(1, max(len(s) for s in seqs)), side="right")


def dataset(
    split: Split,
    *,
    sequence_length: int,
    batch_size: int,
    shuffle_seed: int | None,
    with_labels: bool = True,
) -> tf.data.Dataset:
    """A ``tf.data`` pipeline of (ids, labels) batches, bucketed by length.

    With ``shuffle_seed`` the batches are drawn anew for every pass (every epoch), else they
    come in :func:`evaluation_batches` order.
    """
    lengths = truncated_lengths(split, sequence_length)
    labels = split.labels.astype(np.float32)
    rng = np.random.default_rng(shuffle_seed)

    def generate() -> Iterator[tuple[np.ndarray, np.ndarray] | np.ndarray]:
        batches = (
            training_batches(lengths, batch_size, rng)
            if shuffle_seed is not None
            else evaluation_batches(lengths, batch_size)
        )
        for index in batches:
            ids = _padded(split, index, sequence_length)
            yield (ids, labels[index]) if with_labels else ids

    ids_spec = tf.TensorSpec(shape=(None, None), dtype=tf.int32)
    signature = (
        (ids_spec, tf.TensorSpec(shape=(None,), dtype=tf.float32)) if with_labels else ids_spec
    )
    # Windows hold whole batches, so both orders give ceil(n / batch_size) batches; telling
    # tf.data lets Keras know an epoch's length instead of running until the generator ends.
    n_batches = -(-len(split) // batch_size)
    batches = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return batches.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(
        PREFETCH_BATCHES
    )
