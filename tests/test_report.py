"""The study and train report pages: every figure present, self-contained, honest about gaps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest
from _toy_study import METRIC_SECTIONS, STUDY_SECTIONS, make_toy_study, sample_metrics

from lstm_tune.cli import main
from lstm_tune.errors import ConfigError
from lstm_tune.report import load_metrics, write_study_report, write_train_report


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
    assert "TN 400" in html and "TP 450" in html and "AUC 0.92" in html


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
    html = write_train_report(sample_metrics(), tmp_path / "train.html").read_text("utf-8")
    assert section_ids(html) == list(METRIC_SECTIONS)
    assert "<th>roc_auc</th><td>0.92</td>" in html
    assert "Classification report" in html


def test_load_metrics_names_what_is_missing(tmp_path: Path) -> None:
    good = tmp_path / "metrics.json"
    good.write_text(json.dumps(sample_metrics()))
    assert load_metrics(good)["roc_auc"] == 0.92
    bad = tmp_path / "bad.json"
    partial = sample_metrics()
    del partial["roc_curve"]
    bad.write_text(json.dumps(partial))
    with pytest.raises(ConfigError, match="lack roc_curve; expected keys: accuracy"):
        load_metrics(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_metrics(tmp_path / "nope.json")


def test_train_report_takes_the_metrics_evaluate_computes(tmp_path: Path) -> None:
    import numpy as np

    from lstm_tune.evaluate import binary_metrics

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    probabilities = np.clip(labels * 0.6 + rng.random(200) * 0.5, 0, 1)
    metrics = binary_metrics(labels, probabilities)
    html = write_train_report(metrics, tmp_path / "t.html").read_text("utf-8")
    assert section_ids(html) == list(METRIC_SECTIONS)
    tn, fp = metrics["confusion_matrix"][0]
    assert f"TN {tn}" in html and f"FP {fp}" in html


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
