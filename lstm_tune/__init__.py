"""lstm-tune: hyperparameter search for Keras LSTM models on Optuna."""

__version__ = "0.1.0"


def load_model(directory: str) -> object:
    """Load a model directory written by ``lstm-tune train``; ``.predict(raw inputs)`` uses it.

    See :mod:`lstm_tune.results.inference` (imported here on first use: it loads Keras).
    """
    from lstm_tune.results.inference import load_model as _load_model

    return _load_model(directory)
