"""The figure kinds a task's test report is made of: plain, frozen data, drawn elsewhere.

A task turns its test metrics into these (:meth:`lstm_tune.tasks.base.Task.report`) and never
writes HTML, plotly or terminal layout; :mod:`lstm_tune.results.draw` draws every kind, once:

:class:`Table`
    labelled rows of cells under column headers (scores beside a baseline, per-class figures);
:class:`Text`
    a sentence with numbers in it (a note, a warning, a line of the terminal summary);
:class:`ConfusionMatrix`
    counts of true against predicted classes;
:class:`Curves`
    named lines over a shared pair of axes (ROC curves, error by horizon step);
:class:`ForecastPlot`
    forecasts against the truth and a baseline, one panel per target column;
:class:`Samples`
    text a model wrote after a prompt.

A :class:`Report` holds the HTML page's :class:`Section` s and the terminal summary. Numbers
stay numbers here: the drawing formats them (floats to 4 decimals unless a :class:`Text`
field says otherwise). Imports nothing of lstm-tune's.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ConfusionMatrix",
    "Curve",
    "Curves",
    "Figure",
    "ForecastPanel",
    "ForecastPlot",
    "Report",
    "Row",
    "Sample",
    "Samples",
    "Section",
    "Table",
    "Text",
    "Value",
]

# What a table cell or a sentence's field holds; None is drawn as nothing.
Value = float | int | str | None


@dataclass(frozen=True)
class Text:
    """A sentence: ``template``'s ``{}`` fields filled with ``values`` in order.

    A field may give a format spec (``{:.3f}``); a bare ``{}`` gets the default form of its
    value. Anything read from data (a class name, a column) goes in ``values``, never in
    ``template``. ``warning`` marks it as one (the HTML page shows it as a warning).
    """

    template: str
    values: tuple[Value, ...] = ()
    warning: bool = False


@dataclass(frozen=True)
class Row:
    """One row of a :class:`Table`: its label and one cell per column."""

    label: str
    cells: tuple[Value, ...]


@dataclass(frozen=True)
class Table:
    """Rows under ``columns`` (the headers of the cells; the labels' column has none).

    ``title`` heads the table when a section holds more than one block.
    """

    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    title: str = ""


@dataclass(frozen=True)
class ConfusionMatrix:
    """``matrix[true][predicted]``: how many test examples of each class got each class."""

    matrix: tuple[tuple[int, ...], ...]
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class Curve:
    """A named line through the points (``x[i]``, ``y[i]``); a name with a number in it
    (``model (AUC 0.91)``) is a :class:`Text`.

    A ``reference`` line (chance, the diagonal) is drawn dashed and grey, behind the others.
    """

    name: str | Text
    x: tuple[float, ...]
    y: tuple[float, ...]
    reference: bool = False


@dataclass(frozen=True)
class Curves:
    """Lines over one pair of axes.

    ``markers`` marks every point (few points, e.g. one per horizon step); ``x_range`` and
    ``y_range`` fix the axes; ``square`` says both axes share a scale (rates from 0 to 1), so
    the plot is drawn narrow rather than across the page.
    """

    curves: tuple[Curve, ...]
    x_title: str
    y_title: str
    markers: bool = False
    x_range: tuple[float, float] | None = None
    y_range: tuple[float, float] | None = None
    square: bool = False


@dataclass(frozen=True)
class ForecastPanel:
    """One target column's truth, forecast and baseline forecast at the plot's times."""

    name: str
    truth: tuple[float, ...]
    forecast: tuple[float, ...]
    baseline: tuple[float, ...]


@dataclass(frozen=True)
class ForecastPlot:
    """Forecasts against the truth over ``time``, one panel per target column, the
    baseline's line named ``baseline_name``."""

    time: tuple[str, ...]
    panels: tuple[ForecastPanel, ...]
    baseline_name: str


@dataclass(frozen=True)
class Sample:
    """Text a model wrote after ``prompt``, sampled at ``temperature`` with ``seed``."""

    prompt: str
    text: str
    temperature: float
    seed: int


@dataclass(frozen=True)
class Samples:
    """Generated texts, each shown after its prompt."""

    samples: tuple[Sample, ...]


Figure = Table | Text | ConfusionMatrix | Curves | ForecastPlot | Samples


@dataclass(frozen=True)
class Section:
    """One titled section of the HTML report, found by ``id``: its figures, in order."""

    id: str
    title: str
    figures: tuple[Figure, ...]
    caption: str = ""


@dataclass(frozen=True)
class Report:
    """What a trained model's test metrics show: the HTML report's sections and the lines of
    the terminal summary (:class:`Text`, :class:`Table`, :class:`ConfusionMatrix` and
    :class:`Samples` have a terminal form)."""

    sections: tuple[Section, ...]
    summary: tuple[Figure, ...]
