"""Shared material for the report, dashboard and browser tests: a small finished study.

Real trials on real storage: a cheap objective shaped like a training run (accuracy per
epoch, reported as intermediate values, with the median pruner stopping weak trials), and
the user attrs the lstm-tune objective sets, so pages render what a real search produces;
plus metrics in the shape `lstm-tune train` writes and the section ids the reports carry.
"""

from __future__ import annotations

import math

import numpy as np
import optuna

TOY_EPOCHS = 5


def _objective(trial: optuna.Trial) -> float:
    hidden = trial.suggest_int("hidden_size", 16, 128, log=True)
    layers = trial.suggest_int("num_layers", 1, 3)
    lr = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
    dropout = trial.suggest_float("dropout_rate", 0.0, 0.5)
    seq = trial.suggest_categorical("sequence_length", [100, 200])
    batch = trial.suggest_categorical("batch_size", [32, 64])
    # A smooth made-up "accuracy" that rises per epoch and peaks near lr=3e-3.
    quality = 0.9 - 0.08 * abs(math.log10(lr) + 2.5) - 0.1 * dropout + 0.01 * layers
    quality += 0.0002 * hidden + (0.01 if seq == 200 else 0.0) - (0.005 if batch == 64 else 0.0)
    history: dict[str, list[float]] = {
        "loss": [],
        "accuracy": [],
        "val_loss": [],
        "val_accuracy": [],
    }
    val_accs: list[float] = []
    for epoch in range(TOY_EPOCHS):
        val_acc = 0.5 + (quality - 0.5) * (1 - math.exp(-(epoch + 1) / 1.5))
        val_accs.append(val_acc)
        history["val_accuracy"].append(val_acc)
        history["accuracy"].append(min(0.99, val_acc + 0.02 * epoch))
        history["loss"].append(0.7 - 0.3 * (epoch + 1) / TOY_EPOCHS)
        history["val_loss"].append(0.72 - 0.25 * (epoch + 1) / TOY_EPOCHS)
        trial.set_user_attr("history", history)
        trial.set_user_attr("val_accuracy_per_epoch", val_accs)
        trial.set_user_attr("seconds_per_epoch", [0.5] * len(val_accs))
        trial.report(val_acc, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    trial.set_user_attr("best_epoch", val_accs.index(max(val_accs)) + 1)
    trial.set_user_attr("param_count", 1000 * hidden * layers)
    return max(val_accs)


def make_toy_study(storage_url: str, study_name: str, n_trials: int = 12) -> optuna.Study:
    """Create and run a finished study of ``n_trials`` toy trials (some pruned)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage_url,
        study_name=study_name,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=7),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )
    study.optimize(_objective, n_trials=n_trials)
    return study


STUDY_SECTIONS = (
    "optimization-history",
    "intermediate-values",
    "param-importances",
    "parallel-coordinates",
    "trials-table",
)
METRIC_SECTIONS = ("test-metrics", "confusion-matrix", "roc-curve")


def sample_metrics(n_classes: int = 2) -> dict[str, object]:
    """Metrics in the shape `lstm-tune train` writes to metrics.json, made by the same code.

    Two classes: 1,000 test texts whose confusion matrix is [[400, 80], [70, 450]].
    """
    from lstm_tune.tasks.text_classification.task import classification_metrics, majority_baseline

    rng = np.random.default_rng(0)
    if n_classes == 2:
        labels = np.array([0] * 480 + [1] * 520)
        predicted = np.array([0] * 400 + [1] * 80 + [0] * 70 + [1] * 450)
    else:
        labels = rng.integers(0, n_classes, 600)
        predicted = np.where(rng.random(600) < 0.6, labels, rng.integers(0, n_classes, 600))
    # Probabilities whose argmax is the prediction, with some spread for the ROC curve.
    probabilities = rng.random((len(labels), n_classes)) * 0.4
    probabilities[np.arange(len(labels)), predicted] += 0.6
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    names = (
        ["negative", "positive"] if n_classes == 2 else [f"class {i}" for i in range(n_classes)]
    )
    metrics = classification_metrics(labels, probabilities, names)
    metrics["baseline"] = majority_baseline(labels, labels, names)
    metrics["beats_baseline"] = metrics["accuracy"] > metrics["baseline"]["accuracy"]
    metrics.update(
        task="text_classification", metric="val_accuracy", epochs=2, test_size=len(labels)
    )
    return metrics
