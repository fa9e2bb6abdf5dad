"""Time-series forecasting: numeric columns of a CSV, ``horizon`` steps ahead, all at once.

The file's rows are time steps, sorted by ``time_column``. They split in time order into
train, validation and test rows (``split_rows`` or ``split_fractions``); every column is
z-scored with the training rows' mean and standard deviation only. A window is the
``sequence_length`` rows before a target start ``t`` (the look-back) and its targets are rows
``t .. t + horizon - 1``. A split's windows have all their targets inside the split; their
history may reach back into an earlier split (a validation window reads the last training
rows, as the literature's protocol does), never forward. The LSTM reads the window's numeric
inputs and a Dense layer outputs ``horizon x targets`` values (step-major: all targets of step
1, then of step 2, ...). The loss and the objective are the mean squared error on the
normalized scale (``val_mse``, minimised; ``val_mae`` may be chosen instead).

``predict_change`` (as NLinear normalises): the model subtracts the window's last row from
every input step and adds the targets' last values back to its output, so it learns the
change from the last value and, untrained, is close to the naive forecast.

The baseline is that naive forecast: every step of the horizon repeats the window's last value.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lstm_tune.errors import DataError
from lstm_tune.figures import (
    Curve,
    Curves,
    Figure,
    ForecastPanel,
    ForecastPlot,
    Report,
    Row,
    Section,
    Table,
    Text,
)
from lstm_tune.tasks import register
from lstm_tune.tasks.base import (
    COMMON_KNOBS,
    Options,
    State,
    Task,
    baseline_warning,
    sample_index,
)
from lstm_tune.tasks.readers import quote, read_csv_rows
from lstm_tune.training import preflight
from lstm_tune.types import Estimate, Objective, Params, Prepared

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

# Without split_rows or split_fractions: 70% train, 10% validation, 20% test (the split the
# literature uses for series other than ETT).
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)
# The report's forecast plot shows at most this many test rows per target (a month of hours).
PLOT_ROWS = 720
# ... and at most this many target columns.
PLOT_TARGETS = 8
# Longest rendering of a bad cell value in an error line.
_QUOTE_CHARS = 40


class ForecastingData(BaseModel):
    """The ``data:`` section of a forecasting study."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(
        min_length=1, description="a CSV file (optionally .gz), one row per time step"
    )
    time_column: str = Field(
        min_length=1,
        description="column of the rows' times (ISO 8601 or numbers), strictly increasing",
    )
    target_columns: tuple[str, ...] = Field(
        min_length=1, description="the numeric columns to forecast"
    )
    input_columns: tuple[str, ...] | None = Field(
        None,
        min_length=1,
        description="the numeric columns the LSTM reads; default: the targets (univariate)",
    )
    horizon: int = Field(ge=1, le=10000, description="steps ahead, all predicted at once")
    split_rows: tuple[int, int, int] | None = Field(
        None,
        description="rows of train, validation and test, in time order from the first row "
        "(rows after them are unused)",
    )
    split_fractions: tuple[float, float, float] | None = Field(
        None,
        description="shares of the rows for train, validation and test (default 0.7, 0.1, "
        "0.2); used when split_rows is not given",
    )
    predict_change: bool = Field(
        False,
        description="forecast the change from the window's last value (inputs relative to "
        "their last step, as NLinear normalises) instead of the values themselves",
    )

    @field_validator("target_columns", "input_columns")
    @classmethod
    def _distinct_names(cls, columns: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if columns is None:
            return None
        for name in columns:
            if not name:
                raise ValueError("non-empty column names")
            if columns.count(name) > 1:
                raise ValueError(f"distinct column names ({name!r} is listed twice)")
        return columns

    @field_validator("split_rows")
    @classmethod
    def _positive_rows(cls, rows: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if rows is not None and min(rows) < 1:
            raise ValueError("at least 1 row in every split")
        return rows

    @field_validator("split_fractions")
    @classmethod
    def _fractions_of_one(
        cls, shares: tuple[float, float, float] | None
    ) -> tuple[float, float, float] | None:
        if shares is None:
            return None
        if min(shares) <= 0 or sum(shares) > 1 + 1e-9:
            raise ValueError("three shares > 0 that sum to at most 1")
        return shares

    @model_validator(mode="after")
    def _consistent(self) -> ForecastingData:
        if self.split_rows is not None and self.split_fractions is not None:
            raise ValueError("split_rows or split_fractions, not both")
        if self.time_column in (*self.target_columns, *(self.input_columns or ())):
            raise ValueError(
                f"a time_column that is not also a target or input column "
                f"({self.time_column!r} is both)"
            )
        if self.predict_change:
            missing = [c for c in self.target_columns if c not in self.inputs]
            if missing:
                raise ValueError(
                    f"every target among input_columns when predict_change is true "
                    f"({missing[0]!r} is not)"
                )
        return self

    @property
    def inputs(self) -> tuple[str, ...]:
        """The columns the LSTM reads (the targets unless ``input_columns`` says otherwise)."""
        return self.input_columns or self.target_columns


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class SeriesSplit:
    """One split's windows over the shared normalized series.

    ``values`` holds every used row (``[rows, columns]``, z-scored); this split's targets are
    rows ``lo .. hi - 1``. ``starts`` fixes the target starts (a sample); otherwise they are
    every start whose window and targets fit, which depends on the window length.
    """

    name: str
    values: np.ndarray
    times: np.ndarray
    lo: int
    hi: int
    horizon: int
    inputs: tuple[int, ...]
    targets: tuple[int, ...]
    path: str
    starts: np.ndarray | None = None

    def target_starts(self, window: int) -> np.ndarray:
        """Rows where the targets of each window start, for a look-back of ``window`` rows."""
        if self.starts is not None:
            return self.starts[self.starts >= window]
        return np.arange(max(self.lo, window), self.hi - self.horizon + 1, dtype=np.int64)

    def window_problem(self, window: int) -> str | None:
        """Why a look-back of ``window`` rows leaves this split no window, or None."""
        if len(self.target_starts(window)) > 0:
            return None
        return (
            f"{self.path}: sequence_length: {window} rows of look-back plus data.horizon "
            f"{self.horizon} do not fit the {self.hi - self.lo} {self.name} rows; allowed: "
            f"sequence_length <= {self.hi - self.horizon} (or a shorter horizon or larger split)"
        )


class WindowTooLong(preflight.ConfigTooLarge):
    """A config's look-back window plus the horizon do not fit the training rows.

    A kind of :class:`~lstm_tune.training.preflight.ConfigTooLarge` so a search fails that trial
    with its reason and goes on with the next config.
    """


def _number(path: Path, line: int, column: str, field: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(
            f"{path}: line {line}: column {column!r} ({field}) is {quote(text, _QUOTE_CHARS)}; "
            f"expected a number"
        ) from None
    if not math.isfinite(value):
        raise DataError(
            f"{path}: line {line}: column {column!r} ({field}) is {quote(text, _QUOTE_CHARS)}; "
            f"expected a finite number (no NaN or infinity)"
        )
    return value


def _time_value(text: str, as_date: bool) -> float:
    if not as_date:
        return float(text)
    moment = datetime.fromisoformat(text.strip())
    # A time without a zone is read as UTC: local time would repeat an hour each autumn.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _times(path: Path, column: str, texts: Sequence[str]) -> np.ndarray:
    """Seconds (dates) or numbers of the time column; DataError on a bad or unordered value."""
    try:
        datetime.fromisoformat(texts[0].strip())
        as_date = True
    except ValueError:
        as_date = False
    values = np.empty(len(texts))
    for index, text in enumerate(texts):
        try:
            values[index] = _time_value(text, as_date)
        except (ValueError, OverflowError):
            kind = "an ISO 8601 date-time like the first row's" if as_date else "a number"
            raise DataError(
                f"{path}: line {index + 2}: column {column!r} (data.time_column) is "
                f"{quote(text, _QUOTE_CHARS)}; expected {kind}"
            ) from None
        if not math.isfinite(values[index]):
            raise DataError(
                f"{path}: line {index + 2}: column {column!r} (data.time_column) is "
                f"{quote(text, _QUOTE_CHARS)}; expected a finite number"
            )
        if index and values[index] <= values[index - 1]:
            what = "duplicates" if values[index] == values[index - 1] else "comes before"
            raise DataError(
                f"{path}: line {index + 2}: column {column!r} (data.time_column) value "
                f"{quote(text, _QUOTE_CHARS)} {what} the previous row's "
                f"{quote(texts[index - 1], _QUOTE_CHARS)}; "
                f"rows must be sorted by time, each time once"
            )
    return values


def read_series(data: ForecastingData) -> tuple[list[str], np.ndarray, list[str]]:
    """(times as written, raw values ``[rows, columns]``, column names) of the file.

    Columns are the targets then the other inputs. Raises :class:`DataError` naming the file,
    the line, the column and its field for a missing column, a non-numeric, NaN or infinite
    cell, or a time column that is not strictly increasing.
    """
    path = Path(data.path)
    columns = [*data.target_columns, *(c for c in data.inputs if c not in data.target_columns)]
    fields = {c: "data.target_columns" for c in data.target_columns}
    fields.update({c: "data.input_columns" for c in columns if c not in fields})
    required = {data.time_column: "data.time_column", **fields}
    times: list[str] = []
    rows: list[list[float]] = []
    for line, row in read_csv_rows(path, required):
        times.append(row.get(data.time_column) or "")
        rows.append(
            [_number(path, line, c, fields[c], (row.get(c) or "").strip()) for c in columns]
        )
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    _times(path, data.time_column, times)
    return times, np.asarray(rows, dtype=np.float64), columns


def split_bounds(data: ForecastingData, n_rows: int) -> tuple[int, int, int]:
    """Row counts of train, validation and test; DataError when they do not fit the file."""
    if data.split_rows is not None:
        counts = data.split_rows
        if sum(counts) > n_rows:
            raise DataError(
                f"{data.path}: data.split_rows: {list(counts)} need {sum(counts)} rows; the "
                f"file has {n_rows}"
            )
        return counts
    shares = data.split_fractions or DEFAULT_FRACTIONS
    train, validation = int(n_rows * shares[0]), int(n_rows * shares[1])
    test = min(int(n_rows * shares[2]), n_rows - train - validation)
    return train, validation, test


def _check_horizon(data: ForecastingData, counts: tuple[int, int, int]) -> None:
    field = "data.split_rows" if data.split_rows is not None else "data.split_fractions"
    needs = (data.horizon + 1, data.horizon, data.horizon)
    for name, rows, need in zip(("train", "validation", "test"), counts, needs, strict=True):
        if rows < need:
            raise DataError(
                f"{data.path}: data.horizon: {data.horizon} steps (plus at least 1 row of "
                f"look-back for training) do not fit the {rows} {name} rows ({field} "
                f"{list(counts)}); allowed: a horizon of at most "
                f"{min(counts[0] - 1, counts[1], counts[2])}"
            )


def normalize(
    raw: np.ndarray, train_rows: int, path: str, columns: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z-scored values as float32, mean, std); mean and std of the training rows only."""
    mean = raw[:train_rows].mean(axis=0)
    std = raw[:train_rows].std(axis=0)
    for index, column in enumerate(columns):
        if std[index] == 0:
            raise DataError(
                f"{path}: column {column!r} is constant ({raw[0, index]:g}) over the "
                f"{train_rows} training rows; it cannot be z-scored"
            )
    return ((raw - mean) / std).astype(np.float32), mean, std


def load_series(data: ForecastingData) -> Prepared:
    """Read, check, split and normalize the series; see the module docstring."""
    times, raw, columns = read_series(data)
    counts = split_bounds(data, len(raw))
    _check_horizon(data, counts)
    used = sum(counts)
    values, mean, std = normalize(raw[:used], counts[0], data.path, columns)
    inputs = tuple(columns.index(c) for c in data.inputs)
    targets = tuple(range(len(data.target_columns)))
    common = {
        "values": values,
        "times": np.asarray(times[:used]),
        "horizon": data.horizon,
        "inputs": inputs,
        "targets": targets,
        "path": data.path,
    }
    edges = np.cumsum((0, *counts))
    splits = [
        SeriesSplit(name=name, lo=int(edges[i]), hi=int(edges[i + 1]), **common)  # type: ignore[arg-type]
        for i, name in enumerate(("train", "validation", "test"))
    ]
    meta = {
        "columns": columns,
        "input_columns": list(data.inputs),
        "target_columns": list(data.target_columns),
        "horizon": data.horizon,
        "predict_change": data.predict_change,
        "split_rows": [int(c) for c in counts],
        "mean": {c: float(m) for c, m in zip(columns, mean, strict=True)},
        "std": {c: float(s) for c, s in zip(columns, std, strict=True)},
    }
    return Prepared(fit=splits[0], validation=splits[1], test=splits[2], meta=meta)


def check_window(split: SeriesSplit, window: int) -> None:
    """Raise :class:`DataError` when ``split`` has no window of ``window`` rows."""
    problem = split.window_problem(window)
    if problem is not None:
        raise DataError(problem)


def window_arrays(split: SeriesSplit, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window of ``split`` materialised: inputs ``[n, window, inputs]`` and targets
    ``[n, horizon, targets]`` (float32, normalized), in time order."""
    check_window(split, window)
    starts = split.target_starts(window)
    x = split.values[starts[:, None] + np.arange(-window, 0)][:, :, list(split.inputs)]
    y = split.values[starts[:, None] + np.arange(split.horizon)][:, :, list(split.targets)]
    return x, y


def last_values(split: SeriesSplit, window: int) -> np.ndarray:
    """The targets' values on each window's last row, ``[n, targets]`` (the naive forecast)."""
    starts = split.target_starts(window)
    return split.values[starts - 1][:, list(split.targets)]


def window_dataset(
    split: SeriesSplit, window: int, batch_size: int, shuffle_seed: int | None
) -> tf.data.Dataset:
    """(inputs, flat targets) batches gathered from index arrays; no window is stored."""
    import tensorflow as tf

    check_window(split, window)
    starts = split.target_starts(window).astype(np.int32)
    inputs = tf.constant(split.values[:, list(split.inputs)])
    targets = tf.constant(split.values[:, list(split.targets)])
    back = tf.range(-window, 0, dtype=tf.int32)
    ahead = tf.range(split.horizon, dtype=tf.int32)
    width = split.horizon * len(split.targets)

    def gather(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.gather(inputs, batch[:, None] + back)
        y = tf.reshape(tf.gather(targets, batch[:, None] + ahead), (-1, width))
        return x, y

    dataset = tf.data.Dataset.from_tensor_slices(starts)
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(starts), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).map(gather).prefetch(tf.data.AUTOTUNE)


def _times_after(last: str, step: float, count: int) -> list[str | float]:
    """The ``count`` times after ``last`` (an ISO date-time or a number), ``step`` apart
    (seconds for dates), written like ``last``."""
    try:
        moment = datetime.fromisoformat(last.strip())
    except ValueError:
        return [float(last) + step * k for k in range(1, count + 1)]
    separator = "T" if "T" in last else " "
    return [
        (moment + timedelta(seconds=step * k)).isoformat(sep=separator)
        for k in range(1, count + 1)
    ]


# --------------------------------------------------------------------------- model


def build_forecaster(
    params: Params,
    n_inputs: int,
    horizon: int,
    target_positions: Sequence[int],
    *,
    predict_change: bool = False,
) -> keras.Model:
    """Numeric window → LSTM stack (bidirectional: Keras's wrapper, each window being all real
    rows) → Dense(horizon x targets); compiled with MSE.

    ``target_positions`` are the targets' indices among the inputs (needed for
    ``predict_change``: the output is the targets' last values plus the Dense layer's).
    """
    import keras
    from keras import ops

    from lstm_tune.training.lstm_stack import JIT_COMPILE, lstm_stack, optimizer

    window = keras.Input(shape=(None, n_inputs), name="window")
    x = window - window[:, -1:, :] if predict_change else window
    for layer in lstm_stack(params):
        x = layer(x)
    width = horizon * len(target_positions)
    output = keras.layers.Dense(width, name="forecast")(x)
    if predict_change:
        last = ops.take(window[:, -1, :], list(target_positions), axis=1)
        output = output + ops.tile(last, [1, horizon])
    model = keras.Model(window, output, name="lstm_forecaster")
    model.compile(
        optimizer=optimizer(params),
        loss="mse",
        metrics=[
            keras.metrics.MeanSquaredError(name="mse"),
            keras.metrics.MeanAbsoluteError(name="mae"),
        ],
        jit_compile=JIT_COMPILE,
    )
    return model


def parameter_count(params: Params, n_inputs: int, outputs: int) -> int:
    """Weights of :func:`build_forecaster`: the LSTM stack and the Dense head."""
    features = int(params["hidden_size"]) * preflight.directions(params)
    return preflight.lstm_parameter_count(params, input_width=n_inputs) + (features + 1) * outputs


def predict(model: keras.Model, split: SeriesSplit, params: Params) -> np.ndarray:
    """Forecasts of every window of ``split``, ``[n, horizon, targets]``, normalized scale."""
    window = int(params["sequence_length"])
    batches = window_dataset(split, window, int(params["batch_size"]), None)
    flat = np.asarray(model.predict(batches, verbose=0))
    return flat.reshape(len(flat), split.horizon, len(split.targets))


# --------------------------------------------------------------------------- metrics


def errors(
    forecast: np.ndarray, truth: np.ndarray, scale: np.ndarray | None = None
) -> dict[str, Any]:
    """MSE and MAE overall and by horizon step of ``[n, horizon, targets]`` arrays.

    ``scale`` (per target) turns normalized errors into the original units.
    """
    diff = forecast - truth
    if scale is not None:
        diff = diff * scale
    return {
        "mse": float(np.mean(diff**2)),
        "mae": float(np.mean(np.abs(diff))),
        "mse_by_step": np.mean(diff**2, axis=(0, 2)).tolist(),
        "mae_by_step": np.mean(np.abs(diff), axis=(0, 2)).tolist(),
    }


def forecast_metrics(
    forecast: np.ndarray, truth: np.ndarray, std: np.ndarray, names: Sequence[str]
) -> dict[str, Any]:
    """Normalized and original-scale MSE/MAE, by horizon step and by target column."""
    normalized, original = errors(forecast, truth), errors(forecast, truth, std)
    per_target = {}
    for index, name in enumerate(names):
        one = (forecast[:, :, index : index + 1], truth[:, :, index : index + 1])
        per_target[name] = {
            "mse": errors(*one)["mse"],
            "mae": errors(*one)["mae"],
            "mse_original": errors(*one, std[index : index + 1])["mse"],
            "mae_original": errors(*one, std[index : index + 1])["mae"],
        }
    return {
        "mse": normalized["mse"],
        "mae": normalized["mae"],
        "mse_original": original["mse"],
        "mae_original": original["mae"],
        "by_horizon_step": {
            "mse": normalized["mse_by_step"],
            "mae": normalized["mae_by_step"],
            "mse_original": original["mse_by_step"],
            "mae_original": original["mae_by_step"],
        },
        "per_target": per_target,
    }


def naive_forecast(split: SeriesSplit, window: int) -> np.ndarray:
    """Repeat-last: each window's last target values for every step, ``[n, horizon, targets]``."""
    last = last_values(split, window)
    return np.repeat(last[:, None, :], split.horizon, axis=1)


def plot_data(
    split: SeriesSplit,
    forecast: np.ndarray,
    window: int,
    names: Sequence[str],
    mean: np.ndarray,
    std: np.ndarray,
) -> dict[str, Any]:
    """Back-to-back forecasts (one window every ``horizon`` rows) over the test split's first
    rows, with the truth and the naive forecast, original scale, for the report's figure."""
    starts = split.target_starts(window)
    picks = np.arange(0, len(starts), split.horizon)[: max(1, PLOT_ROWS // split.horizon)]
    rows = (starts[picks][:, None] + np.arange(split.horizon)).reshape(-1)
    naive = naive_forecast(split, window)
    shown = list(range(min(len(names), PLOT_TARGETS)))

    def original(array: np.ndarray, target: int) -> list[float]:
        values = array.reshape(-1) * std[target] + mean[target]
        return [round(float(v), 4) for v in values]

    truth = split.values[rows][:, list(split.targets)]
    return {
        "time": [str(t) for t in split.times[rows]],
        "window_starts": [str(split.times[s]) for s in starts[picks]],
        "series": {
            names[t]: {
                "truth": original(truth[:, t], t),
                "forecast": original(forecast[picks][:, :, t], t),
                "naive": original(naive[picks][:, :, t], t),
            }
            for t in shown
        },
    }


# --------------------------------------------------------------------------- the task


class Forecasting(Task):
    """Numeric series → the next ``horizon`` steps; see the module docstring."""

    name = "forecasting"
    data_model = ForecastingData
    objectives = (Objective("val_mse", "minimize"), Objective("val_mae", "minimize"))
    example_noun = "windows"
    knobs = (*COMMON_KNOBS, "predict_change", "bidirectional")
    data_knobs = ("predict_change",)

    def load(self, data: ForecastingData, seed: int) -> Prepared:
        """Chronological train / validation / test rows, z-scored with training statistics."""
        return load_series(data)

    def for_params(self, prepared: Prepared, params: Params) -> Prepared:
        """The data with the config's ``predict_change`` (the model, its metrics and its
        saved state read it from ``meta``)."""
        if "predict_change" not in params:
            return prepared
        change = bool(params["predict_change"])
        return replace(prepared, meta={**prepared.meta, "predict_change": change})

    def batches(
        self, split: SeriesSplit, params: Params, *, shuffle_seed: int | None
    ) -> tf.data.Dataset:
        """(float32 ``[batch, window, inputs]``, float32 ``[batch, horizon x targets]``)."""
        return window_dataset(
            split, int(params["sequence_length"]), int(params["batch_size"]), shuffle_seed
        )

    def sample(self, split: SeriesSplit, size: int, seed: int) -> SeriesSplit:
        """``size`` windows of ``split`` drawn at random, kept in time order."""
        starts = split.target_starts(1)
        return replace(split, starts=starts[sample_index(len(starts), size, seed)])

    def size(self, split: SeriesSplit) -> int:
        """Windows of ``split`` (for training rows: at a look-back of 1 row, an upper bound)."""
        return len(split.target_starts(1))

    def build(self, params: Params, prepared: Prepared) -> keras.Model:
        """Numeric inputs → LSTM stack → Dense(horizon x targets), MSE loss."""
        meta = prepared.meta
        inputs = meta["input_columns"]
        return build_forecaster(
            params,
            len(inputs),
            meta["horizon"],
            [inputs.index(c) if c in inputs else 0 for c in meta["target_columns"]],
            predict_change=meta["predict_change"],
        )

    def score(self, model: keras.Model, split: SeriesSplit, params: Params, metric: str) -> float:
        """MSE or MAE of ``model``'s forecasts on ``split`` (normalized scale), as Keras logs."""
        forecast = predict(model, split, params)
        _, truth = window_arrays(split, int(params["sequence_length"]))
        if metric == "val_mse":
            return float(np.mean((forecast - truth) ** 2))
        if metric == "val_mae":
            return float(np.mean(np.abs(forecast - truth)))
        raise ValueError(f"forecasting cannot score {metric!r}")

    def evaluate(self, model: keras.Model, prepared: Prepared, params: Params) -> dict[str, Any]:
        """Test MSE/MAE (normalized and original scale, by step, by target) beside the naive
        repeat-last forecast on the same windows, and the data of the forecast plot."""
        test, meta = prepared.test, prepared.meta
        window = int(params["sequence_length"])
        names = meta["target_columns"]
        mean = np.asarray([meta["mean"][c] for c in names])
        std = np.asarray([meta["std"][c] for c in names])
        forecast = predict(model, test, params)
        _, truth = window_arrays(test, window)
        metrics = forecast_metrics(forecast, truth, std, names)
        baseline = forecast_metrics(naive_forecast(test, window), truth, std, names)
        metrics.update(
            target_columns=list(names),
            input_columns=list(meta["input_columns"]),
            horizon=meta["horizon"],
            predict_change=meta["predict_change"],
            split_rows=meta["split_rows"],
            windows={
                "fit": len(prepared.fit.target_starts(window)),
                "validation": len(prepared.validation.target_starts(window)),
                "test": len(test.target_starts(window)),
            },
            baseline={"name": "naive", "predicts": "repeat the last value", **baseline},
            beats_baseline=metrics["mse"] < baseline["mse"],
            forecast_plot=plot_data(test, forecast, window, names, mean, std),
        )
        return metrics

    def report(self, metrics: Mapping[str, Any]) -> Report:
        """Scores beside the naive forecast's, error by horizon step, forecasts against the
        truth; in the terminal, the scores on both scales and the first and last step's."""
        sections = (
            Section("test-metrics", "Test metrics", _test_metrics(metrics)),
            _by_step_section(metrics),
            _forecast_section(metrics),
        )
        return Report(sections, _summary(metrics))

    def with_validation_in_fit(self, prepared: Prepared) -> Prepared:
        """Training targets run on through the validation rows (the scaler stays the
        training rows': what the model was tuned with)."""
        fit, validation = prepared.fit, prepared.validation
        merged = replace(fit, hi=validation.hi, starts=None)
        return replace(prepared, fit=merged)

    def inference_state(self, prepared: Prepared, data: Any) -> dict[str, Any]:
        """Columns, horizon, the scaler (training rows' mean and std) and the time step."""
        fit: SeriesSplit = prepared.fit
        times = _times(Path(data.path), data.time_column, [str(t) for t in fit.times[: fit.hi]])
        return {
            "time_column": data.time_column,
            "target_columns": list(data.target_columns),
            "input_columns": list(data.inputs),
            "horizon": data.horizon,
            "predict_change": prepared.meta["predict_change"],
            "mean": dict(prepared.meta["mean"]),
            "std": dict(prepared.meta["std"]),
            # The step between rows, for the forecasts' times: the training rows' median.
            "time_step": float(np.median(np.diff(times))) if len(times) > 1 else 1.0,
        }

    def read_inputs(self, state: State, path: Path) -> Iterator[dict[str, Any]]:
        """One history per file: its times and the model's columns, checked like training
        data (missing column, non-numeric cell, unsorted time)."""
        data = ForecastingData(
            path=str(path),
            time_column=state["time_column"],
            target_columns=tuple(state["target_columns"]),
            input_columns=tuple(state["input_columns"]),
            horizon=int(state["horizon"]),
        )
        times, raw, columns = read_series(data)
        yield {"path": str(path), "times": times, "values": raw, "columns": columns}

    def check_input(self, state: State, params: Params, item: Any) -> Any:
        """A history read by :meth:`read_inputs`, long enough for the model's window."""
        window = int(params["sequence_length"])
        if len(item["values"]) < window:
            raise DataError(
                f"{item['path']}: {len(item['values'])} rows of history; this model reads "
                f"the last {window} (its sequence_length)"
            )
        return item

    def predict(
        self, model: keras.Model, state: State, params: Params, inputs: list[Any], options: Options
    ) -> list[dict[str, Any]]:
        """The next ``horizon`` values of every target after each history, with their times."""
        window = int(params["sequence_length"])
        horizon, targets = int(state["horizon"]), list(state["target_columns"])
        batch = []
        for history in inputs:
            columns = list(history["columns"])
            picked = history["values"][
                -window:, [columns.index(c) for c in state["input_columns"]]
            ]
            mean = np.array([state["mean"][c] for c in state["input_columns"]])
            std = np.array([state["std"][c] for c in state["input_columns"]])
            batch.append(((picked - mean) / std).astype(np.float32))
        flat = np.asarray(model.predict(np.stack(batch), verbose=0))
        rows: list[dict[str, Any]] = []
        for history, forecast in zip(inputs, flat, strict=True):
            values = forecast.reshape(horizon, len(targets))
            values = values * np.array([state["std"][c] for c in targets]) + np.array(
                [state["mean"][c] for c in targets]
            )
            for step, moment in enumerate(
                _times_after(history["times"][-1], float(state["time_step"]), horizon), start=1
            ):
                row: dict[str, Any] = {"step": step, state["time_column"]: moment}
                row.update({c: float(v) for c, v in zip(targets, values[step - 1], strict=True)})
                rows.append(row)
        return rows

    def estimate(
        self, params: Params, prepared: Prepared, checkpoints: int = 0, sample_size: int = 0
    ) -> Estimate:
        """Memory: LSTM stack and head weights, activations over ``sequence_length`` steps of
        inputs. Time: LSTM steps of the fit windows, then of validation and each checkpoint's
        sample. :class:`WindowTooLong` when the window does not fit the training rows."""
        window, batch = int(params["sequence_length"]), int(params["batch_size"])
        problem = prepared.fit.window_problem(window)
        if problem is not None:
            raise WindowTooLong(problem)
        meta = prepared.meta
        n_inputs = len(meta["input_columns"])
        outputs = meta["horizon"] * len(meta["target_columns"])
        memory = preflight.estimate_memory(
            params, weights=parameter_count(params, n_inputs, outputs), input_width=n_inputs
        )

        def steps(windows: int) -> int:
            return math.ceil(windows / batch) * window

        fit = len(prepared.fit.target_starts(window))
        validation = len(prepared.validation.target_starts(window))
        sample = min(sample_size, validation)
        forward = steps(validation) + checkpoints * steps(sample)
        return Estimate(memory, preflight.epoch_seconds(params, steps(fit), forward))


# --------------------------------------------------------------------------- report

# The score table's rows: label, key of the model's (and the baseline's) metrics.
SCORE_ROWS = (
    ("MSE (z-scored)", "mse"),
    ("MAE (z-scored)", "mae"),
    ("MSE (original scale)", "mse_original"),
    ("MAE (original scale)", "mae_original"),
)
# The model's scores in the by-target table (the naive MSE follows them).
PER_TARGET = ("mse", "mae", "mse_original")


def _test_metrics(metrics: Mapping[str, Any]) -> tuple[Figure, ...]:
    """The scores beside the naive forecast's, the counts, the scores by target, a warning."""
    base = metrics["baseline"]
    by_target = tuple(
        Row(name, (*(scores[k] for k in PER_TARGET), base["per_target"][name]["mse"]))
        for name, scores in metrics["per_target"].items()
    )
    return (
        Table(
            ("model", f"baseline: {base['name']} ({base['predicts']})"),
            tuple(Row(label, (metrics[key], base[key])) for label, key in SCORE_ROWS),
        ),
        Text(
            "{} test windows, horizon {}, predict_change {}.",
            (
                metrics["windows"]["test"],
                metrics["horizon"],
                str(metrics["predict_change"]).lower(),
            ),
        ),
        Table(("MSE", "MAE", "MSE (original)", "naive MSE"), by_target, title="By target column"),
        *baseline_warning(metrics, "naive repeat-last forecast", "MSE"),
    )


def _by_step_section(metrics: Mapping[str, Any]) -> Section:
    """The model's and the naive forecast's test MSE at each step ahead."""
    curves = []
    for label, scores in (("model", metrics), ("naive", metrics["baseline"])):
        steps = scores["by_horizon_step"]["mse"]
        curves.append(Curve(label, tuple(range(1, len(steps) + 1)), tuple(steps)))
    figure = Curves(
        tuple(curves), x_title="horizon step", y_title="test MSE (z-scored)", markers=True
    )
    return Section(
        "error-by-horizon",
        "Error by horizon step",
        (figure,),
        caption="Test MSE at each step ahead, averaged over windows and target columns.",
    )


def _forecast_section(metrics: Mapping[str, Any]) -> Section:
    """Back-to-back forecasts over the test split's first rows (``plot_data``)."""
    plot = metrics["forecast_plot"]
    panels = tuple(
        ForecastPanel(name, tuple(lines["truth"]), tuple(lines["forecast"]), tuple(lines["naive"]))
        for name, lines in plot["series"].items()
    )
    return Section(
        "forecasts",
        "Forecasts against the truth",
        (ForecastPlot(tuple(plot["time"]), panels, baseline_name="naive"),),
        caption=f"The test split's first rows, original scale: one {metrics['horizon']}-step "
        "forecast every horizon rows, placed end to end, beside the truth and the naive "
        "repeat-last forecast.",
    )


def _summary(metrics: Mapping[str, Any]) -> tuple[Figure, ...]:
    """Test MSE/MAE beside the naive forecast's, on both scales, and by horizon step."""
    base = metrics["baseline"]
    steps = metrics["by_horizon_step"]["mse"]
    return (
        Text(
            "Test MSE: {}   MAE: {}   (z-scored; {} windows, horizon {}, targets {}, {} epochs)",
            (
                metrics["mse"],
                metrics["mae"],
                metrics["windows"]["test"],
                metrics["horizon"],
                ", ".join(metrics.get("target_columns", ())),
                metrics.get("epochs"),
            ),
        ),
        Text("Naive repeat-last: MSE {}, MAE {}", (base["mse"], base["mae"])),
        Text(
            "Original scale: MSE {}, MAE {}   (naive {}, {})",
            (
                metrics["mse_original"],
                metrics["mae_original"],
                base["mse_original"],
                base["mae_original"],
            ),
        ),
        Text("MSE at step 1: {}, at step {}: {}", (steps[0], len(steps), steps[-1])),
    )


register(Forecasting())
