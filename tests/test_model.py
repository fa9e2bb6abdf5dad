"""The seed's architecture, built from one set of hyperparameters, and its multi-class twin."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from lstm_tune.config import load_spec
from lstm_tune.tasks.text_classification import build_classifier, parameter_count

SEED_PARAMS = load_spec(
    Path(__file__).resolve().parents[1] / "studies" / "seed_config.yaml"
).fixed_params()


def test_seed_params_build_the_seed_notebooks_layer_stack() -> None:
    model = build_classifier(SEED_PARAMS, vocab_size=10000)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Embedding", "LSTM", "Dropout", "LSTM", "Dropout", "Dense"]
    lstm1, lstm2 = (layer for layer in model.layers if isinstance(layer, keras.layers.LSTM))
    assert lstm1.units == lstm2.units == 128
    assert lstm1.return_sequences and not lstm2.return_sequences
    assert all(
        layer.rate == 0.3 for layer in model.layers if isinstance(layer, keras.layers.Dropout)
    )
    # Embedding 10000x128 + 2 LSTMs of 4*(128*(128+128)+128) + Dense 129: the seed's count.
    assert model.count_params() == 10000 * 128 + 2 * 4 * (128 * 256 + 128) + 129
    assert float(model.optimizer.learning_rate) == np.float32(1e-3)
    assert model.loss == "binary_crossentropy"


def test_layer_count_and_width_follow_params_and_output_is_a_probability() -> None:
    model = build_classifier({**SEED_PARAMS, "hidden_size": 8, "num_layers": 3}, vocab_size=50)
    assert sum(isinstance(layer, keras.layers.LSTM) for layer in model.layers) == 3
    out = model.predict(np.random.default_rng(0).integers(0, 50, (4, 30)), verbose=0)
    assert out.shape == (4, 1)
    assert np.all((out > 0) & (out < 1))


def test_more_than_two_classes_get_a_softmax_over_the_classes() -> None:
    params = {**SEED_PARAMS, "hidden_size": 8, "num_layers": 1}
    model = build_classifier(params, vocab_size=50, n_classes=5)
    assert model.loss == "sparse_categorical_crossentropy"
    assert model.count_params() == parameter_count(params, 50, 5)
    out = model.predict(np.random.default_rng(0).integers(1, 50, (3, 20)), verbose=0)
    assert out.shape == (3, 5)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
