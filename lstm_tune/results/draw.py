"""Draws the figure kinds of :mod:`lstm_tune.figures`: plotly figures, escaped HTML, and text
for the terminal. The one place a task's test report becomes something to look at.

Values are formatted here and only here: a float to 4 decimals, None as nothing, anything
else as written (a :class:`~lstm_tune.figures.Text` field may ask for another format). Every
string from the data is HTML-escaped. Plotly draws the confusion matrix, curves and forecast
plot; tables, sentences and samples are HTML (and, but for the plots, terminal text).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from lstm_tune.figures import (
    ConfusionMatrix,
    Curves,
    Figure,
    ForecastPlot,
    Samples,
    Table,
    Text,
    Value,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["fmt", "html_part", "plotly_figure", "sentence", "summary", "terminal"]

FLOAT_DIGITS = 4
# A terminal table: the labels' column right-aligned to this width (longer labels cut), each
# cell right-aligned to the next width after a space, as scikit-learn's classification report.
LABEL_WIDTH = 12
CELL_WIDTH = 9
REFERENCE_LINE = {"dash": "dash", "color": "#999"}
FORECAST_LINES = {"truth": {"color": "#222"}, "forecast": {"color": "#1f77b4"}}
BASELINE_FORECAST_LINE = {"color": "#999", "dash": "dot"}
SQUARE_WIDTH_PX = 640
FORECAST_PANEL_PX = 260
MIN_FIGURE_PX = 440


def fmt(value: Value) -> str:
    """The default text of a value: a float to 4 decimals, None as nothing, else ``str``."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{FLOAT_DIGITS}f}"
    return str(value)


class _Field:
    """A value in :meth:`str.format`: a bare ``{}`` gets :func:`fmt`, a spec formats it."""

    __slots__ = ("value",)

    def __init__(self, value: Value) -> None:
        self.value = value

    def __format__(self, spec: str) -> str:
        if not spec or self.value is None:
            return fmt(self.value)
        return format(self.value, spec)


def sentence(text: Text) -> str:
    """``text`` with its fields filled, plain (not escaped)."""
    return text.template.format(*(_Field(value) for value in text.values))


# --------------------------------------------------------------------------- HTML


def _e(value: Value) -> str:
    return html.escape(fmt(value), quote=True)


def _table_html(table: Table) -> str:
    head = "".join(f"<th>{_e(column)}</th>" for column in table.columns)
    body = "".join(
        f"<tr><th>{_e(row.label)}</th>" + "".join(f"<td>{_e(c)}</td>" for c in row.cells) + "</tr>"
        for row in table.rows
    )
    title = f"<h3>{_e(table.title)}</h3>" if table.title else ""
    return (
        f'{title}<table class="data"><thead><tr><th></th>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _text_html(text: Text) -> str:
    if text.warning:
        return f'<p class="warning"><strong>Warning:</strong> {_e(sentence(text))}</p>'
    return f"<p>{_e(sentence(text))}</p>"


def _samples_html(samples: Samples) -> str:
    return "".join(
        f"<p>temperature {_e(str(s.temperature))}, seed {_e(s.seed)}</p>"
        f'<pre class="sample"><b>{_e(s.prompt)}</b>{_e(s.text)}</pre>'
        for s in samples.samples
    )


# --------------------------------------------------------------------------- plotly


def _confusion_figure(figure: ConfusionMatrix) -> go.Figure:
    import plotly.graph_objects as go

    names = figure.class_names
    matrix = [list(row) for row in figure.matrix]
    plot = go.Figure(
        go.Heatmap(
            z=matrix,
            x=[f"{c} (predicted)" for c in names],
            y=[f"{c} (true)" for c in names],
            text=[[str(v) for v in row] for row in matrix],
            texttemplate="%{text}",
            colorscale="Blues",
            hovertemplate="%{y} / %{x}: %{z}<extra></extra>",
        )
    )
    size = 360 + 40 * len(names)
    plot.update_layout(yaxis={"autorange": "reversed"}, width=size + 120, height=size)
    return plot


def _curves_figure(figure: Curves) -> go.Figure:
    import plotly.graph_objects as go

    plot = go.Figure()
    ordered = sorted(figure.curves, key=lambda c: not c.reference)  # references behind
    for curve in ordered:
        plot.add_trace(
            go.Scatter(
                x=list(curve.x),
                y=list(curve.y),
                mode="lines+markers" if figure.markers and not curve.reference else "lines",
                name=curve.name if isinstance(curve.name, str) else sentence(curve.name),
                **({"line": REFERENCE_LINE} if curve.reference else {}),
            )
        )
    layout: dict[str, object] = {"xaxis_title": figure.x_title, "yaxis_title": figure.y_title}
    if figure.x_range is not None:
        layout["xaxis"] = {"range": list(figure.x_range)}
    if figure.y_range is not None:
        layout["yaxis"] = {"range": list(figure.y_range)}
    if figure.square:
        layout["width"] = SQUARE_WIDTH_PX
    plot.update_layout(**layout)
    return plot


def _forecast_figure(figure: ForecastPlot) -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = [panel.name for panel in figure.panels]
    plot = make_subplots(rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names)
    for row, panel in enumerate(figure.panels, start=1):
        lines = (
            ("truth", panel.truth, FORECAST_LINES["truth"]),
            ("forecast", panel.forecast, FORECAST_LINES["forecast"]),
            (figure.baseline_name, panel.baseline, BASELINE_FORECAST_LINE),
        )
        for name, values, style in lines:
            plot.add_trace(
                go.Scatter(
                    x=list(figure.time),
                    y=list(values),
                    mode="lines",
                    name=name,
                    line=style,
                    legendgroup=name,
                    showlegend=row == 1,
                ),
                row=row,
                col=1,
            )
    plot.update_layout(height=max(MIN_FIGURE_PX, FORECAST_PANEL_PX * len(names)))
    return plot


# --------------------------------------------------------------------------- per kind


# The drawing of each kind: plotted kinds by plotly, the others as HTML.
_PLOTS: dict[type, Callable[[Any], go.Figure]] = {
    ConfusionMatrix: _confusion_figure,
    Curves: _curves_figure,
    ForecastPlot: _forecast_figure,
}
_HTML: dict[type, Callable[[Any], str]] = {
    Table: _table_html,
    Text: _text_html,
    Samples: _samples_html,
}


def plotly_figure(figure: Figure) -> go.Figure | None:
    """The plotly figure of a plotted kind (confusion matrix, curves, forecast plot), else
    None (tables, sentences and samples are HTML)."""
    plot = _PLOTS.get(type(figure))
    return None if plot is None else plot(figure)


def html_part(figure: Figure) -> go.Figure | str:
    """What the HTML page shows for ``figure``: a plotly figure, or escaped HTML."""
    if type(figure) in _PLOTS:
        return _PLOTS[type(figure)](figure)
    if type(figure) in _HTML:
        return _HTML[type(figure)](figure)
    raise TypeError(
        f"cannot draw a {type(figure).__name__}; expected one of the figure kinds of "
        f"lstm_tune.figures: {', '.join(k.__name__ for k in (*_PLOTS, *_HTML))}"
    )


def _table_text(table: Table) -> str:
    lines = [f"{table.title}:"] if table.title else []
    lines.append(f"{'':>{LABEL_WIDTH}}" + "".join(f" {c:>{CELL_WIDTH}}" for c in table.columns))
    for row in table.rows:
        label = row.label[:LABEL_WIDTH]
        cells = "".join(f" {fmt(cell):>{CELL_WIDTH}}" for cell in row.cells)
        lines.append(f"{label:>{LABEL_WIDTH}}{cells}")
    return "\n".join(lines)


def terminal(figure: Figure) -> str:
    """The terminal text of ``figure`` (a sentence, a table, a confusion matrix or samples)."""
    if isinstance(figure, Text):
        return ("Warning: " if figure.warning else "") + sentence(figure)
    if isinstance(figure, Table):
        return _table_text(figure)
    if isinstance(figure, ConfusionMatrix):
        matrix = [list(row) for row in figure.matrix]
        return f"Confusion matrix (rows true, columns predicted): {matrix}"
    if isinstance(figure, Samples):
        return "\n".join(
            f"--- sample (temperature {s.temperature}, seed {s.seed}) ---\n{s.prompt}{s.text}"
            for s in figure.samples
        )
    raise TypeError(
        f"a terminal summary cannot show a {type(figure).__name__}; expected Text, Table, "
        f"ConfusionMatrix or Samples"
    )


def summary(figures: Iterable[Figure]) -> str:
    """The terminal summary: each figure's text, one after the other (empty ones left out)."""
    return "\n".join(text for text in map(terminal, figures) if text)
