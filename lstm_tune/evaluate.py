"""Retrain one config and evaluate it on the held-out test split, as the seed notebook does.

The model is trained on the same fit/validation split the search used (the seed notebook's
``validation_split=0.2``), for the trial's ``best_epoch`` epochs when the config came from
``export-best`` and for ``training.epochs`` otherwise. Metrics come from scikit-learn.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import plotly.graph_objects as go
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from lstm_tune.config import StudySpec
from lstm_tune.data import load_corpus, split_validation
from lstm_tune.model import build_model
from lstm_tune.training import fit, predict_proba

CLASS_NAMES = ("negative", "positive")
# The seed notebook rounds the sigmoid output: probability >= 0.5 means positive.
THRESHOLD = 0.5


@dataclass(frozen=True)
class Evaluation:
    """Where the artifacts went and the metrics written to ``metrics.json``."""

    out_dir: Path
    metrics: dict[str, Any]


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC AUC, confusion matrix, report and ROC curve."""
    predicted = (probabilities >= THRESHOLD).astype(int)
    fpr, tpr, thresholds = roc_curve(labels, probabilities)
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(labels, probabilities)),
        # Rows are true classes, columns predicted: [[tn, fp], [fn, tp]].
        "confusion_matrix": confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
        "classification_report": classification_report(
            labels,
            predicted,
            labels=[0, 1],
            target_names=list(CLASS_NAMES),
            output_dict=True,
            zero_division=0,
        ),
        "roc_curve": {
            "fpr": fpr.tolist(),
            "tpr": tpr.tolist(),
            # roc_curve's first threshold is +inf, which JSON cannot hold.
            "thresholds": [min(float(t), 1.0) for t in thresholds],
        },
    }


def confusion_matrix_figure(matrix: list[list[int]]) -> go.Figure:
    """A heatmap of the confusion matrix, laid out like the seed notebook's."""
    figure = go.Figure(
        go.Heatmap(
            z=matrix,
            x=[f"{c} (predicted)" for c in CLASS_NAMES],
            y=[f"{c} (true)" for c in CLASS_NAMES],
            text=[[str(v) for v in row] for row in matrix],
            texttemplate="%{text}",
            colorscale="Blues",
        )
    )
    figure.update_layout(title="Confusion matrix (test split)", yaxis_autorange="reversed")
    return figure


def retrain_and_evaluate(spec: StudySpec, out_dir: str | Path) -> Evaluation:
    """Train the config ``spec`` describes, evaluate it on the test split and write reports."""
    params = spec.fixed_params()
    epochs = spec.result.best_epoch if spec.result is not None else spec.training.epochs
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(spec.data, spec.seed)
    fit_split, val_split = split_validation(corpus.train, spec.data.validation_split, spec.seed)
    keras.utils.set_random_seed(spec.seed)
    model = build_model(params, corpus.vocab_size)
    started = time.perf_counter()
    recorder = fit(
        model,
        fit_split,
        val_split,
        sequence_length=int(params["sequence_length"]),
        batch_size=int(params["batch_size"]),
        epochs=epochs,
        seed=spec.seed,
    )
    train_seconds = time.perf_counter() - started
    probabilities = predict_proba(
        model,
        corpus.test,
        sequence_length=int(params["sequence_length"]),
        batch_size=int(params["batch_size"]),
    )
    metrics = binary_metrics(corpus.test.labels.astype(int), probabilities)
    metrics.update(
        params=params,
        epochs=epochs,
        train_size=len(fit_split),
        validation_size=len(val_split),
        test_size=len(corpus.test),
        validation_accuracy_per_epoch=recorder.history["val_accuracy"],
        history=recorder.history,
        seconds_per_epoch=recorder.seconds_per_epoch,
        train_seconds=train_seconds,
        param_count=int(model.count_params()),
    )
    model.save(out / "model.keras")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    confusion_matrix_figure(metrics["confusion_matrix"]).write_html(
        out / "confusion_matrix.html", include_plotlyjs=True
    )
    return Evaluation(out, metrics)


def summary(metrics: dict[str, Any]) -> str:
    """A short text report in the spirit of the seed's classification report."""
    report = metrics["classification_report"]
    lines = [
        f"Test accuracy: {metrics['accuracy']:.4f}   ROC AUC: {metrics['roc_auc']:.4f}   "
        f"({metrics['test_size']} reviews, {metrics['epochs']} epochs)",
        f"{'':>12} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}",
    ]
    for name in (*CLASS_NAMES, "macro avg", "weighted avg"):
        row = report[name]
        lines.append(
            f"{name:>12} {row['precision']:>9.4f} {row['recall']:>9.4f} "
            f"{row['f1-score']:>9.4f} {int(row['support']):>9d}"
        )
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    lines.append(f"Confusion matrix [[tn fp] [fn tp]]: [[{tn} {fp}] [{fn} {tp}]]")
    return "\n".join(lines)
