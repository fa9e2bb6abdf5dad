"""The seed notebook's own pipeline, for benchmarks that compare against it.

What a user of the notebook runs today: every review padded (keeping its end) to one length,
an unmasked ``keras.Sequential`` model, ``model.fit`` on the padded arrays.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras


def notebook_model(params: Mapping[str, int | float], vocab_size: int) -> keras.Model:
    """The notebook's model for one set of hyperparameters, as it writes it (no masking)."""
    hidden_size = int(params["hidden_size"])
    dropout_rate = float(params["dropout_rate"])
    model = keras.Sequential()
    model.add(keras.layers.Embedding(vocab_size, hidden_size))
    for _ in range(int(params["num_layers"]) - 1):
        model.add(keras.layers.LSTM(hidden_size, return_sequences=True))
        model.add(keras.layers.Dropout(dropout_rate))
    model.add(keras.layers.LSTM(hidden_size))
    model.add(keras.layers.Dropout(dropout_rate))
    model.add(keras.layers.Dense(1, activation="sigmoid"))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=float(params["learning_rate"])),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model


def masked_classifier(params: Mapping[str, int | float], vocab_size: int) -> keras.Model:
    """The notebook's model with its padding masked (``Embedding(mask_zero=True)``), for
    left-padded ids: lstm-tune's classifier before it read right-padded ids unmasked."""
    model = notebook_model(params, vocab_size)
    masked = keras.Sequential(
        [
            keras.Input(shape=(None,), dtype="int32"),
            keras.layers.Embedding(vocab_size, int(params["hidden_size"]), mask_zero=True),
            *model.layers[1:],
        ]
    )
    masked.compile(
        optimizer=keras.optimizers.Adam(learning_rate=float(params["learning_rate"])),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return masked
