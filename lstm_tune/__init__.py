"""lstm-tune: hyperparameter search for Keras LSTM models on Optuna."""

__version__ = "0.1.0"
