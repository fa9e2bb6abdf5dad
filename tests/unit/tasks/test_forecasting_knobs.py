"""The forecaster's knobs: a bidirectional encoder, and predict_change searchable per config."""

from __future__ import annotations

import keras
import numpy as np

from lstm_tune.tasks import get_task
from lstm_tune.tasks.forecasting import build_forecaster, parameter_count
from lstm_tune.types import Prepared

TINY = {
    "hidden_size": 5,
    "num_layers": 1,
    "learning_rate": 0.01,
    "dropout_rate": 0.0,
    "sequence_length": 6,
    "batch_size": 4,
}


def _lstm_weights(model: keras.Model) -> int:
    recurrent = (keras.layers.LSTM, keras.layers.Bidirectional)
    return sum(layer.count_params() for layer in model.layers if isinstance(layer, recurrent))


def test_a_bidirectional_encoder_doubles_the_lstms_weights() -> None:
    one = build_forecaster(TINY, 3, 4, [0])
    both = build_forecaster({**TINY, "bidirectional": True}, 3, 4, [0])
    assert _lstm_weights(both) == 2 * _lstm_weights(one) == 2 * 4 * (5 * (3 + 5) + 5)
    for model, params in ((one, TINY), (both, {**TINY, "bidirectional": True})):
        assert model.count_params() == parameter_count(params, 3, 4)
    window = np.random.default_rng(0).normal(size=(2, 6, 3)).astype(np.float32)
    assert np.asarray(both(window)).shape == (2, 4)


def test_predict_change_from_the_config_replaces_the_datas() -> None:
    task = get_task("forecasting")
    meta = {
        "input_columns": ["y"],
        "target_columns": ["y"],
        "horizon": 2,
        "predict_change": False,
    }
    prepared = Prepared(fit=None, validation=None, test=None, meta=meta)
    assert task.for_params(prepared, TINY) is prepared  # no knob: the data's setting
    changed = task.for_params(prepared, {**TINY, "predict_change": True})
    assert changed.meta["predict_change"] is True and prepared.meta["predict_change"] is False
    # The model built from it forecasts the change: a constant window, untrained, gives
    # its last value back plus the Dense layer's output on zeros (its bias, 0).
    keras.utils.set_random_seed(0)
    model = task.build({**TINY, "predict_change": True}, changed)
    window = np.full((1, 6, 1), 3.0, np.float32)
    np.testing.assert_allclose(np.asarray(model(window)), [[3.0, 3.0]], atol=1e-6)
    plain = task.build(TINY, prepared)
    assert np.abs(np.asarray(plain(window)) - 3.0).max() > 1e-3
