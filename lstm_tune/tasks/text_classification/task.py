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

import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lstm_tune.errors import DataError
from lstm_tune.figures import (
    ConfusionMatrix,
    Curve,
    Curves,
    Figure,
    Report,
    Row,
    Section,
    Table,
    Text,
)
from lstm_tune.tasks import register
from lstm_tune.tasks.base import COMMON_KNOBS, Options, State, Task, baseline_warning
from lstm_tune.tasks.readers import read_csv_rows, read_text_lines
from lstm_tune.tasks.text_classification.data import (
    FIRST_WORD_ID,
    TOKENIZER_RULES,
    TOKENIZER_VERSION,
    Split,
    TextClassificationData,
    encode_text,
    load_corpus,
    oov_id,
    review_lengths,
    sample_of,
    split_validation,
    with_vocabulary_size,
)
from lstm_tune.training import preflight
from lstm_tune.types import Estimate, Objective, Params, Prepared

if TYPE_CHECKING:
    import keras
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
    knobs = (*COMMON_KNOBS, "embedding_size", "bidirectional", "pooling", "max_features")
    data_knobs = ("max_features",)
    # Vocabulary sizes cut from a loaded corpus, kept for the next trial of the same size
    # (each holds a copy of the token ids, so only a few).
    VIEWS_KEPT = 4

    def __init__(self) -> None:
        self._views: OrderedDict[tuple[int, int], tuple[weakref.ref[Prepared], Prepared]] = (
            OrderedDict()
        )

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
                "oov_id": oov_id(data.source),
            },
        )

    def for_params(self, prepared: Prepared, params: Params) -> Prepared:
        """The data at the config's ``max_features`` (a vocabulary no larger than the one
        loaded): every id of a word beyond it becomes out-of-vocabulary, exactly what
        tokenizing at that size gives (the vocabulary is the most frequent words, so a
        smaller one is the larger one's start). Cut once per size and kept: the corpus is
        tokenized once, at the largest size the study searches."""
        size = int(params.get("max_features", prepared.meta["vocab_size"]))
        if size == prepared.meta["vocab_size"]:
            return prepared
        key = (id(prepared), size)
        kept = self._views.get(key)
        if kept is not None and kept[0]() is prepared:
            self._views.move_to_end(key)
            return kept[1]
        view = with_vocabulary_size(prepared, size)
        self._views[key] = (weakref.ref(prepared), view)
        while len(self._views) > self.VIEWS_KEPT:
            self._views.popitem(last=False)
        return view

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
        """A stratified sample of ``size`` texts (every class keeps its share)."""
        return sample_of(split, size, seed)

    # -- model -----------------------------------------------------------------------------

    def build(self, params: Params, prepared: Prepared) -> keras.Model:
        """Embedding → LSTM stack → pooling over the real tokens (by default the last one's
        output) → sigmoid (2 classes) or softmax (more)."""
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

    def report(self, metrics: Mapping[str, Any]) -> Report:
        """Scores beside the baseline, the classification report, confusion matrix and ROC
        curve; in the terminal, the scores, the per-class report and the matrix."""
        names = tuple(str(name) for name in metrics["class_names"])
        matrix = ConfusionMatrix(
            tuple(tuple(int(v) for v in row) for row in metrics["confusion_matrix"]), names
        )
        per_class = metrics.get("classification_report") or {}
        scores: tuple[Figure, ...] = (
            _scores_table(metrics, names),
            *baseline_warning(metrics, "majority-class baseline", "accuracy"),
            _report_table(per_class, tuple(per_class), "Classification report"),
        )
        sections = (
            Section("test-metrics", "Test metrics", scores),
            Section(
                "confusion-matrix",
                "Confusion matrix",
                (matrix,),
                caption="Rows are the true class, columns the predicted class (test split).",
            ),
            _roc_section(metrics),
        )
        return Report(sections, _summary(metrics, names, per_class, matrix))

    # -- use on new input ------------------------------------------------------------------

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

    def read_inputs(self, state: State, path: Path) -> Iterator[str]:
        """Texts: the model's text column of a CSV(.gz), or every non-empty line of a .txt."""
        if path.suffix == ".txt":
            yield from read_text_lines(path)
            return
        column = state["text_column"]
        for _line, row in read_csv_rows(path, {column: "the model's text column"}):
            yield row.get(column) or ""

    def check_input(self, state: State, params: Params, item: Any) -> str:
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
        self, model: keras.Model, state: State, params: Params, inputs: list[Any], options: Options
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

    def estimate(
        self, params: Params, prepared: Prepared, checkpoints: int = 0, sample_size: int = 0
    ) -> Estimate:
        """Memory: embedding, LSTM stack and head weights, activations over
        ``sequence_length`` steps. Time: LSTM steps of length-bucketed batches over the fit
        texts, then the validation texts and each checkpoint's sample."""
        vocab_size = int(params.get("max_features", prepared.meta["vocab_size"]))
        memory = preflight.estimate_memory(
            params,
            weights=parameter_count(params, vocab_size, len(prepared.meta["class_names"])),
            input_width=embedding_size(params),
        )
        val_lengths = review_lengths(prepared.validation)
        forward = np.concatenate([val_lengths, *[val_lengths[:sample_size]] * checkpoints])
        seconds = preflight.estimate_epoch_seconds(params, review_lengths(prepared.fit), forward)
        return Estimate(memory, seconds)


# --------------------------------------------------------------------------- model


def output_units(n_classes: int) -> int:
    """One sigmoid unit for two classes, else one softmax unit per class."""
    return 1 if n_classes == 2 else n_classes


def embedding_size(params: Params) -> int:
    """The embedding's width: the config's ``embedding_size``, else ``hidden_size`` (the
    seed's)."""
    return int(params.get("embedding_size", params["hidden_size"]))


def build_classifier(params: Params, vocab_size: int, n_classes: int = 2) -> keras.Model:
    """The seed notebook's classifier, generalised to ``n_classes``; compiled.

    Embedding width equals ``hidden_size`` as in the seed (unless ``embedding_size``). It
    takes right-padded ids (0 is padding, :mod:`.batching`) and by default reads the last
    LSTM's output at each text's last real token. That is the output a masked model
    (``Embedding(mask_zero=True)`` over left-padded ids) gives, because an LSTM only looks
    back (tested), without the mask's per-step selects: 8% less time per training step
    (BENCHMARKS.md ``train_step``, "no mask") and ``padding_epoch`` for whole epochs. The
    other poolings, and a bidirectional stack, read the real tokens only too
    (:mod:`.pooling`, :func:`~lstm_tune.training.lstm_stack.bidirectional_over_lengths`).
    Built from Keras ops only, so ``keras.saving.load_model`` reads the saved model without
    lstm-tune.
    """
    import keras

    from lstm_tune.tasks.text_classification.pooling import pool, real_lengths
    from lstm_tune.training.lstm_stack import (
        JIT_COMPILE,
        bidirectional_over_lengths,
        lstm_stack,
        optimizer,
    )

    binary = n_classes == 2
    bidirectional = bool(params.get("bidirectional", False))
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    steps = keras.layers.Embedding(vocab_size, embedding_size(params))(ids)
    # The stack's last Dropout is applied after pooling, to one vector instead of every step
    # (for the last step, the same thing, dropout being elementwise).
    if bidirectional:
        steps = bidirectional_over_lengths(steps, params, real_lengths(ids))
        last_dropout = keras.layers.Dropout(float(params["dropout_rate"]))
    else:
        *recurrent, last_dropout = lstm_stack(params, return_sequences=True)
        for layer in recurrent:
            steps = layer(steps)
    pooling = str(params.get("pooling", "last"))
    features = last_dropout(pool(steps, ids, pooling, bidirectional=bidirectional))
    head = keras.layers.Dense(
        output_units(n_classes), activation="sigmoid" if binary else "softmax"
    )
    model = keras.Model(ids, head(features), name="lstm_classifier")
    model.compile(
        optimizer=optimizer(params),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=JIT_COMPILE,
    )
    return model


def last_real_step(steps: keras.KerasTensor, ids: keras.KerasTensor) -> keras.KerasTensor:
    """Each row of ``steps`` at its text's last non-padding id (see :mod:`.pooling`)."""
    from lstm_tune.tasks.text_classification.pooling import last_real_step as last

    return last(steps, ids)


def parameter_count(params: Params, vocab_size: int, n_classes: int = 2) -> int:
    """Weights of :func:`build_classifier`: embedding, LSTM stack, pooling, output layer."""
    width = embedding_size(params)
    pooled = int(params["hidden_size"]) * preflight.directions(params)
    # pooling.attention_layers: Dense(pooled, tanh) with its bias, then Dense(1) without.
    attention = pooled * pooled + 2 * pooled if params.get("pooling") == "attention" else 0
    units = output_units(n_classes)
    return (
        vocab_size * width
        + preflight.lstm_parameter_count(params, input_width=width)
        + attention
        + pooled * units
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


def _scores_table(metrics: Mapping[str, Any], names: Sequence[str]) -> Table:
    """The model's scores beside the baseline's (metrics.json older than baselines: alone)."""
    baseline = metrics.get("baseline") or {}
    binary = len(names) == 2
    rows: list[tuple[str, Any, Any]] = [
        ("accuracy", metrics["accuracy"], baseline.get("accuracy")),
        ("precision (macro)", metrics["precision_macro"], None),
        ("recall (macro)", metrics["recall_macro"], None),
        ("F1 (macro)", metrics["f1_macro"], baseline.get("f1_macro")),
        (
            "ROC AUC" + ("" if binary else " (macro, one-vs-rest)"),
            metrics.get("roc_auc"),
            0.5 if baseline else None,
        ),
    ]
    if binary:
        rows += [
            (f"{score} ({names[1]})", metrics.get(key), None)
            for score, key in (("precision", "precision"), ("recall", "recall"), ("F1", "f1"))
        ]
    if not baseline:
        return Table(("model",), tuple(Row(label, (value,)) for label, value, _ in rows))
    column = f"baseline: {baseline.get('name')} ({baseline.get('predicts')})"
    return Table(("model", column), tuple(Row(label, (v, b)) for label, v, b in rows))


def _report_table(report: Mapping[str, Any], labels: Sequence[str], title: str = "") -> Table:
    """scikit-learn's classification report, the rows ``labels`` of it that it has."""
    rows = []
    for label in labels:
        if label not in report:
            continue
        row = report[label]
        if isinstance(row, dict):
            scores = (row.get("precision"), row.get("recall"), row.get("f1-score"))
            rows.append(Row(str(label), (*scores, int(row.get("support", 0)))))
        else:  # scikit-learn puts plain "accuracy" next to the per-class dicts
            rows.append(Row(str(label), (None, None, row, None)))
    return Table(("precision", "recall", "f1-score", "support"), tuple(rows), title)


def _roc_section(metrics: Mapping[str, Any]) -> Section:
    """Two classes: the second class's ROC curve; more: one one-vs-rest curve per class."""
    named: dict[str | Text, Mapping[str, Sequence[float]]] = dict(metrics.get("roc_curves") or {})
    if "roc_curve" in metrics:
        named = {Text("model (AUC {})", (metrics.get("roc_auc"),)): metrics["roc_curve"]}
    curves = (
        Curve("chance", (0, 1), (0, 1), reference=True),
        *(Curve(name, tuple(c["fpr"]), tuple(c["tpr"])) for name, c in named.items()),
    )
    figure = Curves(
        curves,
        x_title="false positive rate",
        y_title="true positive rate",
        x_range=(0, 1),
        y_range=(0, 1.02),
        square=True,
    )
    caption = "" if "roc_curve" in metrics else "One-vs-rest curve per class."
    return Section("roc-curve", "ROC curve", (figure,), caption)


def _summary(
    metrics: Mapping[str, Any],
    names: Sequence[str],
    per_class: Mapping[str, Any],
    matrix: ConfusionMatrix,
) -> tuple[Figure, ...]:
    """Scores, the baseline's, the per-class report and the matrix, as the seed prints them."""
    lines: list[Figure] = [
        Text(
            "Test accuracy: {}   macro F1: {}   ROC AUC: {}   ({} texts, {} classes, {} epochs)",
            (
                metrics["accuracy"],
                metrics["f1_macro"],
                metrics.get("roc_auc"),
                metrics.get("test_size"),
                len(names),
                metrics.get("epochs"),
            ),
        )
    ]
    baseline = metrics.get("baseline")
    if baseline:
        lines.append(
            Text(
                "Majority-class baseline ({}): accuracy {}, macro F1 {}",
                (repr(baseline["predicts"]), baseline["accuracy"], baseline["f1_macro"]),
            )
        )
    lines.append(_report_table(per_class, (*names, "macro avg", "weighted avg")))
    return (*lines, matrix)


register(TextClassification())
