"""The seed's architecture, built from one set of hyperparameters, and its multi-class twin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from lstm_tune.config import load_spec
from lstm_tune.tasks.text_classification.task import build_classifier, parameter_count
from tests.helpers import ROOT

SEED_PARAMS = load_spec(ROOT / "studies" / "seed_config.yaml").fixed_params()


def test_seed_params_build_the_seed_notebooks_layer_stack() -> None:
    model = build_classifier(SEED_PARAMS, vocab_size=10000)
    seed_kinds = {"Embedding", "LSTM", "Dropout", "Dense"}
    kinds = [type(layer).__name__ for layer in model.layers if type(layer).__name__ in seed_kinds]
    assert kinds == ["Embedding", "LSTM", "Dropout", "LSTM", "Dropout", "Dense"]
    lstm1, lstm2 = (layer for layer in model.layers if isinstance(layer, keras.layers.LSTM))
    assert lstm1.units == lstm2.units == 128
    # The second LSTM returns its sequence too: the model reads it at each text's last token.
    assert lstm1.return_sequences and lstm2.return_sequences
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


def _masked_twin(params: dict, vocab_size: int) -> keras.Model:
    """The seed layout with the padding masked: left-padded ids, Embedding(mask_zero=True)."""
    *recurrent, _ = [
        keras.layers.LSTM(int(params["hidden_size"]), return_sequences=True)
        for _ in range(int(params["num_layers"]))
    ]
    return keras.Sequential(
        [
            keras.Input(shape=(None,), dtype="int32"),
            keras.layers.Embedding(vocab_size, int(params["hidden_size"]), mask_zero=True),
            *recurrent,
            keras.layers.LSTM(int(params["hidden_size"])),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


def test_right_padded_predictions_equal_a_masked_model_on_left_padded_ids() -> None:
    params = {**SEED_PARAMS, "hidden_size": 16, "num_layers": 3}
    keras.utils.set_random_seed(1)
    model = build_classifier(params, vocab_size=60)
    masked = _masked_twin(params, 60)
    masked.set_weights(model.get_weights())
    rng = np.random.default_rng(2)
    texts = [rng.integers(1, 60, size=n) for n in (1, 3, 17, 40, 40, 9)]
    width = 48
    left = np.zeros((len(texts), width), np.int32)
    right = np.zeros((len(texts), width), np.int32)
    for row, text in enumerate(texts):
        left[row, width - len(text) :] = text
        right[row, : len(text)] = text
    expected = masked.predict(left, verbose=0)
    np.testing.assert_allclose(model.predict(right, verbose=0), expected, atol=1e-5)
    # Padding after the text changes nothing, however much of it there is.
    wider = np.pad(right, ((0, 0), (0, 30)))
    np.testing.assert_allclose(model.predict(wider, verbose=0), expected, atol=1e-5)
    # The same model left-padded would read padding: the side matters, so the test can fail.
    assert np.abs(model.predict(left, verbose=0) - expected).max() > 1e-4
    # A model saved before (masked) is fed right padding by today's predict: the mask makes
    # the side irrelevant to it, so its answers do not change.
    np.testing.assert_allclose(masked.predict(right, verbose=0), expected, atol=1e-5)


def test_the_saved_classifier_loads_with_keras_alone(tmp_path: Path) -> None:
    params = {**SEED_PARAMS, "hidden_size": 8, "num_layers": 2}
    model = build_classifier(params, vocab_size=50)
    model.save(tmp_path / "model.keras")
    ids = np.array([[5, 6, 7, 0, 0], [9, 0, 0, 0, 0]], np.int32)
    script = (
        "import numpy as np, keras; "
        f"m = keras.saving.load_model({str(tmp_path / 'model.keras')!r}); "
        f"print(m.predict(np.array({ids.tolist()}, dtype='int32'), verbose=0).tolist())"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    loaded = np.array(json.loads(out.strip().splitlines()[-1]))
    np.testing.assert_allclose(loaded, model.predict(ids, verbose=0), atol=1e-6)
