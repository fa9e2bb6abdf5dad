"""Build the seed notebook's LSTM from one set of hyperparameters; knows nothing of Optuna."""

from __future__ import annotations

from collections.abc import Mapping

import keras


def build_model(params: Mapping[str, int | float], vocab_size: int) -> keras.Model:
    """Embedding → ``num_layers`` stacked LSTMs, each followed by Dropout → Dense sigmoid.

    Compiled with Adam(``learning_rate``) and binary cross-entropy, as in the seed notebook.
    The embedding width equals ``hidden_size`` there, and so it does here.
    """
    hidden_size = int(params["hidden_size"])
    num_layers = int(params["num_layers"])
    dropout_rate = float(params["dropout_rate"])
    layers: list[keras.layers.Layer] = [
        keras.Input(shape=(None,), dtype="int32"),
        # mask_zero: id 0 is padding; masking it makes the output independent of how much
        # padding a batch carries (batches are padded only to their longest review).
        keras.layers.Embedding(vocab_size, hidden_size, mask_zero=True),
    ]
    for index in range(num_layers):
        last = index == num_layers - 1
        layers.append(keras.layers.LSTM(hidden_size, return_sequences=not last))
        layers.append(keras.layers.Dropout(dropout_rate))
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    model = keras.Sequential(layers, name="lstm_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=float(params["learning_rate"])),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        # XLA made a training step several times slower on the 2-core CPUs we measured
        # (BENCHMARKS.md, train_step); Keras's "auto" already leaves it off without a GPU.
        jit_compile=False,
    )
    return model
