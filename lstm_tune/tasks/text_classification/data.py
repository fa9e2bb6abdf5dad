"""Labelled texts → integer sequences: load, tokenize, cache, split, pad.

Sources: ``keras`` (``keras.datasets.imdb``, downloads once, already tokenized, two classes)
or ``csv`` (a local CSV, optionally gzipped, with a text column, a label column and an
optional split column). Raw text is tokenized into the ``max_features`` most frequent words
of the training split only, so the test split never leaks into the vocabulary. Token ids: 0
is padding, 1 is out-of-vocabulary, words start at 2.

Classes are whatever labels the file holds (two or more): their names, sorted (numerically
when every label is a number), are the class indices 0, 1, ... that the model predicts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn.model_selection import train_test_split

from lstm_tune.errors import DataError
from lstm_tune.tasks.base import Examples
from lstm_tune.tasks.readers import quote, read_csv_rows
from lstm_tune.types import Prepared

# Bump when tokenization or the cached layout changes so old caches are not reused.
TOKENIZER_VERSION = 3
PAD_ID = 0
OOV_ID = 1
FIRST_WORD_ID = 2
KERAS_IMDB_CLASSES = ("negative", "positive")
# keras.datasets.imdb's own ids: 1 starts a review, 2 is out-of-vocabulary, words from 3.
KERAS_IMDB_OOV_ID = 2
_TAG = re.compile(r"<[^>]+>")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


class TextClassificationData(BaseModel):
    """The ``data:`` section of a text-classification study."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["keras", "csv"] = Field(
        "keras",
        description="`keras`: keras.datasets.imdb (download); `csv`: the file at `path`. "
        "Defaults to csv when a path is given.",
    )
    path: str | None = Field(None, min_length=1, description="a CSV file, optionally .gz")
    text_column: str = Field("review", min_length=1, description="column holding the text")
    label_column: str = Field("sentiment", min_length=1, description="column holding the class")
    split_column: str | None = Field(
        "split",
        description="column saying train/test per row; used when the file has it (a "
        "non-default name must exist); without it `test_split` is held out",
    )
    test_split: float = Field(
        0.2, gt=0.0, le=0.5, description="share of each class held out as the test split"
    )
    max_features: int = Field(
        10000, ge=3, description="vocabulary size (2 ids are padding and out-of-vocabulary)"
    )
    validation_split: float = Field(
        0.2, gt=0.0, le=0.9, description="share of the training split that validates trials"
    )
    train_limit: int | None = Field(None, ge=10, description="stratified slice of the train split")
    test_limit: int | None = Field(None, ge=10, description="stratified slice of the test split")
    cache_dir: str | None = Field(None, description="where tokenized corpora are cached")

    @model_validator(mode="before")
    @classmethod
    def _csv_when_a_path_is_given(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("path") and "source" not in raw:
            return {**raw, "source": "csv"}
        return raw

    @model_validator(mode="after")
    def _csv_needs_a_path(self) -> TextClassificationData:
        if self.source == "csv" and not self.path:
            raise ValueError("source csv needs `path:` (or --data-path)")
        return self


# The name the data section had before tasks existed (benchmarks and older scripts use it).
DataSpec = TextClassificationData


@dataclass(frozen=True)
class Split(Examples[list[np.ndarray]]):
    """Token-id sequences (``inputs``, one array per text) and their class indices
    (``targets``); the base task counts, samples and merges it as :class:`Examples`."""

    @property
    def sequences(self) -> list[np.ndarray]:
        """Each text's token ids."""
        return self.inputs

    @property
    def labels(self) -> np.ndarray:
        """Each text's class index."""
        return self.targets


@dataclass(frozen=True)
class Corpus:
    """The tokenized train and test splits, the vocabulary size and the class names.

    ``vocabulary`` holds the words of ids ``FIRST_WORD_ID``, ``FIRST_WORD_ID + 1``, ... (empty
    for Keras's pre-tokenized IMDB, whose raw words are not known here).
    """

    train: Split
    test: Split
    vocab_size: int
    class_names: tuple[str, ...] = KERAS_IMDB_CLASSES
    vocabulary: tuple[str, ...] = ()


# How texts become words, written into a trained model's preprocessing.json so the rules can be
# checked (or reimplemented) where the model is used.
TOKENIZER_RULES = {
    "lowercase": True,
    "remove": _TAG.pattern,
    "words": _WORD.pattern,
    "pad_id": PAD_ID,
    # A text is cut to the model's sequence_length keeping its end, then padded after it: the
    # classifier reads its output at the last non-padding id.
    "padding": "right",
    "out_of_vocabulary_id": OOV_ID,
    "first_word_id": FIRST_WORD_ID,
}


def encode_text(text: str, vocabulary: dict[str, int]) -> np.ndarray:
    """Token ids of ``text`` under ``vocabulary`` (word → id), out-of-vocabulary as OOV_ID."""
    words = tokenize(text)
    return np.fromiter(
        (vocabulary.get(w, OOV_ID) for w in words), dtype=np.int32, count=len(words)
    )


def tokenize(text: str) -> list[str]:
    """Split a text into lower-case words, dropping HTML tags such as ``<br />``."""
    return _WORD.findall(_TAG.sub(" ", text.lower()))


def load_corpus(spec: TextClassificationData, seed: int) -> Corpus:
    """Load, tokenize and slice the corpus ``spec`` names, from the disk cache when possible."""
    cache_file = _cache_file(spec, seed)
    if cache_file is not None and cache_file.exists():
        try:
            return _read_cache(cache_file)
        except (OSError, ValueError, KeyError, zlib.error):
            cache_file.unlink(missing_ok=True)  # a torn or stale cache is rebuilt, not trusted
    if spec.source == "keras":
        corpus = _load_keras(spec.max_features, spec.cache_dir)
    else:
        assert spec.path is not None
        corpus = _load_csv(Path(spec.path), spec, seed)
    where = spec.path or "keras.datasets.imdb"
    corpus = Corpus(
        train=_stratified_slice(corpus.train, spec.train_limit, seed, where, "data.train_limit"),
        test=_stratified_slice(corpus.test, spec.test_limit, seed, where, "data.test_limit"),
        vocab_size=corpus.vocab_size,
        class_names=corpus.class_names,
        vocabulary=corpus.vocabulary,
    )
    if cache_file is not None:
        _write_cache(cache_file, corpus)
    return corpus


def oov_id(source: str) -> int:
    """The out-of-vocabulary id of a corpus from ``source`` (``keras`` has its own ids)."""
    return KERAS_IMDB_OOV_ID if source == "keras" else OOV_ID


def with_vocabulary_size(prepared: Prepared, size: int) -> Prepared:
    """``prepared`` (splits of :class:`Split`) as if tokenized with a vocabulary of ``size``
    ids: ids from ``size`` on become out-of-vocabulary, the vocabulary keeps its first words.

    The same as tokenizing at ``size``: the vocabulary is the training split's most frequent
    words, ties in first-seen order (``Counter.most_common``, a stable sort), so a smaller
    vocabulary is a larger one's start; keras.datasets.imdb cuts its ranked ids the same way.
    """
    loaded = int(prepared.meta["vocab_size"])
    if size > loaded:
        raise ValueError(
            f"max_features {size} is above the {loaded} the data was tokenized with; a study "
            f"that searches max_features loads its data at the largest"
        )
    oov = int(prepared.meta.get("oov_id", OOV_ID))

    def cut(split: Split) -> Split:
        return dataclasses.replace(
            split, inputs=[np.where(s < size, s, oov).astype(s.dtype) for s in split.sequences]
        )

    vocabulary = list(prepared.meta.get("vocabulary") or [])[: max(0, size - FIRST_WORD_ID)]
    return Prepared(
        fit=cut(prepared.fit),
        validation=cut(prepared.validation),
        test=cut(prepared.test),
        meta={**prepared.meta, "vocab_size": size, "vocabulary": vocabulary},
    )


def split_validation(
    train: Split, validation_split: float, seed: int, where: str = "data"
) -> tuple[Split, Split]:
    """Split ``train`` into (fit, validation), stratified by class and fixed by ``seed``."""
    index = np.arange(len(train))
    fit_idx, val_idx = _stratified(
        index, train.labels, seed, where, "data.validation_split", test_size=validation_split
    )
    return train.take(np.sort(fit_idx)), train.take(np.sort(val_idx))


def sample_of(split: Split, size: int, seed: int) -> Split:
    """A stratified sample of ``size`` texts of ``split`` (all of it if smaller), by ``seed``."""
    return _stratified_slice(split, size, seed, "validation split", "training.report_sample")


def review_lengths(split: Split) -> np.ndarray:
    """Token count of each text of ``split``, uncut."""
    return np.fromiter((len(s) for s in split.sequences), dtype=np.int64, count=len(split))


def pad(
    sequences: list[np.ndarray], length: int, side: Literal["left", "right"] = "left"
) -> np.ndarray:
    """Cut each sequence to ``length`` keeping its end, as the seed notebook does, and pad it.

    ``left`` (the seed's ``pad_sequences`` default) puts the padding before the text;
    ``right`` after it, which lstm-tune's classifier reads
    (:mod:`lstm_tune.tasks.text_classification.batching`).
    """
    out = np.full((len(sequences), length), PAD_ID, dtype=np.int32)
    for row, seq in enumerate(sequences):
        tail = seq[-length:]
        if not len(tail):
            continue
        if side == "left":
            out[row, length - len(tail) :] = tail
        else:
            out[row, : len(tail)] = tail
    return out


def class_order(labels: Iterable[str]) -> tuple[str, ...]:
    """Distinct labels in class-index order: numeric order if all are numbers, else text."""
    distinct = set(labels)
    try:
        return tuple(sorted(distinct, key=float))
    except ValueError:
        return tuple(sorted(distinct))


def _stratified(
    index: np.ndarray,
    labels: np.ndarray,
    seed: int,
    where: str,
    field: str,
    **sizes: float | int,
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's stratified split, its refusals turned into one-line data errors."""
    try:
        first, second = train_test_split(index, stratify=labels, random_state=seed, **sizes)
    except ValueError as exc:
        counts = np.bincount(labels) if len(labels) else np.zeros(0, int)
        raise DataError(
            f"{where}: {field}: cannot split {len(labels)} examples keeping every class "
            f"(smallest class has {int(counts[counts > 0].min()) if counts.any() else 0}): "
            f"{exc}; give more rows per class or change {field}"
        ) from None
    return first, second


def _stratified_slice(split: Split, limit: int | None, seed: int, where: str, field: str) -> Split:
    if limit is None or limit >= len(split):
        return split
    index, _ = _stratified(
        np.arange(len(split)), split.labels, seed, where, field, train_size=limit
    )
    return split.take(np.sort(index))


def _load_keras(max_features: int, cache_dir: str | None) -> Corpus:
    import keras  # deferred: importing keras costs seconds and the CSV path does not need it

    # With a cache dir the download lands there (one volume for workers), else in ~/.keras.
    target = str(Path(cache_dir).resolve() / "imdb.npz") if cache_dir else "imdb.npz"
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.imdb.load_data(
            path=target, num_words=max_features
        )
    except Exception as exc:  # urllib, OSError, HTTP errors: all mean "no download"
        raise DataError(
            f"could not download IMDB with keras.datasets.imdb ({type(exc).__name__}: {exc}); "
            f"pass a local copy instead: --data-path FILE.csv[.gz] or data.path in the study "
            f"file (columns review, sentiment[, split])"
        ) from None

    def as_split(x: Iterable[list[int]], y: np.ndarray) -> Split:
        return Split([np.asarray(s, dtype=np.int32) for s in x], np.asarray(y, dtype=np.int32))

    return Corpus(as_split(x_train, y_train), as_split(x_test, y_test), max_features)


def _load_csv(path: Path, spec: TextClassificationData, seed: int) -> Corpus:
    required = {spec.text_column: "data.text_column", spec.label_column: "data.label_column"}
    has_split = _has_column(path, spec.split_column) if spec.split_column else False
    if spec.split_column and not has_split and spec.split_column != "split":
        required[spec.split_column] = "data.split_column"  # named on purpose: must exist
    texts: dict[str, list[list[str]]] = {"train": [], "test": [], "": []}
    raw_labels: dict[str, list[str]] = {"train": [], "test": [], "": []}
    for line, row in read_csv_rows(path, required):
        text = row.get(spec.text_column)
        if text is None or not text.strip():
            raise DataError(
                f"{path}: line {line}: column {spec.text_column!r} (data.text_column) is "
                f"empty; every row needs a text"
            )
        label = (row.get(spec.label_column) or "").strip()
        if not label:
            raise DataError(
                f"{path}: line {line}: column {spec.label_column!r} (data.label_column) is "
                f"empty; every row needs a label"
            )
        split = (row.get(spec.split_column or "") or "").strip().lower() if has_split else ""
        if split not in texts:
            raise DataError(
                f"{path}: line {line}: column {spec.split_column!r} (data.split_column) is "
                f"{quote(split)}; allowed: train, test (or empty)"
            )
        texts[split].append(tokenize(text))
        raw_labels[split].append(label)
    every_label = raw_labels["train"] + raw_labels["test"] + raw_labels[""]
    if not every_label:
        raise DataError(f"{path}: no data rows after the header")
    class_names = class_order(every_label)
    if len(class_names) < 2:
        raise DataError(
            f"{path}: column {spec.label_column!r} (data.label_column) has one class only "
            f"({quote(class_names[0])}); classification needs two or more"
        )
    counts = Counter(every_label)
    single = sorted(name for name, n in counts.items() if n < 2)
    if single:
        raise DataError(
            f"{path}: column {spec.label_column!r} (data.label_column): class "
            f"{quote(single[0])} has a single example; every class needs at least 2 "
            f"(for the stratified splits)"
        )
    class_index = {name: i for i, name in enumerate(class_names)}
    labels = {
        k: np.asarray([class_index[v] for v in vs], np.int32) for k, vs in raw_labels.items()
    }
    if texts[""]:
        train_idx, test_idx = _stratified(
            np.arange(len(texts[""])),
            labels[""],
            seed,
            str(path),
            "data.test_split",
            test_size=spec.test_split,
        )
        for name, idx in (("train", train_idx), ("test", test_idx)):
            texts[name].extend(texts[""][i] for i in idx)
            labels[name] = np.concatenate([labels[name], labels[""][idx]]).astype(np.int32)
    for name in ("train", "test"):
        if not texts[name]:
            raise DataError(
                f"{path}: column {spec.split_column!r} (data.split_column): no {name} rows; "
                f"expected texts in both splits (or no split column)"
            )
    counts_train = Counter(word for words in texts["train"] for word in words)
    vocab = {
        word: FIRST_WORD_ID + i
        for i, (word, _) in enumerate(counts_train.most_common(spec.max_features - FIRST_WORD_ID))
    }

    def encode(name: str) -> Split:
        seqs = [
            np.fromiter((vocab.get(w, OOV_ID) for w in words), dtype=np.int32, count=len(words))
            for words in texts[name]
        ]
        return Split(seqs, labels[name])

    return Corpus(encode("train"), encode("test"), spec.max_features, class_names, tuple(vocab))


def _has_column(path: Path, column: str) -> bool:
    for _line, row in read_csv_rows(path, {}):
        return column in row
    return False


def _cache_file(spec: TextClassificationData, seed: int) -> Path | None:
    if spec.cache_dir is None:
        return None
    key: dict[str, object] = {
        "tokenizer": TOKENIZER_VERSION,
        "source": spec.source,
        "max_features": spec.max_features,
        "train_limit": spec.train_limit,
        "test_limit": spec.test_limit,
        "text_column": spec.text_column,
        "label_column": spec.label_column,
        "split_column": spec.split_column,
        "test_split": spec.test_split,
        "seed": seed,
    }
    if spec.path is not None:
        path = Path(spec.path).resolve()
        try:
            stat = path.stat()
        except OSError:
            return None  # the loader reports the missing file with its own message
        key.update(path=str(path), size=stat.st_size, mtime_ns=stat.st_mtime_ns)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return Path(spec.cache_dir) / f"corpus-{digest}.npz"


def _flatten(split: Split, prefix: str) -> dict[str, np.ndarray]:
    lengths = review_lengths(split)
    flat = np.concatenate(split.sequences) if split.sequences else np.zeros(0, np.int32)
    return {f"{prefix}_ids": flat, f"{prefix}_lengths": lengths, f"{prefix}_labels": split.labels}


def _unflatten(archive: np.lib.npyio.NpzFile, prefix: str) -> Split:
    flat = archive[f"{prefix}_ids"]
    bounds = np.cumsum(archive[f"{prefix}_lengths"])[:-1]
    return Split(list(np.split(flat, bounds)), archive[f"{prefix}_labels"])


def _write_cache(path: Path, corpus: Corpus) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {**_flatten(corpus.train, "train"), **_flatten(corpus.test, "test")}
    arrays["vocab_size"] = np.asarray(corpus.vocab_size)
    arrays["class_names"] = np.asarray(json.dumps(list(corpus.class_names)))
    arrays["vocabulary"] = np.asarray(json.dumps(list(corpus.vocabulary)))
    # Write then rename, so a worker never reads another worker's half-written cache.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez_compressed(out, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _read_cache(path: Path) -> Corpus:
    with np.load(path) as archive:
        return Corpus(
            _unflatten(archive, "train"),
            _unflatten(archive, "test"),
            int(archive["vocab_size"]),
            tuple(json.loads(str(archive["class_names"]))),
            tuple(json.loads(str(archive["vocabulary"]))),
        )
