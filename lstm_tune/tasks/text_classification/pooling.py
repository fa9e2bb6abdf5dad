"""How the LSTM's outputs over a right-padded text become one vector (the ``pooling`` knob).

Texts are right-padded (id 0) without a Keras mask, for speed (see
:func:`~lstm_tune.tasks.text_classification.task.build_classifier`). An LSTM only looks back,
so its outputs at a text's real tokens do not depend on the padding after them; every pooling
here reads those positions only, found from the ids themselves (``id != 0``):

``last``
    the output at each text's last real token (today's model; with a bidirectional stack,
    the forward half there and the backward half at the first token, where each direction has
    read the whole text);
``max`` / ``mean``
    the maximum / mean of each feature over the real tokens;
``attention``
    a weighted sum over the real tokens, the weights a softmax of a learned score
    (``v . tanh(W h + b)``) over them, exactly 0 on padding.

So a text's pooled vector, and its prediction, does not depend on how much padding its batch
has. Keras ops and built-in layers only, so a saved model loads with Keras alone.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from lstm_tune.tasks.text_classification.data import PAD_ID

POOLINGS = ("last", "max", "mean", "attention")
# Stands in for padding's score or value before a softmax or a max: exp of it is exactly 0
# in float32, and LSTM outputs lie in (-1, 1), far above it.
FAR_BELOW = -1e9


def real_tokens(ids: Any) -> Any:
    """True at each real (non-padding) token id: (batch, time)."""
    return ops.not_equal(ids, PAD_ID)


def real_lengths(ids: Any) -> Any:
    """Each text's count of real tokens: (batch,) int32."""
    return ops.sum(ops.cast(real_tokens(ids), "int32"), axis=1)


def last_real_step(steps: Any, ids: Any) -> Any:
    """Each row of ``steps`` (batch, time, features) at its text's last non-padding id.

    A text of only padding reads step 0.
    """
    last = ops.reshape(ops.maximum(real_lengths(ids) - 1, 0), (-1, 1, 1))
    return ops.squeeze(ops.take_along_axis(steps, last, axis=1), axis=1)


def max_over_real(steps: Any, ids: Any) -> Any:
    """The maximum of each feature over each text's real tokens (0 for a text of none)."""
    real = ops.expand_dims(real_tokens(ids), -1)
    highest = ops.max(ops.where(real, steps, FAR_BELOW), axis=1)
    return ops.where(ops.any(real, axis=1), highest, 0.0)


def mean_over_real(steps: Any, ids: Any) -> Any:
    """The mean of each feature over each text's real tokens (0 for a text of none)."""
    real = ops.expand_dims(ops.cast(real_tokens(ids), steps.dtype), -1)
    count = ops.maximum(ops.sum(real, axis=1), 1.0)
    return ops.sum(steps * real, axis=1) / count


def attention_weights(
    steps: Any, ids: Any, hidden: keras.layers.Layer, score: keras.layers.Layer
) -> Any:
    """Each text's attention weights over its tokens, (batch, time): a softmax of
    ``score(hidden(steps))`` over the real tokens, summing to 1 over them, 0 on padding."""
    real = real_tokens(ids)
    scores = ops.where(real, ops.squeeze(score(hidden(steps)), axis=-1), FAR_BELOW)
    return ops.softmax(scores, axis=1) * ops.cast(real, steps.dtype)


def attention_layers(width: int) -> tuple[keras.layers.Layer, keras.layers.Layer]:
    """The learned scorer of :func:`attention_weights` for outputs of ``width`` features."""
    hidden = keras.layers.Dense(width, activation="tanh", name="attention_hidden")
    score = keras.layers.Dense(1, use_bias=False, name="attention_score")
    return hidden, score


def pool(steps: Any, ids: Any, pooling: str, *, bidirectional: bool = False) -> Any:
    """``steps`` (batch, time, features) pooled over each text's real tokens, as ``pooling``
    says (see the module docstring); ``bidirectional``: the features are a forward and a
    backward half."""
    if pooling == "last":
        if not bidirectional:
            return last_real_step(steps, ids)
        half = int(steps.shape[-1]) // 2
        forward = last_real_step(steps[:, :, :half], ids)
        return ops.concatenate([forward, steps[:, 0, half:]], axis=-1)
    if pooling == "max":
        return max_over_real(steps, ids)
    if pooling == "mean":
        return mean_over_real(steps, ids)
    if pooling == "attention":
        weights = attention_weights(steps, ids, *attention_layers(int(steps.shape[-1])))
        return ops.sum(steps * ops.expand_dims(weights, -1), axis=1)
    raise ValueError(f"pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
