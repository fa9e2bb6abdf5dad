"""Self-contained HTML reports: one page for a study, one for a trained model's test metrics.

Each page carries plotly.js inline, so it opens offline, from a file, on any machine. Every
figure sits in a ``<section>`` whose id names it (``optimization-history``,
``intermediate-values``, ``param-importances``, ``parallel-coordinates``, ``trials-table``,
and the sections of the study's task, e.g. ``test-metrics``, ``confusion-matrix``,
``roc-curve``) so a reader, or a test, can find it. The test-metric sections are the figures
of the task named by ``task`` in ``metrics.json``
(:meth:`lstm_tune.tasks.base.Task.report`), drawn by :mod:`lstm_tune.results.draw`, which
also draws the terminal summary (:func:`summary_text`).
"""

from __future__ import annotations

import datetime as _dt
import html
import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState
from plotly.offline import get_plotlyjs

from lstm_tune.errors import ConfigError, LstmTuneError, StorageError
from lstm_tune.figures import Report
from lstm_tune.results import draw
from lstm_tune.results.dashboard import require_existing_sqlite
from lstm_tune.storages import open_storage, redact_url
from lstm_tune.tasks import get_task

__all__ = [
    "build_study_report",
    "build_train_report",
    "load_metrics",
    "load_study",
    "metrics_report",
    "summary_text",
    "write_study_report",
    "write_train_report",
]

# metrics.json files written before tasks existed name none; they are text classification.
DEFAULT_METRICS_TASK = "text_classification"
FIGURE_HEIGHT_PX = 440  # tall enough for parallel coordinates' six axes to stay readable
COLOURS = {"complete": "#1f77b4", "pruned": "#ff7f0e", "pruned_at": "#d62728", "best": "#2ca02c"}


@dataclass(frozen=True)
class _Section:
    """One titled section of a page, found by ``id``: plotly figures and HTML, in order."""

    id: str
    title: str
    parts: tuple[go.Figure | str, ...]
    caption: str = ""


def _html_section(section_id: str, title: str, html_text: str) -> _Section:
    return _Section(section_id, title, (html_text,))


# --------------------------------------------------------------------------- study report


def load_study(storage_url: str, study_name: str) -> optuna.Study:
    """Load ``study_name`` from ``storage_url``; the error lists the studies that do exist."""
    require_existing_sqlite(storage_url)
    storage = open_storage(storage_url)
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise StorageError(
            f"no study named {study_name!r} in {redact_url(storage_url)}; studies there: "
            + (", ".join(repr(n) for n in names) if names else "none")
        ) from None


def build_study_report(study: optuna.Study, *, metrics: Mapping[str, Any] | None = None) -> str:
    """Return the study report page as one HTML string (figures, trials table, test metrics)."""
    if len(study.directions) != 1:
        raise ConfigError(
            f"study {study.study_name!r} has {len(study.directions)} objectives; "
            f"the report supports single-objective studies only"
        )
    trials = study.get_trials(deepcopy=False)
    sections = [
        _optimization_history(study, trials),
        _intermediate_values(trials, _metric_name(study)),
        _param_importances(study, trials),
        _parallel_coordinates(study, trials),
        _html_section("trials-table", "Trials", _trials_table(study, trials)),
    ]
    finalists = study.user_attrs.get("lstm_tune_finalists")
    if finalists:
        sections.append(
            _html_section("finalists", "Finalists re-validated", _finalists(finalists))
        )
    if metrics is not None:
        sections.extend(_metric_sections(metrics))
    return _page(f"lstm-tune report: {study.study_name}", _study_summary(study, trials), sections)


def write_study_report(
    study: optuna.Study, out_path: str | Path, *, metrics: Mapping[str, Any] | None = None
) -> Path:
    """Write the study report to ``out_path`` (parent folders created) and return the path."""
    return _write(out_path, build_study_report(study, metrics=metrics))


def _study_summary(study: optuna.Study, trials: Sequence[FrozenTrial]) -> str:
    counts = {state.name.lower(): 0 for state in TrialState}
    for t in trials:
        counts[t.state.name.lower()] += 1
    parts = [
        f"<p><b>Study</b> <code>{_e(study.study_name)}</code> · direction "
        f"<b>{_e(study.direction.name.lower())}</b> · {len(trials)} trials "
        + ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        + "</p>"
    ]
    best = _best_trial(study)
    if best is not None:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items())
        parts.append(
            f"<p><b>Best</b>: trial {best.number}, value <b>{_fmt(best.value)}</b>"
            f" · {_e(params)}</p>"
        )
    else:
        parts.append("<p>No trial has completed yet.</p>")
    return "\n".join(parts)


def _best_trial(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # optuna's way of saying: no completed trial
        return None


def _optuna_section(
    section_id: str, title: str, ready: bool, plot: Callable[[], go.Figure], caption: str
) -> _Section:
    """Optuna's ``plot()`` of the study, or a notice when ``ready`` is False."""
    if not ready:
        return _html_section(section_id, title, _notice("No completed trials yet."))
    return _Section(section_id, title, (plot(),), caption)


def _optimization_history(study: optuna.Study, trials: Sequence[FrozenTrial]) -> _Section:
    return _optuna_section(
        "optimization-history",
        "Optimization history",
        any(t.state == TrialState.COMPLETE for t in trials),
        lambda: optuna.visualization.plot_optimization_history(study),
        "Objective value of each completed trial and the best value so far.",
    )


def _metric_name(study: optuna.Study) -> str:
    """The objective's name as the study records it (optuna's metric names), if it does."""
    names = study.metric_names
    return names[0] if names else "objective value"


def _intermediate_values(trials: Sequence[FrozenTrial], metric: str) -> _Section:
    fig = go.Figure()
    shown: set[str] = set()
    pruned_x: list[int] = []
    pruned_y: list[float] = []
    pruned_text: list[str] = []
    for t in trials:
        if not t.intermediate_values:
            continue
        steps = sorted(t.intermediate_values)
        values = [t.intermediate_values[s] for s in steps]
        kind = "pruned" if t.state == TrialState.PRUNED else "complete"
        if t.state not in (TrialState.PRUNED, TrialState.COMPLETE):
            kind = t.state.name.lower()
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=values,
                mode="lines+markers",
                name=kind,
                legendgroup=kind,
                showlegend=kind not in shown,
                line={
                    "color": COLOURS.get(kind, "#7f7f7f"),
                    "dash": "dot" if kind == "pruned" else "solid",
                    "width": 1.5,
                },
                marker={"size": 4},
                hovertemplate=f"trial {t.number} ({kind})<br>step %{{x}}: %{{y:.4f}}"
                "<extra></extra>",
            )
        )
        shown.add(kind)
        if t.state == TrialState.PRUNED:
            pruned_x.append(steps[-1])
            pruned_y.append(values[-1])
            pruned_text.append(f"trial {t.number} pruned after step {steps[-1]}")
    if pruned_x:
        fig.add_trace(
            go.Scatter(
                x=pruned_x,
                y=pruned_y,
                mode="markers",
                name="pruned here",
                marker={"symbol": "x", "size": 11, "color": COLOURS["pruned_at"]},
                text=pruned_text,
                hovertemplate="%{text}<extra></extra>",
            )
        )
    title = "Intermediate values"
    if not fig.data:
        return _html_section("intermediate-values", title, _notice("No trial reported values."))
    fig.update_layout(
        xaxis_title="step (epoch index, or checkpoint with training.report_every)",
        yaxis_title=metric,
        legend_title="trial",
    )
    return _Section(
        "intermediate-values",
        title,
        (fig,),
        caption=f"{metric} reported to the pruner at each step (each epoch, or each "
        "checkpoint of training.report_every examples); a red × marks where a pruned trial "
        "stopped.",
    )


def _param_importances(study: optuna.Study, trials: Sequence[FrozenTrial]) -> _Section:
    title = "Parameter importances"
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # Importance needs at least two completed trials whose values differ to compare anything.
    if len(complete) < 2 or len({t.value for t in complete}) < 2:
        return _html_section(
            "param-importances",
            title,
            _notice("Needs at least two completed trials with different values."),
        )
    try:
        fig = optuna.visualization.plot_param_importances(study)
    except (ValueError, RuntimeError) as exc:  # e.g. every param fixed: nothing to rank
        return _html_section("param-importances", title, _notice(f"Not available: {exc}"))
    return _Section(
        "param-importances",
        title,
        (fig,),
        caption="How much each hyperparameter explains of the objective (Optuna's default "
        "importance evaluator, completed trials only).",
    )


def _parallel_coordinates(study: optuna.Study, trials: Sequence[FrozenTrial]) -> _Section:
    return _optuna_section(
        "parallel-coordinates",
        "Parallel coordinates",
        any(t.state == TrialState.COMPLETE and t.params for t in trials),
        lambda: optuna.visualization.plot_parallel_coordinate(study),
        "Each line is a completed trial: its hyperparameters and objective value.",
    )


def _trials_table(study: optuna.Study, trials: Sequence[FrozenTrial]) -> str:
    param_names = sorted({name for t in trials for name in t.params})
    best = _best_trial(study)
    head = ["#", "state", "value", *param_names, "best epoch", "epochs", "s/epoch", "params"]
    rows = []
    for t in trials:
        secs = t.user_attrs.get("seconds_per_epoch") or []
        epochs = len(t.intermediate_values) or len(secs)
        cells = [
            str(t.number),
            t.state.name.lower(),
            _fmt(t.value),
            *(_fmt(t.params.get(name)) for name in param_names),
            _fmt(t.user_attrs.get("best_epoch")),
            str(epochs) if epochs else "",
            _fmt(sum(secs) / len(secs)) if secs else "",
            _fmt(t.user_attrs.get("param_count")),
        ]
        cls = ' class="best"' if best is not None and t.number == best.number else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    if not rows:
        return _notice("The study has no trials.")
    return (
        '<table class="data"><thead><tr>'
        + "".join(f"<th>{_e(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "\n".join(rows)
        + "</tbody></table>"
    )


def _finalists(finalists: Sequence[Mapping[str, Any]]) -> str:
    """The table `lstm-tune finalize` leaves: each finalist's search value and re-runs."""
    head = ["trial", "search value", "re-validated mean", "std", "seeds", "values", "epochs"]
    rows = [
        [
            str(f["trial_number"]),
            _fmt(f["trial_value"]),
            _fmt(f["mean"]),
            _fmt(f["std"]),
            str(len(f["values"])),
            ", ".join(_fmt(v) for v in f["values"]),
            str(f["epochs"]),
        ]
        for f in finalists
    ]
    return (
        '<table class="data"><thead><tr>'
        + "".join(f"<th>{_e(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
        + "</tbody></table>"
    )


# --------------------------------------------------------------------------- train report


def build_train_report(metrics: Mapping[str, Any], *, title: str = "Test-set report") -> str:
    """Return the page for one trained model's test metrics as an HTML string."""
    return _page(f"lstm-tune: {title}", "", _metric_sections(metrics))


def write_train_report(
    metrics: Mapping[str, Any], out_path: str | Path, *, title: str = "Test-set report"
) -> Path:
    """Write the test-metrics page (the sections of the metrics' task) and return its path."""
    return _write(out_path, build_train_report(metrics, title=title))


def load_metrics(path: str | Path) -> dict[str, Any]:
    """Read a ``metrics.json`` written by ``lstm-tune train`` and check it has what we draw."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"metrics file {str(p)!r} does not exist") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"metrics file {str(p)!r} is not readable JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            f"metrics file {str(p)!r} must hold a JSON object, got {type(raw).__name__}"
        )
    _check_metrics(raw, where=str(p))
    return raw


def _check_metrics(metrics: Mapping[str, Any], *, where: str) -> None:
    """Draw the metrics once to find what is missing; name it in one line."""
    try:
        _metric_sections(metrics)
    except KeyError as exc:
        raise ConfigError(
            f"metrics {where!r} lack {exc.args[0]!r}; expected a metrics.json written by "
            f"`lstm-tune train` of this version"
        ) from None
    except (TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"metrics {where!r} are malformed: {exc}") from None


def metrics_report(metrics: Mapping[str, Any]) -> Report:
    """The figures of ``metrics``, from the task that wrote them (``task`` in
    ``metrics.json``; files written before tasks existed name none: text classification)."""
    task_name = metrics.get("task", DEFAULT_METRICS_TASK)
    try:
        task = get_task(str(task_name))
    except KeyError:
        raise ConfigError(f"metrics name an unknown task {task_name!r}") from None
    return task.report(metrics)


def summary_text(metrics: Mapping[str, Any]) -> str:
    """The terminal summary of ``metrics``."""
    return draw.summary(metrics_report(metrics).summary)


def _metric_sections(metrics: Mapping[str, Any]) -> list[_Section]:
    return [
        _Section(s.id, s.title, tuple(draw.html_part(f) for f in s.figures), s.caption)
        for s in metrics_report(metrics).sections
    ]


# --------------------------------------------------------------------------- page assembly

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
section { border-top: 1px solid #ddd; padding-top: .5rem; }
.caption, .notice { color: #555; font-size: .9rem; }
table.data { border-collapse: collapse; font-size: .85rem; }
table.data td, table.data th { border: 1px solid #ddd; padding: .2rem .5rem; text-align: right; }
table.data th { background: #f4f4f4; }
tr.best td { background: #e6f4ea; font-weight: 600; }
.table-wrap { overflow-x: auto; max-height: 36rem; }
"""


def _section_body(section: _Section) -> str:
    """Each plotly figure in its own ``div`` (``<id>-figure``, then ``<id>-figure-2``, ...),
    each run of HTML parts in one scrolling wrapper."""
    body: list[str] = []
    figures = 0
    for is_html, run in itertools.groupby(section.parts, key=lambda part: isinstance(part, str)):
        if is_html:
            body.append(f'<div class="table-wrap">{"".join(map(str, run))}</div>')
            continue
        for figure in run:
            assert isinstance(figure, go.Figure)
            figures += 1
            figure.update_layout(template="plotly_white", margin={"t": 30})
            div_id = f"{section.id}-figure" + (f"-{figures}" if figures > 1 else "")
            body.append(
                figure.to_html(
                    full_html=False,
                    include_plotlyjs=False,
                    div_id=div_id,
                    default_height=f"{FIGURE_HEIGHT_PX}px",
                    config={"displaylogo": False, "responsive": True},
                )
            )
    return "".join(body)


def _page(title: str, summary: str, sections: Sequence[_Section]) -> str:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = []
    for s in sections:
        caption = f'<p class="caption">{_e(s.caption)}</p>' if s.caption else ""
        body.append(
            f'<section id="{s.id}"><h2>{_e(s.title)}</h2>{caption}{_section_body(s)}</section>'
        )
    nav = " · ".join(f'<a href="#{s.id}">{_e(s.title)}</a>' for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f'<h1>{_e(title)}</h1>{summary}<p class="caption">Generated {stamp}. {nav}</p>'
        + "\n".join(body)
        + "</body></html>\n"
    )


def _write(out_path: str | Path, text: str) -> Path:
    path = Path(out_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise LstmTuneError(f"cannot write report to {str(path)!r}: {exc}") from exc
    return path


def _notice(text: str) -> str:
    return f'<p class="notice">{_e(text)}</p>'


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _fmt(value: Any) -> str:
    """Short human form: floats to 4 significant digits, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)
