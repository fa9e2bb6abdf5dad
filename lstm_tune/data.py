"""IMDB reviews → integer sequences: load, tokenize, cache, split, pad.

Sources: ``keras`` (``keras.datasets.imdb``, downloads once, already tokenized) or ``csv``
(a local CSV, optionally gzipped, with ``review`` and ``sentiment`` columns and an optional
``split`` column, like the Stanford corpus rebuilt as CSV). Raw text is tokenized into the
``max_features`` most frequent words of the training split only, so the test split never
leaks into the vocabulary. Token ids: 0 is padding, 1 is out-of-vocabulary, words start at 2.

The binary-sentiment task lives behind :func:`load_corpus` and :class:`Corpus`: labels are
0/1 here; a regression or language-model task would bring its own loader and label kind.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from lstm_tune.config import DataSpec
from lstm_tune.errors import DataError

# Bump when tokenization changes so old caches are not reused.
TOKENIZER_VERSION = 1
PAD_ID = 0
OOV_ID = 1
FIRST_WORD_ID = 2
# A CSV without a `split` column keeps this share of each class as its test split.
TEST_FRACTION_WITHOUT_SPLIT = 0.2
LABELS = {"positive": 1, "pos": 1, "1": 1, "negative": 0, "neg": 0, "0": 0}
_TAG = re.compile(r"<[^>]+>")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Split:
    """Token-id sequences (one array per review) and their 0/1 labels."""

    sequences: list[np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.sequences)


@dataclass(frozen=True)
class Corpus:
    """The tokenized train and test splits and the vocabulary size the model must embed."""

    train: Split
    test: Split
    vocab_size: int


def tokenize(text: str) -> list[str]:
    """Split a review into lower-case words, dropping HTML tags such as ``<br />``."""
    return _WORD.findall(_TAG.sub(" ", text.lower()))


def load_corpus(spec: DataSpec, seed: int) -> Corpus:
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
        corpus = _load_csv(Path(spec.path), spec.max_features, seed)
    corpus = Corpus(
        train=_stratified_slice(corpus.train, spec.train_limit, seed),
        test=_stratified_slice(corpus.test, spec.test_limit, seed),
        vocab_size=corpus.vocab_size,
    )
    if cache_file is not None:
        _write_cache(cache_file, corpus)
    return corpus


def split_validation(train: Split, validation_split: float, seed: int) -> tuple[Split, Split]:
    """Split ``train`` into (fit, validation), stratified by class and fixed by ``seed``.

    The class is ``label >= 0.5``, so the split also works on soft or unusable labels and
    leaves it to training to notice them (a NaN label shows up as a NaN loss).
    """
    index = np.arange(len(train))
    fit_idx, val_idx = train_test_split(
        index, test_size=validation_split, stratify=train.labels >= 0.5, random_state=seed
    )
    return _take(train, np.sort(fit_idx)), _take(train, np.sort(val_idx))


def sample_of(split: Split, size: int, seed: int) -> Split:
    """A stratified sample of ``size`` reviews of ``split`` (all of it if smaller), by ``seed``."""
    return _stratified_slice(split, size, seed)


def review_lengths(split: Split) -> np.ndarray:
    """Token count of each review of ``split``, uncut."""
    return np.fromiter((len(s) for s in split.sequences), dtype=np.int64, count=len(split))


def pad(sequences: list[np.ndarray], length: int) -> np.ndarray:
    """Cut and left-pad each sequence to ``length``, keeping its end as the seed notebook does."""
    out = np.full((len(sequences), length), PAD_ID, dtype=np.int32)
    for row, seq in enumerate(sequences):
        tail = seq[-length:]
        if len(tail):
            out[row, length - len(tail) :] = tail
    return out


def _take(split: Split, index: np.ndarray) -> Split:
    return Split([split.sequences[i] for i in index], split.labels[index])


def _stratified_slice(split: Split, limit: int | None, seed: int) -> Split:
    if limit is None or limit >= len(split):
        return split
    index, _ = train_test_split(
        np.arange(len(split)), train_size=limit, stratify=split.labels, random_state=seed
    )
    return _take(split, np.sort(index))


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
        return Split([np.asarray(s, dtype=np.int32) for s in x], np.asarray(y, dtype=np.int8))

    return Corpus(as_split(x_train, y_train), as_split(x_test, y_test), max_features)


def _read_rows(path: Path) -> Iterator[dict[str, str]]:
    try:
        with path.open("rb") as probe:
            magic = probe.read(2)
    except FileNotFoundError:
        raise DataError(f"{path}: no such data file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read data file: {exc.strerror}") from None
    raw = gzip.open(path, "rb") if magic == _GZIP_MAGIC else path.open("rb")
    try:
        with io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:  # type: ignore[type-var]
            reader = csv.DictReader(text)
            columns = reader.fieldnames or []
            if not columns:
                raise DataError(f"{path}: empty file; expected a CSV with a header row")
            missing = [c for c in ("review", "sentiment") if c not in columns]
            if missing:
                raise DataError(
                    f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(columns)}; "
                    f"expected review, sentiment and optionally split"
                )
            yield from reader
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: unreadable gzip data ({exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text at byte {exc.start}") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from None


def _load_csv(path: Path, max_features: int, seed: int) -> Corpus:
    texts: dict[str, list[list[str]]] = {"train": [], "test": []}
    labels: dict[str, list[int]] = {"train": [], "test": []}
    unsplit_texts: list[list[str]] = []
    unsplit_labels: list[int] = []
    for line, row in enumerate(_read_rows(path), start=2):
        sentiment = (row.get("sentiment") or "").strip().lower()
        if sentiment not in LABELS:
            raise DataError(
                f"{path}: line {line}: sentiment {row.get('sentiment')!r} is not a label of the "
                f"two classes; allowed: positive/negative (or pos/neg, 1/0)"
            )
        split = (row.get("split") or "").strip().lower()
        words = tokenize(row.get("review") or "")
        if split in texts:
            texts[split].append(words)
            labels[split].append(LABELS[sentiment])
        elif not split:
            unsplit_texts.append(words)
            unsplit_labels.append(LABELS[sentiment])
        else:
            raise DataError(f"{path}: line {line}: split {split!r} is not one of train, test")
    if unsplit_texts:
        train_idx, test_idx = train_test_split(
            np.arange(len(unsplit_texts)),
            test_size=TEST_FRACTION_WITHOUT_SPLIT,
            stratify=unsplit_labels if len(set(unsplit_labels)) == 2 else None,
            random_state=seed,
        )
        for name, idx in (("train", train_idx), ("test", test_idx)):
            texts[name].extend(unsplit_texts[i] for i in idx)
            labels[name].extend(unsplit_labels[i] for i in idx)
    for name in ("train", "test"):
        if not texts[name]:
            raise DataError(f"{path}: no {name} rows; expected reviews in both splits")
        if len(set(labels[name])) != 2:
            raise DataError(
                f"{path}: the {name} split has only the label {labels[name][0]} "
                f"(1=positive, 0=negative); both classes are needed"
            )
    counts = Counter(word for words in texts["train"] for word in words)
    vocab = {
        word: FIRST_WORD_ID + i
        for i, (word, _) in enumerate(counts.most_common(max_features - FIRST_WORD_ID))
    }

    def encode(name: str) -> Split:
        seqs = [
            np.fromiter((vocab.get(w, OOV_ID) for w in words), dtype=np.int32, count=len(words))
            for words in texts[name]
        ]
        return Split(seqs, np.asarray(labels[name], dtype=np.int8))

    return Corpus(encode("train"), encode("test"), max_features)


def _cache_file(spec: DataSpec, seed: int) -> Path | None:
    if spec.cache_dir is None:
        return None
    key: dict[str, object] = {
        "tokenizer": TOKENIZER_VERSION,
        "source": spec.source,
        "max_features": spec.max_features,
        "train_limit": spec.train_limit,
        "test_limit": spec.test_limit,
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
        )
