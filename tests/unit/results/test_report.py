"""The study and train report pages: every figure present, self-contained, honest about gaps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest

from lstm_tune.cli import main
from lstm_tune.errors import ConfigError
from lstm_tune.results.report import load_metrics, write_study_report, write_train_report
from tests.helpers.toy_study import METRIC_SECTIONS, STUDY_SECTIONS, make_toy_study, sample_metrics


@pytest.fixture(scope="module")
def toy_study(tmp_path_factory: pytest.TempPathFactory) -> optuna.Study:
    db = tmp_path_factory.mktemp("report") / "toy.db"
    return make_toy_study(f"sqlite:///{db}", "toy-report")


def section_ids(html: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', html)


def test_study_report_has_every_figure_and_the_test_metrics(
    toy_study: optuna.Study, tmp_path: Path
) -> None:
    out = write_study_report(toy_study, tmp_path / "sub" / "report.html", metrics=sample_metrics())
    html = out.read_text(encoding="utf-8")
    assert section_ids(html) == [*STUDY_SECTIONS, *METRIC_SECTIONS]
    for sid in (*STUDY_SECTIONS[:4], *METRIC_SECTIONS[1:]):
        assert f'id="{sid}-figure"' in html, f"{sid} has no plotly figure"
    # Self-contained: plotly.js is inline, nothing is fetched from a CDN.
    assert not re.search(r"<script[^>]*\ssrc\s*=", html)
    assert "window.Plotly" in html or "Plotly=" in html
    assert "pruned here" in html  # pruned trials are marked where they stopped
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in toy_study.trials)
    assert pruned > 0 and html.count("<td>pruned</td>") == pruned
    assert html.count('<tr class="best">') == 1
    metrics = sample_metrics()
    assert '"text":[["400","80"],["70","450"]]' in html.replace(" ", "")
    assert f"AUC {metrics['roc_auc']:.4f}" in html


def test_study_report_without_metrics_has_no_test_section(
    toy_study: optuna.Study, tmp_path: Path
) -> None:
    html = write_study_report(toy_study, tmp_path / "r.html").read_text(encoding="utf-8")
    assert section_ids(html) == list(STUDY_SECTIONS)


def test_report_of_an_empty_study_says_so_instead_of_failing(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'e.db'}", study_name="empty")
    html = write_study_report(study, tmp_path / "r.html").read_text(encoding="utf-8")
    assert section_ids(html) == list(STUDY_SECTIONS)
    assert "No completed trials yet." in html and "The study has no trials." in html


def test_train_report_shows_scores_confusion_matrix_and_roc(tmp_path: Path) -> None:
    metrics = sample_metrics()
    html = write_train_report(metrics, tmp_path / "train.html").read_text("utf-8")
    assert section_ids(html) == list(METRIC_SECTIONS)
    assert f"<th>ROC AUC</th><td>{metrics['roc_auc']:.4f}</td><td>0.5000</td>" in html
    assert "Classification report" in html
    # The majority-class baseline stands beside the model.
    assert "baseline: majority class (positive)" in html
    assert f"<th>accuracy</th><td>0.8500</td><td>{0.52:.4f}</td>" in html


def test_train_report_of_many_classes_has_an_n_by_n_matrix_and_a_curve_per_class(
    tmp_path: Path,
) -> None:
    metrics = sample_metrics(n_classes=4)
    html = write_train_report(metrics, tmp_path / "train.html").read_text("utf-8")
    assert section_ids(html) == list(METRIC_SECTIONS)
    assert len(metrics["confusion_matrix"]) == 4  # type: ignore[arg-type]
    assert all(f"class {i} (predicted)" in html for i in range(4))
    assert "ROC AUC (macro, one-vs-rest)" in html and "One-vs-rest curve per class." in html


def test_load_metrics_names_what_is_missing(tmp_path: Path) -> None:
    good = tmp_path / "metrics.json"
    good.write_text(json.dumps(sample_metrics()))
    assert load_metrics(good)["roc_auc"] == sample_metrics()["roc_auc"]
    bad = tmp_path / "bad.json"
    partial = sample_metrics()
    del partial["confusion_matrix"]
    bad.write_text(json.dumps(partial))
    with pytest.raises(ConfigError, match="lack 'confusion_matrix'; expected a metrics.json"):
        load_metrics(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_metrics(tmp_path / "nope.json")


def test_train_report_takes_the_metrics_evaluate_computes(tmp_path: Path) -> None:
    import numpy as np

    from lstm_tune.tasks.text_classification.task import classification_metrics, majority_baseline

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    positive = np.clip(labels * 0.6 + rng.random(200) * 0.5, 0, 1)
    names = ["negative", "positive"]
    metrics = classification_metrics(labels, np.stack([1 - positive, positive], 1), names)
    metrics["baseline"] = majority_baseline(labels, labels, names)
    html = write_train_report(metrics, tmp_path / "t.html").read_text("utf-8")
    assert section_ids(html) == list(METRIC_SECTIONS)
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    assert f'"text":[["{tn}","{fp}"],["{fn}","{tp}"]]' in html.replace(" ", "")


def test_report_command_names_the_studies_that_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'r.db'}"
    make_toy_study(storage, "only-this-one", n_trials=2)
    out = tmp_path / "r.html"
    assert main(["report", "--study-name", "nope", "--storage", storage, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no study named 'nope'" in err and "studies there: 'only-this-one'" in err
    assert (
        main(["report", "--study-name", "only-this-one", "--storage", storage, "-o", str(out)])
        == 0
    )
    assert "wrote" in capsys.readouterr().out and out.exists()
