"""Drawing the figure kinds: every kind renders, strings are HTML-escaped, numbers are
formatted in one place, a page places several figures in one section, and each task's
terminal summary is the lines ``lstm-tune train`` has always printed."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from typing import Any

import pytest

import lstm_tune.tasks
from lstm_tune.figures import (
    ConfusionMatrix,
    Curve,
    Curves,
    ForecastPanel,
    ForecastPlot,
    Report,
    Row,
    Sample,
    Samples,
    Section,
    Table,
    Text,
)
from lstm_tune.results import draw
from lstm_tune.results.report import build_train_report, summary_text
from lstm_tune.tasks.text_classification.task import TextClassification
from tests.helpers.toy_study import sample_metrics

# --------------------------------------------------------------------------- each kind


def test_numbers_are_formatted_in_one_place_and_fields_may_ask_for_another_format() -> None:
    assert (draw.fmt(0.5), draw.fmt(None), draw.fmt(3), draw.fmt("x")) == ("0.5000", "", "3", "x")
    text = Text("{} and {:.2f}, [{}] [{:.3f}], {:>3}, {}", (1 / 3, 2 / 3, None, None, 7, "{0}"))
    # Data goes in the values, so braces in it are text, never a field.
    assert draw.sentence(text) == "0.3333 and 0.67, [] [],   7, {0}"


def test_a_table_escapes_every_string_and_formats_its_cells() -> None:
    table = Table(
        ("model", "baseline: <b>&"),
        (Row("F1 <macro>", (0.5, None)), Row("n", (12, "a'b"))),
        title="By <target>",
    )
    assert draw.html_part(table) == (
        '<h3>By &lt;target&gt;</h3><table class="data"><thead><tr><th></th><th>model</th>'
        "<th>baseline: &lt;b&gt;&amp;</th></tr></thead><tbody><tr><th>F1 &lt;macro&gt;</th>"
        "<td>0.5000</td><td></td></tr><tr><th>n</th><td>12</td><td>a&#x27;b</td></tr>"
        "</tbody></table>"
    )


def test_sentences_and_warnings_in_html_and_in_the_terminal() -> None:
    note = Text("{} rows of {}", (3, "<x>"))
    warning = Text("the model does not beat {}.", ("a & b",), warning=True)
    assert draw.html_part(note) == "<p>3 rows of &lt;x&gt;</p>"
    assert draw.html_part(warning) == (
        '<p class="warning"><strong>Warning:</strong> the model does not beat a &amp; b.</p>'
    )
    assert draw.terminal(note) == "3 rows of <x>"
    assert draw.terminal(warning) == "Warning: the model does not beat a & b."


def test_samples_show_the_prompt_in_bold_escaped_and_follow_it_in_the_terminal() -> None:
    samples = Samples((Sample("<p>rompt ", "& text", 0.8, 5), Sample("b", "c", 1.0, 6)))
    assert draw.html_part(samples) == (
        '<p>temperature 0.8, seed 5</p><pre class="sample"><b>&lt;p&gt;rompt </b>&amp; text</pre>'
        '<p>temperature 1.0, seed 6</p><pre class="sample"><b>b</b>c</pre>'
    )
    assert draw.terminal(samples) == (
        "--- sample (temperature 0.8, seed 5) ---\n<p>rompt & text\n"
        "--- sample (temperature 1.0, seed 6) ---\nbc"
    )


def test_a_confusion_matrix_is_a_labelled_heatmap_and_one_terminal_line() -> None:
    matrix = ConfusionMatrix(((5, 1), (2, 7)), ("cat", "dog"))
    figure = draw.plotly_figure(matrix)
    assert figure is not None
    heatmap = figure.data[0]
    assert heatmap.type == "heatmap" and [list(r) for r in heatmap.z] == [[5, 1], [2, 7]]
    assert list(heatmap.x) == ["cat (predicted)", "dog (predicted)"]
    assert list(heatmap.y) == ["cat (true)", "dog (true)"]
    assert [list(r) for r in heatmap.text] == [["5", "1"], ["2", "7"]]
    assert figure.layout.yaxis.autorange == "reversed"
    assert draw.terminal(matrix) == (
        "Confusion matrix (rows true, columns predicted): [[5, 1], [2, 7]]"
    )


def test_curves_draw_reference_lines_behind_dashed_and_mark_points_when_asked() -> None:
    model = Curve(Text("model (AUC {})", (0.91234,)), (0.0, 0.5, 1.0), (0.0, 0.8, 1.0))
    chance = Curve("chance", (0, 1), (0, 1), reference=True)
    curves = Curves(
        (model, chance), "fpr", "tpr", markers=True, x_range=(0, 1), y_range=(0, 1.02), square=True
    )
    figure = draw.html_part(curves)
    assert not isinstance(figure, str)
    behind, line = figure.data
    assert (behind.name, behind.line.dash, behind.mode) == ("chance", "dash", "lines")
    assert (line.name, line.mode, list(line.y)) == (
        "model (AUC 0.9123)",
        "lines+markers",
        [0, 0.8, 1],
    )
    assert figure.layout.xaxis.title.text == "fpr" and list(figure.layout.yaxis.range) == [0, 1.02]
    assert figure.layout.width == draw.SQUARE_WIDTH_PX
    plain = draw.plotly_figure(Curves((Curve("a", (1,), (2,)),), "x", "y"))
    assert plain is not None and plain.data[0].mode == "lines" and plain.layout.width is None


def test_a_forecast_plot_has_one_panel_per_target_and_one_legend() -> None:
    plot = ForecastPlot(
        ("t1", "t2"),
        (
            ForecastPanel("OT", (1, 2), (1.5, 2.5), (1, 1)),
            ForecastPanel("HULL", (3, 4), (3, 4), (3, 3)),
        ),
        baseline_name="naive",
    )
    figure = draw.plotly_figure(plot)
    assert figure is not None
    assert [t.name for t in figure.data] == ["truth", "forecast", "naive"] * 2
    assert [t.showlegend for t in figure.data] == [True] * 3 + [False] * 3
    assert [a.text for a in figure.layout.annotations] == ["OT", "HULL"]
    assert figure.data[5].line.dash == "dot" and list(figure.data[3].y) == [3, 4]
    assert figure.layout.height == 2 * draw.FORECAST_PANEL_PX


def test_the_terminal_aligns_tables_like_the_classification_report_and_refuses_plots() -> None:
    table = Table(
        ("precision", "support"), (Row("a very long class", (0.5, 12)), Row("b", (None, 3)))
    )
    assert draw.terminal(table).splitlines() == [
        "             precision   support",
        "a very long     0.5000        12",
        "           b                   3",
    ]
    plot = ForecastPlot(("t",), (ForecastPanel("x", (1,), (1,), (1,)),), "naive")
    with pytest.raises(TypeError, match="a terminal summary cannot show a ForecastPlot"):
        draw.terminal(plot)
    assert draw.summary((Text("a"), Samples(()), Text("b"))) == "a\nb"


# --------------------------------------------------------------------------- a page


class GivenFigures(TextClassification):
    """A task whose report is whatever the metrics carry (for drawing a page of anything)."""

    name = "test_given_figures"
    aliases = ()

    def report(self, metrics: Mapping[str, Any]) -> Report:
        report = metrics["report"]
        assert isinstance(report, Report)
        return report


def test_a_section_of_several_figures_gets_a_div_per_plot_and_a_wrapper_per_html_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lstm_tune.tasks.all_tasks()
    monkeypatch.setitem(lstm_tune.tasks._REGISTRY, GivenFigures.name, GivenFigures())
    matrix = ConfusionMatrix(((1, 0), (0, 1)), ("a", "b"))
    section = Section(
        "mixed",
        "Mixed <one>",
        (Text("first"), Table(("x",), (Row("y", (1.0,)),)), matrix, Text("between"), matrix),
        caption="c & d",
    )
    page = build_train_report({"task": GivenFigures.name, "report": Report((section,), ())})
    body = page[page.index('<section id="mixed">') :]
    assert body.startswith('<section id="mixed"><h2>Mixed &lt;one&gt;</h2>')
    assert '<p class="caption">c &amp; d</p>' in body
    order = re.findall(r'<div class="table-wrap">|id="(mixed-figure(?:-2)?)"', body)
    assert order == ["", "mixed-figure", "", "mixed-figure-2"]
    assert '<div class="table-wrap"><p>first</p><table class="data">' in body


# --------------------------------------------------------------------------- summaries


def test_the_text_classification_summary_is_the_seeds_report() -> None:
    m = sample_metrics()
    report = m["classification_report"]
    assert isinstance(report, dict)
    rows = [
        f"{name:>12} {report[name]['precision']:>9.4f} {report[name]['recall']:>9.4f} "
        f"{report[name]['f1-score']:>9.4f} {int(report[name]['support']):>9d}"
        for name in ("negative", "positive", "macro avg", "weighted avg")
    ]
    baseline = m["baseline"]
    assert isinstance(baseline, dict)
    assert summary_text(m).splitlines() == [
        f"Test accuracy: 0.8500   macro F1: {m['f1_macro']:.4f}   ROC AUC: {m['roc_auc']:.4f}   "
        "(1000 texts, 2 classes, 2 epochs)",
        f"Majority-class baseline ('positive'): accuracy 0.5200, macro F1 "
        f"{baseline['f1_macro']:.4f}",
        "             precision    recall  f1-score   support",
        *rows,
        "Confusion matrix (rows true, columns predicted): [[400, 80], [70, 450]]",
    ]
    # A metrics.json from before baselines still gets the rest of its summary.
    del m["baseline"], m["beats_baseline"]
    assert "Majority-class" not in summary_text(m) and "Confusion matrix" in summary_text(m)


def _forecast_metrics() -> dict[str, Any]:
    steps = {"mse": [0.1, 0.125, 0.15]}
    naive = {"mse": 0.3, "mae": 0.4, "mse_original": 30.0, "mae_original": 4.0}
    return {
        "task": "forecasting",
        "mse": 0.12345,
        "mae": 0.25,
        "mse_original": 12.34567,
        "mae_original": 2.0,
        "by_horizon_step": steps,
        "per_target": {"OT": {"mse": 0.12345, "mae": 0.25, "mse_original": 12.34567}},
        "target_columns": ["OT"],
        "horizon": 3,
        "predict_change": False,
        "windows": {"fit": 800, "validation": 200, "test": 245},
        "baseline": {
            "name": "naive",
            "predicts": "repeat the last value",
            **naive,
            "by_horizon_step": {"mse": [0.2, 0.3, 0.4]},
            "per_target": {"OT": {"mse": 0.3}},
        },
        "beats_baseline": True,
        "forecast_plot": {
            "time": ["t1", "t2", "t3"],
            "series": {"OT": {"truth": [1, 2, 3], "forecast": [1, 2, 2], "naive": [1, 1, 1]}},
        },
        "epochs": 4,
    }


def test_the_forecasting_summary_and_page() -> None:
    metrics = _forecast_metrics()
    assert summary_text(metrics).splitlines() == [
        "Test MSE: 0.1235   MAE: 0.2500   (z-scored; 245 windows, horizon 3, targets OT, "
        "4 epochs)",
        "Naive repeat-last: MSE 0.3000, MAE 0.4000",
        "Original scale: MSE 12.3457, MAE 2.0000   (naive 30.0000, 4.0000)",
        "MSE at step 1: 0.1000, at step 3: 0.1500",
    ]
    page = build_train_report(metrics)
    ids = re.findall(r'<section id="([^"]+)"', page)
    assert ids == ["test-metrics", "error-by-horizon", "forecasts"]
    assert "<p>245 test windows, horizon 3, predict_change false.</p>" in page
    assert "<th>MSE (original scale)</th><td>12.3457</td><td>30.0000</td>" in page
    assert 'class="warning"' not in page
    worse = {**copy.deepcopy(metrics), "beats_baseline": False}
    assert "does not beat the naive repeat-last forecast on test MSE." in build_train_report(worse)


def _language_metrics(level: str) -> dict[str, Any]:
    def scores(nats: float) -> dict[str, float]:
        out = {"cross_entropy": nats, "perplexity": math.exp(nats)}
        if level == "char":
            out["bits_per_char"] = nats / math.log(2)
        return out

    return {
        "task": "language_model",
        **scores(1.5),
        "baseline": {"name": "unigram", "predicts": f"training-split {level} frequencies"}
        | scores(3.0),
        "validation": scores(1.6),
        "beats_baseline": True,
        "level": level,
        "vocab_size": 60,
        "test_is_validation": level == "word",
        "predicted_tokens": 3000,
        "samples": [{"prompt": "ROMEO:\n", "text": "<what> & so", "temperature": 0.8, "seed": 5}],
        "epochs": 2,
    }


def test_the_language_model_summary_and_page() -> None:
    assert summary_text(_language_metrics("char")).splitlines() == [
        "Test split: cross-entropy 1.5000 nats/char   perplexity 4.482   bits/char 2.1640   "
        "(3000 chars predicted, vocabulary 60, 2 epochs)",
        "Unigram baseline (training-split char frequencies): cross-entropy 3.0000 nats/char   "
        "perplexity 20.086   bits/char 4.3281",
        "Validation: cross-entropy 1.6000 nats/char   perplexity 4.953   bits/char 2.3083",
        "--- sample (temperature 0.8, seed 5) ---",
        "ROMEO:",
        "<what> & so",
    ]
    words = summary_text(_language_metrics("word")).splitlines()
    assert words[0].startswith("Test validation split (no test_split): cross-entropy 1.5000 ")
    assert "bits/char" not in "".join(words)
    page = build_train_report(_language_metrics("char"))
    assert re.findall(r'<section id="([^"]+)"', page) == ["test-metrics", "samples"]
    assert "<b>ROMEO:\n</b>&lt;what&gt; &amp; so</pre>" in page
    assert "<th>model, test split</th>" in page and "<th>bits per character</th>" in page
