"""The shared stacked LSTM that every task wraps; knows nothing of Optuna or of tasks.

``hidden_size``, ``num_layers`` and ``dropout_rate`` mean the same in every task: that many
LSTM layers of that width, each followed by Dropout, as in the seed notebook. A task puts its
input side in front (an embedding of token ids, or numeric features) and its head behind.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras


def lstm_stack(
    params: Mapping[str, int | float], *, return_sequences: bool = False
) -> list[keras.layers.Layer]:
    """``num_layers`` LSTMs of ``hidden_size`` units, each followed by Dropout.

    Every layer but the last returns its whole sequence (the next layer reads it); the last
    returns only its final step unless ``return_sequences`` (a language model predicts at
    every position).
    """
    hidden_size = int(params["hidden_size"])
    num_layers = int(params["num_layers"])
    dropout_rate = float(params["dropout_rate"])
    layers: list[keras.layers.Layer] = []
    for index in range(num_layers):
        last = index == num_layers - 1
        layers.append(
            keras.layers.LSTM(hidden_size, return_sequences=return_sequences or not last)
        )
        layers.append(keras.layers.Dropout(dropout_rate))
    return layers


def adam(params: Mapping[str, int | float]) -> keras.optimizers.Optimizer:
    """The seed notebook's optimizer: Adam at the config's ``learning_rate``."""
    return keras.optimizers.Adam(learning_rate=float(params["learning_rate"]))


# XLA made a training step several times slower on the 2-core CPUs we measured (BENCHMARKS.md,
# train_step); Keras's "auto" already leaves it off without a GPU. Tasks compile with this.
JIT_COMPILE = False
