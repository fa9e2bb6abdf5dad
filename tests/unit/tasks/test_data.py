"""Loading labelled texts: tokenization, vocabulary, classes, slices, cache, padding, bad files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from lstm_tune.errors import DataError
from lstm_tune.tasks.text_classification.data import (
    OOV_ID,
    PAD_ID,
    Split,
    load_corpus,
    pad,
    split_validation,
    tokenize,
)
from lstm_tune.tasks.text_classification.task import TextClassificationData as DataSpec


def test_tokenize_lowercases_and_drops_html_breaks() -> None:
    assert tokenize("Great film!<br /><br />Isn't it? 10/10") == [
        "great",
        "film",
        "isn't",
        "it",
        "10",
        "10",
    ]


def test_csv_corpus_keeps_splits_labels_and_a_train_only_vocabulary(
    imdb_slice: Path, tmp_path: Path
) -> None:
    spec = DataSpec(source="csv", path=str(imdb_slice), max_features=500)
    corpus = load_corpus(spec, seed=1)
    assert len(corpus.train) == 400 and len(corpus.test) == 400
    assert sorted(np.bincount(corpus.train.labels)) == [200, 200]
    assert corpus.vocab_size == 500
    every_id = np.concatenate(corpus.train.sequences + corpus.test.sequences)
    assert every_id.min() >= OOV_ID and every_id.max() < 500
    # A word that occurs only in the test split is out-of-vocabulary.
    rare = tmp_path / "rare.csv"
    rare.write_text(
        "review,sentiment,split\n"
        "good good fine,positive,train\nbad bad awful,negative,train\n"
        "zyzzyva good,positive,test\nbad,negative,test\n"
    )
    tiny = load_corpus(DataSpec(source="csv", path=str(rare), max_features=10), seed=1)
    assert tiny.test.sequences[0][0] == OOV_ID
    assert tiny.test.sequences[0][1] == tiny.train.sequences[0][0]


def test_slices_are_stratified_and_fixed_by_the_seed(imdb_slice: Path) -> None:
    spec = DataSpec(source="csv", path=str(imdb_slice), train_limit=100, test_limit=50)
    first = load_corpus(spec, seed=3)
    again = load_corpus(spec, seed=3)
    assert len(first.train) == 100 and len(first.test) == 50
    assert list(np.bincount(first.train.labels)) == [50, 50]
    assert all(
        np.array_equal(a, b)
        for a, b in zip(first.train.sequences, again.train.sequences, strict=True)
    )
    fit_a, val_a = split_validation(first.train, 0.2, seed=3)
    fit_b, val_b = split_validation(first.train, 0.2, seed=3)
    assert len(val_a) == 20 and list(np.bincount(val_a.labels)) == [10, 10]
    assert np.array_equal(val_a.labels, val_b.labels)
    assert all(np.array_equal(a, b) for a, b in zip(val_a.sequences, val_b.sequences, strict=True))


def test_tokenized_corpus_is_cached_on_disk_keyed_by_inputs(
    imdb_slice: Path, tmp_path: Path
) -> None:
    spec = DataSpec(source="csv", path=str(imdb_slice), max_features=300, cache_dir=str(tmp_path))
    built = load_corpus(spec, seed=1)
    files = list(tmp_path.glob("corpus-*.npz"))
    assert len(files) == 1
    cached = load_corpus(spec, seed=1)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(built.test.sequences, cached.test.sequences, strict=True)
    )
    assert np.array_equal(built.train.labels, cached.train.labels)
    load_corpus(spec.model_copy(update={"max_features": 400}), seed=1)
    assert len(list(tmp_path.glob("corpus-*.npz"))) == 2
    files[0].write_bytes(b"torn")  # a damaged cache is rebuilt, not trusted
    rebuilt = load_corpus(spec, seed=1)
    assert np.array_equal(rebuilt.train.labels, built.train.labels)


def test_pad_keeps_the_end_of_long_reviews_and_left_pads_short_ones() -> None:
    seqs = [np.array([5, 6, 7, 8], np.int32), np.array([9], np.int32), np.array([], np.int32)]
    assert pad(seqs, 3).tolist() == [[6, 7, 8], [PAD_ID, PAD_ID, 9], [PAD_ID] * 3]


def test_csv_without_split_column_gets_a_stratified_test_split(tmp_path: Path) -> None:
    rows = "".join(f"review {i} words,{'positive' if i % 2 else 'negative'}\n" for i in range(50))
    path = tmp_path / "nosplit.csv"
    path.write_text("review,sentiment\n" + rows)
    corpus = load_corpus(DataSpec(source="csv", path=str(path)), seed=0)
    assert len(corpus.train) == 40 and len(corpus.test) == 10
    assert list(np.bincount(corpus.test.labels)) == [5, 5]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"text,label\nhi,positive\n",
            r"data\.text_column: no column 'review'; the file has columns 'text', 'label'",
        ),
        (b"review,stars\nhi,3\n", r"data\.label_column: no column 'sentiment'"),
        (b"", "empty file"),
        (b"\x1f\x8b\x08\x00garbage", "unreadable gzip data"),
        (b"review,sentiment\x00\n\x01\x02,positive\n", r"binary file \(NUL bytes\)"),
        (b"review,sentiment\ncaf\xe9,positive\n", "not UTF-8 text at byte"),
        (b"review,sentiment\nok,positive\n", "has one class only \\('positive'\\)"),
        (
            b"review,sentiment\na,positive\nb,positive\nc,negative\n",
            "class 'negative' has a single example",
        ),
        (
            b"review,sentiment\n  ,positive\n",
            r"line 2: column 'review' \(data\.text_column\) is empty",
        ),
        (
            b"review,sentiment\nfine,\n",
            r"line 2: column 'sentiment' \(data\.label_column\) is empty",
        ),
        (
            b"review,sentiment,split\ngood,positive,train\nbad,negative,train\n"
            b"fine,positive,train\nawful,negative,train\n",
            r"data\.split_column\): no test rows",
        ),
        (b"review,sentiment,split\ngood,positive,dev\n", r"is 'dev'; allowed: train, test"),
    ],
)
def test_bad_data_gives_one_line_naming_file_and_problem(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=expected) as info:
        load_corpus(DataSpec(source="csv", path=str(path)), seed=0)
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)


def test_gzipped_csv_is_read(tmp_path: Path) -> None:
    path = tmp_path / "r.csv.gz"
    with gzip.open(path, "wt") as out:
        out.write(
            "review,sentiment,split\ngood,positive,train\nbad,negative,train\n"
            "good,positive,test\nbad,negative,test\n"
        )
    corpus = load_corpus(DataSpec(source="csv", path=str(path)), seed=0)
    assert corpus.train.labels.tolist() == [1, 0]


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.csv: no such data file"):
        load_corpus(DataSpec(source="csv", path=str(tmp_path / "nope.csv")), seed=0)


def test_failed_download_says_how_to_pass_a_local_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real download attempt, into an empty cache, through a proxy that refuses connections.
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    with pytest.raises(DataError, match=r"could not download IMDB.*--data-path FILE\.csv"):
        load_corpus(DataSpec(source="keras", cache_dir=str(tmp_path)), seed=0)


def test_split_type_is_indexable_by_position() -> None:
    split = Split([np.array([1], np.int32)] * 4, np.array([0, 1, 0, 1], np.int8))
    fit, val = split_validation(split, 0.5, seed=0)
    assert len(fit) == 2 and sorted(val.labels.tolist()) == [0, 1]


def test_any_columns_and_any_number_of_classes_in_numeric_order(tmp_path: Path) -> None:
    path = tmp_path / "stars.csv"
    rows = "".join(f"text number {i},{(i % 3) * 5 + 1}\n" for i in range(60))  # 1, 6, 11
    path.write_text("message,stars\n" + rows)
    spec = DataSpec(path=str(path), text_column="message", label_column="stars")
    corpus = load_corpus(spec, seed=0)
    assert corpus.class_names == ("1", "6", "11")  # numbers sort as numbers, not as text
    assert len(corpus.train) == 48 and len(corpus.test) == 12
    assert list(np.bincount(corpus.test.labels)) == [4, 4, 4]


def test_a_named_split_column_must_exist(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("review,sentiment\na,x\nb,y\nc,x\nd,y\n")
    with pytest.raises(DataError, match=r"data\.split_column: no column 'fold'"):
        load_corpus(DataSpec(path=str(path), split_column="fold"), seed=0)


def test_too_few_rows_for_a_stratified_split_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "few.csv"
    path.write_text("review,sentiment\na,x\nb,y\nc,x\nd,y\n")
    with pytest.raises(DataError, match=r"data\.test_split: cannot split 4 examples"):
        load_corpus(DataSpec(path=str(path)), seed=0)
