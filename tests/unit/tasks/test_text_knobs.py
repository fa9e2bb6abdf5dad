"""The text classifier's knobs: bidirectional, embedding_size and pooling over the real tokens
of right-padded, unmasked texts."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lstm_tune.tasks.text_classification.pooling import POOLINGS, attention_weights
from lstm_tune.tasks.text_classification.task import build_classifier, parameter_count

TINY = {
    "hidden_size": 6,
    "num_layers": 2,
    "learning_rate": 0.01,
    "dropout_rate": 0.0,
    "sequence_length": 40,
    "batch_size": 8,
}
VOCAB = 40
LENGTHS = (5, 1, 9, 3)
WIDTH = 12  # the batch is padded to this; the texts are shorter


def _texts(seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(2, VOCAB, size=n).astype(np.int32) for n in LENGTHS]


def _predict(model: keras.Model, ids: np.ndarray) -> np.ndarray:
    """The model called eagerly: no tf.function traced per batch shape (seconds each)."""
    return np.asarray(model(ids, training=False))


def _right_padded(texts: list[np.ndarray], width: int) -> np.ndarray:
    ids = np.zeros((len(texts), width), np.int32)
    for row, text in enumerate(texts):
        ids[row, : len(text)] = text
    return ids


def _lstm_weights(model: keras.Model) -> int:
    """Weights of the model's LSTMs, wrapped in Bidirectional or not."""
    recurrent = (keras.layers.LSTM, keras.layers.Bidirectional)
    return sum(layer.count_params() for layer in model.layers if isinstance(layer, recurrent))


def _stack_and_pooled(model: keras.Model, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The last LSTM layer's outputs at every step (both directions side by side when
    bidirectional) and the pooled vector the head reads (Dropout is identity in predict)."""
    joined = [layer for layer in model.layers if isinstance(layer, keras.layers.Concatenate)]
    lstms = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    steps = joined[-1].output if joined else lstms[-1].output
    head = next(
        layer
        for layer in reversed(model.layers)
        if isinstance(layer, keras.layers.Dense) and not layer.name.startswith("attention")
    )
    probe = keras.Model(model.input, [steps, head.input])
    out_steps, pooled = probe(ids, training=False)
    return np.asarray(out_steps), np.asarray(pooled)


@pytest.mark.parametrize("layers", [1, 2])
def test_bidirectional_doubles_the_lstms_weights(layers: int) -> None:
    params = {**TINY, "num_layers": layers}
    one = build_classifier(params, VOCAB)
    both = build_classifier({**params, "bidirectional": True}, VOCAB)
    hidden, width = TINY["hidden_size"], TINY["hidden_size"]  # embedding width: hidden_size
    per_direction = 4 * (hidden * (width + hidden) + hidden)
    # The first layer doubles exactly; a second one reads both directions' outputs.
    assert _lstm_weights(one) == layers * per_direction
    expected = 2 * per_direction + (layers - 1) * 2 * 4 * (hidden * (2 * hidden + hidden) + hidden)
    assert _lstm_weights(both) == expected
    if layers == 1:
        assert _lstm_weights(both) == 2 * _lstm_weights(one)
    for model, params_ in ((one, params), (both, {**params, "bidirectional": True})):
        assert model.count_params() == parameter_count(params_, VOCAB)  # pre-flight agrees


def test_embedding_size_sets_the_embeddings_width_and_defaults_to_hidden_size() -> None:
    def embedding(model: keras.Model) -> keras.layers.Embedding:
        return next(x for x in model.layers if isinstance(x, keras.layers.Embedding))

    assert embedding(build_classifier(TINY, VOCAB)).output_dim == TINY["hidden_size"]
    params = {**TINY, "embedding_size": 3, "pooling": "attention", "bidirectional": True}
    model = build_classifier(params, VOCAB)
    assert embedding(model).output_dim == 3
    assert model.count_params() == parameter_count(params, VOCAB)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_max_and_mean_pooling_equal_numpy_over_each_texts_real_tokens(
    pooling: str, bidirectional: bool
) -> None:
    keras.utils.set_random_seed(4)
    model = build_classifier({**TINY, "pooling": pooling, "bidirectional": bidirectional}, VOCAB)
    steps, pooled = _stack_and_pooled(model, _right_padded(_texts(), WIDTH))
    reduce = np.max if pooling == "max" else np.mean
    expected = np.stack([reduce(steps[row, :n], axis=0) for row, n in enumerate(LENGTHS)])
    np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-6)
    # Over every step, padding included, the numbers differ: the test can fail.
    assert np.abs(reduce(steps, axis=1) - expected).max() > 1e-4


@pytest.mark.parametrize("bidirectional", [False, True])
def test_attention_weights_sum_to_one_over_real_tokens_and_are_zero_on_padding(
    bidirectional: bool,
) -> None:
    keras.utils.set_random_seed(5)
    model = build_classifier(
        {**TINY, "pooling": "attention", "bidirectional": bidirectional}, VOCAB
    )
    ids = _right_padded(_texts(), WIDTH)
    steps, pooled = _stack_and_pooled(model, ids)
    weights = np.asarray(
        attention_weights(
            keras.ops.convert_to_tensor(steps),
            keras.ops.convert_to_tensor(ids),
            model.get_layer("attention_hidden"),
            model.get_layer("attention_score"),
        )
    )
    for row, n in enumerate(LENGTHS):
        assert weights[row, :n].sum() == pytest.approx(1.0, abs=1e-6)
        assert np.all(weights[row, :n] > 0)
        assert np.all(weights[row, n:] == 0.0)
    # The model pools with these weights.
    np.testing.assert_allclose(pooled, np.einsum("bt,btf->bf", weights, steps), atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_more_padding_gives_the_same_prediction(pooling: str, bidirectional: bool) -> None:
    keras.utils.set_random_seed(6)
    model = build_classifier({**TINY, "pooling": pooling, "bidirectional": bidirectional}, VOCAB)
    texts = _texts()
    tight = _predict(model, _right_padded(texts, max(LENGTHS)))
    for width in (WIDTH, 37):
        np.testing.assert_allclose(_predict(model, _right_padded(texts, width)), tight, atol=1e-6)
    # Each text alone, padded to nothing but itself, predicts the same as in the batch.
    for row, text in enumerate(texts):
        np.testing.assert_allclose(_predict(model, text[None, :])[0], tight[row], atol=1e-6)


def test_keras_bidirectional_over_the_same_padding_would_depend_on_it() -> None:
    """Why the classifier does not use keras.layers.Bidirectional: unmasked, its backward
    LSTM reads the padding first, so more padding changes the output."""
    keras.utils.set_random_seed(7)
    ids = keras.Input(shape=(None,), dtype="int32")
    steps = keras.layers.Embedding(VOCAB, 4)(ids)
    out = keras.layers.Bidirectional(keras.layers.LSTM(4))(steps)
    model = keras.Model(ids, out)
    texts = _texts()
    tight = _predict(model, _right_padded(texts, max(LENGTHS)))
    assert np.abs(_predict(model, _right_padded(texts, 37)) - tight).max() > 1e-4
