"""Text classification: any CSV of texts and labels, two classes or more.

Texts are tokenized (:mod:`~lstm_tune.tasks.text_classification.data`), embedded, read by the
shared LSTM stack and classified by a sigmoid unit (two classes, as the seed notebook does) or
a softmax over the classes (more). Batches are bucketed by length
(:mod:`~lstm_tune.tasks.text_classification.batching`). The objective is
validation accuracy (maximised) or validation loss (cross-entropy, minimised).

``binary_sentiment`` (the seed notebook's IMDB problem, and older study files) is an alias:
its defaults (columns ``review``/``sentiment``, optional ``split``) are this task's defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lstm_tune.errors import DataError
from lstm_tune.tasks import register
from lstm_tune.tasks.base import Task
from lstm_tune.tasks.readers import read_csv_rows, read_text_lines
from lstm_tune.tasks.text_classification.data import (
    FIRST_WORD_ID,
    PAD_ID,
    TOKENIZER_RULES,
    TOKENIZER_VERSION,
    Split,
    TextClassificationData,
    encode_text,
    load_corpus,
    review_lengths,
    sample_of,
    split_validation,
)
from lstm_tune.training import preflight
from lstm_tune.types import MemoryEstimate, Objective, Params, Prepared, ReportSection

if TYPE_CHECKING:
    import keras
    import plotly.graph_objects as go
    import tensorflow as tf

# The seed notebook rounds the sigmoid output: probability >= 0.5 means the second class.
THRESHOLD = 0.5


class TextClassification(Task):
    """Texts → classes; see the module docstring."""

    name = "text_classification"
    aliases = ("binary_sentiment",)
    data_model = TextClassificationData
    objectives = (Objective("val_accuracy", "maximize"), Objective("val_loss", "minimize"))
    example_noun = "texts"

    # -- data ------------------------------------------------------------------------------

    def load(self, data: Any, seed: int) -> Prepared:
        """Tokenized fit / validation / test splits, the vocabulary size and class names."""
        corpus = load_corpus(data, seed)
        fit_split, val_split = split_validation(
            corpus.train, data.validation_split, seed, data.path or "keras.datasets.imdb"
        )
        return Prepared(
            fit=fit_split,
            validation=val_split,
            test=corpus.test,
            meta={
                "vocab_size": corpus.vocab_size,
                "class_names": list(corpus.class_names),
                "vocabulary": list(corpus.vocabulary),
            },
        )

    def batches(
        self, split: Split, params: Params, *, shuffle_seed: int | None
    ) -> tf.data.Dataset:
        """Length-bucketed (ids, class) batches; see :mod:`.batching`."""
        from lstm_tune.tasks.text_classification.batching import dataset

        return dataset(
            split,
            sequence_length=int(params["sequence_length"]),
            batch_size=int(params["batch_size"]),
            shuffle_seed=shuffle_seed,
        )

    def sample(self, split: Split, size: int, seed: int) -> Split:
        """A stratified sample of ``size`` texts."""
        return sample_of(split, size, seed)

    def size(self, split: Split) -> int:
        """Number of texts."""
        return len(split)

    # -- model -----------------------------------------------------------------------------

    def build(self, params: Params, prepared: Prepared) -> keras.Model:
        """Embedding → LSTM stack → last real step → sigmoid (2 classes) or softmax (more)."""
        return build_classifier(
            params, prepared.meta["vocab_size"], len(prepared.meta["class_names"])
        )

    def score(self, model: keras.Model, split: Split, params: Params, metric: str) -> float:
        """Accuracy or mean cross-entropy (nats) of ``model`` on ``split``."""
        probabilities = predict_proba(model, split, params)
        if metric == "val_accuracy":
            return float(np.mean(probabilities.argmax(axis=1) == split.labels))
        if metric == "val_loss":
            return cross_entropy(split.labels, probabilities)
        raise ValueError(f"text_classification cannot score {metric!r}")

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(self, model: keras.Model, prepared: Prepared, params: Params) -> dict[str, Any]:
        """Accuracy, macro and per-class precision/recall/F1, ROC AUC, confusion matrix,
        classification report, and the majority-class baseline beside them."""
        probabilities = predict_proba(model, prepared.test, params)
        metrics = classification_metrics(
            prepared.test.labels, probabilities, prepared.meta["class_names"]
        )
        metrics["baseline"] = majority_baseline(
            prepared.fit.labels, prepared.test.labels, prepared.meta["class_names"]
        )
        metrics["beats_baseline"] = metrics["accuracy"] > metrics["baseline"]["accuracy"]
        return metrics

    def report_sections(self, metrics: Mapping[str, Any]) -> list[ReportSection]:
        """Scores beside the baseline, the classification report, confusion matrix, ROC."""
        return [
            ReportSection("test-metrics", "Test metrics", html=_scores_html(metrics)),
            _confusion_section(metrics["confusion_matrix"], metrics["class_names"]),
            _roc_section(metrics),
        ]

    def summary(self, metrics: Mapping[str, Any]) -> str:
        """A text report in the spirit of the seed's classification report."""
        report = metrics["classification_report"]
        baseline = metrics["baseline"]
        lines = [
            f"Test accuracy: {metrics['accuracy']:.4f}   macro F1: {metrics['f1_macro']:.4f}   "
            f"ROC AUC: {metrics['roc_auc']:.4f}   ({metrics['test_size']} texts, "
            f"{len(metrics['class_names'])} classes, {metrics['epochs']} epochs)",
            f"Majority-class baseline ({baseline['predicts']!r}): accuracy "
            f"{baseline['accuracy']:.4f}, macro F1 {baseline['f1_macro']:.4f}",
            f"{'':>12} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}",
        ]
        for name in (*metrics["class_names"], "macro avg", "weighted avg"):
            row = report[name]
            lines.append(
                f"{name[:12]:>12} {row['precision']:>9.4f} {row['recall']:>9.4f} "
                f"{row['f1-score']:>9.4f} {int(row['support']):>9d}"
            )
        lines.append(
            f"Confusion matrix (rows true, columns predicted): {metrics['confusion_matrix']}"
        )
        return "\n".join(lines)

    # -- use on new input ------------------------------------------------------------------

    def with_validation_in_fit(self, prepared: Prepared) -> Prepared:
        """The fit texts followed by the validation texts."""
        fit, validation = prepared.fit, prepared.validation
        merged = Split(
            fit.sequences + validation.sequences, np.concatenate([fit.labels, validation.labels])
        )
        return dataclasses.replace(prepared, fit=merged)

    def inference_state(self, prepared: Prepared, data: Any) -> dict[str, Any]:
        """The vocabulary, the tokenizer's rules, the text column and the class names."""
        return {
            "text_column": data.text_column,
            "class_names": list(prepared.meta["class_names"]),
            # Keras's pre-tokenized IMDB brings no words: such a model cannot read raw text.
            "vocabulary": list(prepared.meta.get("vocabulary") or []) or None,
            "tokenizer_version": TOKENIZER_VERSION,
            "tokenizer": dict(TOKENIZER_RULES),
        }

    def read_inputs(self, state: Mapping[str, Any], path: Path) -> Iterator[str]:
        """Texts: the model's text column of a CSV(.gz), or every non-empty line of a .txt."""
        if path.suffix == ".txt":
            yield from read_text_lines(path)
            return
        column = state["text_column"]
        for _line, row in read_csv_rows(path, {column: "the model's text column"}):
            yield row.get(column) or ""

    def check_input(self, state: Mapping[str, Any], params: Params, item: Any) -> str:
        """A text; a model without a vocabulary (Keras's pre-tokenized IMDB) reads none."""
        if not state.get("vocabulary"):
            raise DataError(
                "this model was trained on keras.datasets.imdb's pre-tokenized ids, so it has "
                "no vocabulary to read raw text with; train it from a CSV (--data-path) to "
                "predict new text"
            )
        if state.get("tokenizer_version") != TOKENIZER_VERSION:
            raise DataError(
                f"this model's texts were tokenized by tokenizer version "
                f"{state.get('tokenizer_version')}; this lstm-tune has version "
                f"{TOKENIZER_VERSION}: use the lstm-tune version that trained it"
            )
        return str(item)

    def predict(
        self,
        model: keras.Model,
        state: Mapping[str, Any],
        params: Params,
        inputs: Sequence[Any],
        options: Mapping[str, Any],
    ) -> list[dict[str, Any]]:
        """Each text's predicted class and the probability of every class."""
        vocabulary = state["vocabulary"]
        ids = {word: FIRST_WORD_ID + i for i, word in enumerate(vocabulary)}
        texts = [str(text) for text in inputs]
        split = Split([encode_text(t, ids) for t in texts], np.zeros(len(texts), np.int32))
        probabilities = predict_proba(model, split, params)
        names = state["class_names"]
        rows = []
        for row in probabilities:
            out: dict[str, Any] = {"label": names[int(row.argmax())]}
            out.update(
                {f"probability_{name}": float(p) for name, p in zip(names, row, strict=True)}
            )
            rows.append(out)
        return rows

    # -- pre-flight ------------------------------------------------------------------------

    def estimate_memory(self, params: Params, prepared: Prepared) -> MemoryEstimate:
        """Embedding + LSTM stack + head weights; activations over ``sequence_length`` steps."""
        return preflight.estimate_memory(
            params,
            weights=parameter_count(
                params, prepared.meta["vocab_size"], len(prepared.meta["class_names"])
            ),
            input_width=int(params["hidden_size"]),
        )

    def estimate_epoch_seconds(
        self, params: Params, prepared: Prepared, checkpoints: int, sample_size: int
    ) -> float:
        """LSTM steps of length-bucketed batches over the fit split, validation, checkpoints."""
        val_lengths = review_lengths(prepared.validation)
        forward = np.concatenate([val_lengths, *[val_lengths[:sample_size]] * checkpoints])
        return preflight.estimate_epoch_seconds(params, review_lengths(prepared.fit), forward)


# --------------------------------------------------------------------------- model


def output_units(n_classes: int) -> int:
    """One sigmoid unit for two classes, else one softmax unit per class."""
    return 1 if n_classes == 2 else n_classes


def build_classifier(params: Params, vocab_size: int, n_classes: int = 2) -> keras.Model:
    """The seed notebook's classifier, generalised to ``n_classes``; compiled.

    Embedding width equals ``hidden_size`` as in the seed. It takes right-padded ids (0 is
    padding, :mod:`.batching`) and reads the last LSTM's output at each text's last real
    token. That is the output a masked model (``Embedding(mask_zero=True)`` over
    left-padded ids) gives, because an LSTM only looks back (tested), without the mask's
    per-step selects: 8% less time per training step (BENCHMARKS.md ``train_step``, "no
    mask") and ``padding_epoch`` for whole epochs. Built from Keras ops only, so
    ``keras.saving.load_model`` reads the saved model without lstm-tune.
    """
    import keras

    from lstm_tune.training.lstm_stack import JIT_COMPILE, adam, lstm_stack

    binary = n_classes == 2
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    steps = keras.layers.Embedding(vocab_size, int(params["hidden_size"]))(ids)
    # lstm_stack ends with the last LSTM's Dropout; it is applied after the gather, to one
    # step instead of all (the same thing, dropout being elementwise).
    *recurrent, last_dropout = lstm_stack(params, return_sequences=True)
    for layer in recurrent:
        steps = layer(steps)
    features = last_dropout(last_real_step(steps, ids))
    head = keras.layers.Dense(
        output_units(n_classes), activation="sigmoid" if binary else "softmax"
    )
    model = keras.Model(ids, head(features), name="lstm_classifier")
    model.compile(
        optimizer=adam(params),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=JIT_COMPILE,
    )
    return model


def last_real_step(steps: keras.KerasTensor, ids: keras.KerasTensor) -> keras.KerasTensor:
    """Each row of ``steps`` (batch, time, features) at its text's last non-padding id.

    A text of only padding reads step 0. Keras ops, so the model stays loadable by Keras alone.
    """
    from keras import ops

    lengths = ops.sum(ops.cast(ops.not_equal(ids, PAD_ID), "int32"), axis=1)
    last = ops.reshape(ops.maximum(lengths - 1, 0), (-1, 1, 1))
    return ops.squeeze(ops.take_along_axis(steps, last, axis=1), axis=1)


def parameter_count(params: Params, vocab_size: int, n_classes: int = 2) -> int:
    """Weights of :func:`build_classifier`: embedding, LSTM stack, output layer."""
    hidden = int(params["hidden_size"])
    units = output_units(n_classes)
    return (
        vocab_size * hidden
        + preflight.lstm_parameter_count(params, input_width=hidden)
        + hidden * units
        + units
    )


def predict_proba(model: keras.Model, split: Split, params: Params) -> np.ndarray:
    """Class probabilities, one row per text of ``split`` in its order: shape (n, classes)."""
    from lstm_tune.tasks.text_classification.batching import (
        dataset,
        evaluation_batches,
        truncated_lengths,
    )

    length, batch = int(params["sequence_length"]), int(params["batch_size"])
    batches = dataset(
        split, sequence_length=length, batch_size=batch, shuffle_seed=None, with_labels=False
    )
    outputs = np.asarray(model.predict(batches, verbose=0))
    if outputs.ndim == 1 or outputs.shape[1] == 1:
        positive = outputs.reshape(-1)
        outputs = np.stack([1.0 - positive, positive], axis=1)
    order = np.concatenate(evaluation_batches(truncated_lengths(split, length), batch))
    probabilities = np.empty_like(outputs)
    probabilities[order] = outputs
    return probabilities


# --------------------------------------------------------------------------- metrics


def cross_entropy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log-likelihood (nats) of the true classes."""
    from sklearn.metrics import log_loss

    return float(log_loss(labels, probabilities, labels=np.arange(probabilities.shape[1])))


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """scikit-learn's metrics of predicted class probabilities against true class indices.

    Two classes: ``precision``/``recall``/``f1`` are the second class's (the seed's positive
    class), and the ROC curve is that class's. More: macro one-vs-rest ROC AUC and one ROC
    curve per class. Always: macro and per-class figures and the N x N confusion matrix.
    """
    from sklearn.metrics import (
        accuracy_score,
        classification_report,
        confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
        roc_curve,
    )

    classes = list(range(len(class_names)))
    predicted = probabilities.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0
    )
    macro = precision_recall_fscore_support(
        labels, predicted, labels=classes, average="macro", zero_division=0
    )
    binary = len(classes) == 2
    present = sorted(set(labels.tolist()))
    metrics: dict[str, Any] = {
        "class_names": list(class_names),
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision_macro": float(macro[0]),
        "recall_macro": float(macro[1]),
        "f1_macro": float(macro[2]),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "cross_entropy": cross_entropy(labels, probabilities),
        # Rows are true classes, columns predicted, in class_names order.
        "confusion_matrix": confusion_matrix(labels, predicted, labels=classes).tolist(),
        "classification_report": classification_report(
            labels,
            predicted,
            labels=classes,
            target_names=list(class_names),
            output_dict=True,
            zero_division=0,
        ),
    }
    if binary:
        metrics.update(precision=float(precision[1]), recall=float(recall[1]), f1=float(f1[1]))
        metrics["roc_auc"] = (
            float(roc_auc_score(labels, probabilities[:, 1])) if len(present) == 2 else None
        )
        if len(present) == 2:
            fpr, tpr, thresholds = roc_curve(labels, probabilities[:, 1])
            metrics["roc_curve"] = {
                "fpr": fpr.tolist(),
                "tpr": tpr.tolist(),
                # roc_curve's first threshold is +inf, which JSON cannot hold.
                "thresholds": [min(float(t), 1.0) for t in thresholds],
            }
        return metrics
    metrics["roc_auc"] = (
        float(
            roc_auc_score(
                labels, probabilities, multi_class="ovr", average="macro", labels=classes
            )
        )
        if len(present) == len(classes)
        else None
    )
    curves = {}
    for index, name in enumerate(class_names):
        if index in present and len(present) > 1:
            fpr, tpr, _ = roc_curve(labels == index, probabilities[:, index])
            curves[name] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    metrics["roc_curves"] = curves
    return metrics


def majority_baseline(
    fit_labels: np.ndarray, test_labels: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Always predicting the training split's most frequent class, scored on the test split."""
    from sklearn.metrics import accuracy_score, f1_score

    majority = int(np.bincount(fit_labels, minlength=len(class_names)).argmax())
    predicted = np.full_like(test_labels, majority)
    return {
        "name": "majority class",
        "predicts": class_names[majority],
        "accuracy": float(accuracy_score(test_labels, predicted)),
        "f1_macro": float(
            f1_score(
                test_labels,
                predicted,
                labels=list(range(len(class_names))),
                average="macro",
                zero_division=0,
            )
        ),
    }


# --------------------------------------------------------------------------- report


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def _scores_html(metrics: Mapping[str, Any]) -> str:
    baseline = metrics.get("baseline", {})
    rows = [
        ("accuracy", metrics["accuracy"], baseline.get("accuracy")),
        ("precision (macro)", metrics["precision_macro"], None),
        ("recall (macro)", metrics["recall_macro"], None),
        ("F1 (macro)", metrics["f1_macro"], baseline.get("f1_macro")),
        (
            "ROC AUC" + ("" if len(metrics["class_names"]) == 2 else " (macro, one-vs-rest)"),
            metrics.get("roc_auc"),
            0.5 if baseline else None,
        ),
    ]
    if len(metrics["class_names"]) == 2:
        positive = metrics["class_names"][1]
        rows += [
            (f"precision ({positive})", metrics.get("precision"), None),
            (f"recall ({positive})", metrics.get("recall"), None),
            (f"F1 ({positive})", metrics.get("f1"), None),
        ]
    head = "<th>model</th>" + (
        f"<th>baseline: {escape(str(baseline.get('name')))} "
        f"({escape(str(baseline.get('predicts')))})</th>"
        if baseline
        else ""
    )
    body = "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(_fmt(value))}</td>"
        + (f"<td>{escape(_fmt(base))}</td>" if baseline else "")
        + "</tr>"
        for name, value, base in rows
    )
    table = (
        f'<table class="data scores"><thead><tr><th></th>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )
    if baseline and not metrics.get("beats_baseline", True):
        table += (
            '<p class="warning"><strong>Warning:</strong> the model does not beat the '
            "majority-class baseline on test accuracy.</p>"
        )
    return table + _classification_table(metrics.get("classification_report") or {})


def _classification_table(report: Mapping[str, Any]) -> str:
    rows = []
    for label, row in report.items():
        if isinstance(row, dict):
            cells = [_fmt(row.get(k)) for k in ("precision", "recall", "f1-score")]
            cells.append(str(int(row.get("support", 0))))
        else:  # sklearn puts plain "accuracy" next to the per-class dicts
            cells = ["", "", _fmt(row), ""]
        rows.append(
            f"<tr><th>{escape(str(label))}</th>"
            + "".join(f"<td>{escape(c)}</td>" for c in cells)
            + "</tr>"
        )
    return (
        '<h3>Classification report</h3><table class="data"><thead><tr><th></th>'
        "<th>precision</th><th>recall</th><th>f1-score</th><th>support</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _confusion_section(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str]
) -> ReportSection:
    import plotly.graph_objects as go

    figure = go.Figure(
        go.Heatmap(
            z=matrix,
            x=[f"{c} (predicted)" for c in class_names],
            y=[f"{c} (true)" for c in class_names],
            text=[[str(v) for v in row] for row in matrix],
            texttemplate="%{text}",
            colorscale="Blues",
            hovertemplate="%{y} / %{x}: %{z}<extra></extra>",
        )
    )
    size = 360 + 40 * len(class_names)
    figure.update_layout(yaxis={"autorange": "reversed"}, width=size + 120, height=size)
    return ReportSection(
        "confusion-matrix",
        "Confusion matrix",
        figure=figure,
        caption="Rows are the true class, columns the predicted class (test split).",
    )


def _roc_section(metrics: Mapping[str, Any]) -> ReportSection:
    import plotly.graph_objects as go

    figure: go.Figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dash", "color": "#999"}
        )
    )
    curves: dict[str, Mapping[str, Sequence[float]]] = dict(metrics.get("roc_curves") or {})
    if "roc_curve" in metrics:
        auc = metrics.get("roc_auc")
        curves = {f"model (AUC {_fmt(auc)})": metrics["roc_curve"]}
    for name, curve in curves.items():
        figure.add_trace(
            go.Scatter(x=list(curve["fpr"]), y=list(curve["tpr"]), mode="lines", name=name)
        )
    figure.update_layout(
        xaxis_title="false positive rate",
        yaxis_title="true positive rate",
        xaxis={"range": [0, 1]},
        yaxis={"range": [0, 1.02]},
        width=640,
    )
    caption = "" if "roc_curve" in metrics else "One-vs-rest curve per class."
    return ReportSection("roc-curve", "ROC curve", figure=figure, caption=caption)


register(TextClassification())
