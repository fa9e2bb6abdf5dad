"""Text classification from a CSV that is not IMDB's shape: other columns, more classes.

The whole path on real reviews whose classes are IMDB's star ratings, in a CSV whose columns
are `message` and `stars` and that has no split column: search → export-best → train →
report, and the bad inputs a user meets first, each one line, exit 2, nothing written.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from lstm_tune.cli import main
from lstm_tune.config import load_spec
from tests.helpers.studies import write_study

RATINGS = ("1", "4", "7", "10")
PER_CLASS = 60


@pytest.fixture(scope="module")
def ratings_csv(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """240 real reviews, 60 of each of 4 star ratings, as `message,stars`, no split column."""
    out = tmp_path_factory.mktemp("ratings") / "reviews.csv"
    counts = dict.fromkeys(RATINGS, 0)
    with (
        gzip.open(shared_data, "rt", encoding="utf-8", newline="") as src,
        out.open("w", encoding="utf-8", newline="") as dst,
    ):
        writer = csv.writer(dst)
        writer.writerow(["message", "stars"])
        for row in csv.DictReader(src):
            rating = row["rating"]
            if rating in counts and counts[rating] < PER_CLASS:
                counts[rating] += 1
                writer.writerow([row["review"], rating])
            if min(counts.values()) >= PER_CLASS:
                break
    return out


def _study(tmp: Path, data: Path, **data_changes: object) -> Path:
    return write_study(
        tmp,
        name="stars",
        task="text_classification",
        seed=3,
        data={
            "path": str(data),
            "text_column": "message",
            "label_column": "stars",
            "max_features": 2000,
            "cache_dir": str(tmp / "cache"),
            **data_changes,
        },
        training={"epochs": 2},
        search={
            "n_trials": 2,
            "sampler": {"name": "random"},
            "pruner": {"name": "none"},
        },
        space={
            "hidden_size": {"low": 8, "high": 16},
            "num_layers": 1,
            "learning_rate": {"low": 3e-3, "high": 1e-2, "log": True},
            "dropout_rate": 0.0,
            "sequence_length": 60,
            "batch_size": 32,
        },
    )


@pytest.mark.slow
def test_search_export_train_report_on_four_classes_and_other_columns(
    ratings_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study_file = _study(tmp_path, ratings_csv)
    storage = f"sqlite:///{tmp_path / 'stars.db'}"
    assert main(["search", str(study_file), "--storage", storage]) == 0
    study = optuna.load_study(study_name="stars", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert study.metric_names == ["val_accuracy"]
    assert "best: trial" in capsys.readouterr().out

    best_yaml = tmp_path / "best.yaml"
    assert (
        main(["export-best", "--study-name", "stars", "--storage", storage, "-o", str(best_yaml)])
        == 0
    )
    exported = load_spec(best_yaml)
    assert (exported.data.text_column, exported.data.label_column) == ("message", "stars")

    out_dir = tmp_path / "run"
    assert main(["train", str(best_yaml), "--out", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    assert "4 classes" in printed and "Majority-class baseline" in printed
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["class_names"] == list(RATINGS)  # numeric order, as the file's labels
    matrix = metrics["confusion_matrix"]
    assert len(matrix) == 4 and all(len(row) == 4 for row in matrix)
    # No split column: a stratified 20% of each class is the test split (12 of 60).
    assert [sum(row) for row in matrix] == [12, 12, 12, 12] and metrics["test_size"] == 48
    assert metrics["accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(4)) / 48)
    for key in ("precision_macro", "recall_macro", "f1_macro", "roc_auc", "cross_entropy"):
        assert isinstance(metrics[key], float), key
    assert set(metrics["per_class"]) == set(RATINGS)
    assert set(metrics["roc_curves"]) == set(RATINGS)
    assert metrics["classification_report"]["10"]["support"] == 12
    # Balanced classes: the majority-class baseline scores 1/4.
    assert metrics["baseline"]["accuracy"] == pytest.approx(0.25)
    assert metrics["beats_baseline"] == (metrics["accuracy"] > 0.25)

    report = tmp_path / "report.html"
    args = ["report", "--study-name", "stars", "--storage", storage]
    assert main([*args, "--metrics", str(out_dir / "metrics.json"), "-o", str(report)]) == 0
    html = report.read_text()
    assert "ROC AUC (macro, one-vs-rest)" in html and "10 (predicted)" in html
    assert "val_accuracy" in html  # the metric's name, not "Objective 0"


@pytest.mark.parametrize(
    ("data_changes", "content", "expected"),
    [
        ({"label_column": "rating"}, None, r"data\.label_column: no column 'rating'"),
        ({"text_column": "body"}, None, r"data\.text_column: no column 'body'"),
        ({}, "message,stars\nonly,5\nhere,5\n", r"has one class only \('5'\)"),
        ({}, "message,stars\na,1\nb,1\nc,2\n", r"class '2' has a single example"),
        ({}, "message,stars\n,1\nb,1\nc,2\nd,2\n", r"line 2: column 'message'.* is empty"),
        ({}, b"message,stars\n\xff\xfe,1\n", r"not UTF-8 text at byte"),
        ({}, b"\x00\x01\x02binary", r"binary file"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_no_storage(
    ratings_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    data_changes: dict[str, str],
    content: str | bytes | None,
    expected: str,
) -> None:
    data = ratings_csv
    if content is not None:
        data = tmp_path / "bad.csv"
        data.write_bytes(content.encode() if isinstance(content, str) else content)
    study_file = _study(tmp_path, data, **data_changes)
    db = tmp_path / "bad.db"
    assert main(["search", str(study_file), "--storage", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(data) in lines[0], err
    assert re.search(expected, lines[0]), lines[0]
    assert not db.exists(), "a bad data file must not create the study's storage"
