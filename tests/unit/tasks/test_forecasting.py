"""Forecasting on slices of the real ETTh1 series: windows, scaling, the naive baseline, the
score pruning sees, bad inputs (one line, exit 2, nothing written) and the whole CLI path.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna
import pytest
import yaml
from optuna.study import StudyDirection
from optuna.trial import TrialState

from lstm_tune.cli import main
from lstm_tune.config import load_spec
from lstm_tune.errors import DataError
from lstm_tune.tasks import get_task
from lstm_tune.tasks.forecasting import ForecastingData, naive_forecast, window_arrays
from lstm_tune.training.fit import fit
from tests.helpers import ROOT, require_or_skip
from tests.helpers.studies import StudyFile, write_study

ETTH1 = ROOT.parent / "shared" / "data" / "ETTh1.csv"
SLICE_ROWS = 1400
SPLIT = [900, 250, 250]
TINY = {
    "hidden_size": 8,
    "num_layers": 1,
    "learning_rate": 0.01,
    "dropout_rate": 0.0,
    "sequence_length": 24,
    "batch_size": 64,
}


@pytest.fixture(scope="module")
def etth1_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 1,400 hours of ETTh1, unchanged, as a CSV of their own."""
    if not ETTH1.exists():
        require_or_skip(f"the ETTh1 series is not at {ETTH1}")
    out = tmp_path_factory.mktemp("etth1") / "etth1_slice.csv"
    lines = ETTH1.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[: SLICE_ROWS + 1]), encoding="utf-8")
    return out


def _raw(path: Path, columns: list[str]) -> np.ndarray:
    with path.open(newline="", encoding="utf-8") as f:
        return np.asarray([[float(row[c]) for c in columns] for row in csv.DictReader(f)])


def _data(path: Path, **changes: Any) -> ForecastingData:
    fields: dict[str, Any] = {
        "path": str(path),
        "time_column": "date",
        "target_columns": ["OT"],
        "horizon": 12,
        "split_rows": SPLIT,
    }
    return ForecastingData(**{**fields, **changes})


def _collect(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in dataset), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


# --------------------------------------------------------------------------- data


def test_windows_never_cross_splits_and_scaling_uses_training_rows(etth1_slice: Path) -> None:
    task = get_task("forecasting")
    data = _data(etth1_slice, target_columns=["OT"], input_columns=["HUFL", "OT"], horizon=12)
    prepared = task.load(data, seed=0)
    raw = _raw(etth1_slice, ["OT", "HUFL"])[: sum(SPLIT)]
    train = raw[: SPLIT[0]]
    mean, std = train.mean(axis=0), train.std(axis=0)
    assert prepared.meta["mean"] == pytest.approx({"OT": mean[0], "HUFL": mean[1]})
    assert prepared.meta["std"] == pytest.approx({"OT": std[0], "HUFL": std[1]})
    # Statistics of all rows would differ: the scaler saw the training rows only.
    assert abs(raw.mean(axis=0)[0] - mean[0]) > 0.1
    z = (raw - mean) / std
    window, horizon = 48, 12
    params = {**TINY, "sequence_length": window, "batch_size": 100}
    bounds = {"train": (0, 900), "validation": (900, 1150), "test": (1150, 1400)}
    for split in (prepared.fit, prepared.validation, prepared.test):
        lo, hi = bounds[split.name]
        x, y = _collect(task.batches(split, params, shuffle_seed=None))
        starts = split.target_starts(window)
        # Targets: all inside the split; history: the rows just before, never after.
        assert starts[0] == max(lo, window) and starts[-1] + horizon == hi
        assert len(x) == len(y) == len(starts) == hi - max(lo, window) - horizon + 1
        for i in (0, len(starts) // 2, len(starts) - 1):
            t = starts[i]
            np.testing.assert_allclose(x[i], z[t - window : t][:, [1, 0]], atol=1e-5)
            np.testing.assert_allclose(y[i], z[t : t + horizon, 0], atol=1e-5)
    # The first validation window reads the training rows' end as history, targets row 900.
    x_val, y_val = window_arrays(prepared.validation, window)
    np.testing.assert_allclose(x_val[0, :, 1], z[900 - window : 900, 0], atol=1e-5)
    np.testing.assert_allclose(y_val[0, :, 0], z[900:912, 0], atol=1e-5)
    # Shuffled training batches: the same windows, drawn in a new order each pass.
    shuffled = task.batches(prepared.fit, params, shuffle_seed=3)
    first, second = _collect(shuffled)[1], _collect(shuffled)[1]
    ordered = _collect(task.batches(prepared.fit, params, shuffle_seed=None))[1]
    assert not np.array_equal(first, second) and not np.array_equal(first, ordered)
    key = np.lexsort(ordered.T[::-1])
    np.testing.assert_array_equal(first[np.lexsort(first.T[::-1])], ordered[key])


def test_naive_baseline_equals_a_hand_computation(etth1_slice: Path) -> None:
    task = get_task("forecasting")
    prepared = task.load(_data(etth1_slice, horizon=6), seed=0)
    ot = _raw(etth1_slice, ["OT"])[:, 0]
    mean, std = ot[: SPLIT[0]].mean(), ot[: SPLIT[0]].std()
    errors_z, errors_abs = [], []
    for t in range(1150, 1400 - 6 + 1):  # every test window: targets rows t .. t+5
        for h in range(6):
            errors_z.append((ot[t - 1] - ot[t + h]) / std)
            errors_abs.append(ot[t - 1] - ot[t + h])
    keras.utils.set_random_seed(0)
    model = task.build(TINY, prepared)
    metrics = task.evaluate(model, prepared, TINY)
    baseline = metrics["baseline"]
    assert baseline["mse"] == pytest.approx(np.mean(np.square(errors_z)), rel=1e-5)
    assert baseline["mae"] == pytest.approx(np.mean(np.abs(errors_z)), rel=1e-5)
    assert baseline["mse_original"] == pytest.approx(np.mean(np.square(errors_abs)), rel=1e-5)
    assert baseline["mae_original"] == pytest.approx(np.mean(np.abs(errors_abs)), rel=1e-5)
    step1 = np.square(ot[1149:1394] - ot[1150:1395]) / std**2
    assert baseline["by_horizon_step"]["mse"][0] == pytest.approx(step1.mean(), rel=1e-5)
    assert metrics["windows"]["test"] == 245 and mean == pytest.approx(prepared.meta["mean"]["OT"])


def test_the_naive_forecast_on_the_etth1_protocol_is_the_published_anchor() -> None:
    if not ETTH1.exists():
        require_or_skip(f"the ETTh1 series is not at {ETTH1}")
    spec = load_spec(ROOT / "studies" / "etth1.yaml")
    prepared = get_task("forecasting").load(spec.data, spec.seed)
    _, truth = window_arrays(prepared.test, 96)
    naive = naive_forecast(prepared.test, 96)
    assert len(truth) == 2880 - 24 + 1
    assert float(np.mean((naive - truth) ** 2)) == pytest.approx(0.0343, abs=5e-5)


def test_predict_change_adds_the_last_value_and_an_idle_head_is_the_naive_forecast(
    etth1_slice: Path, tmp_path: Path
) -> None:
    task = get_task("forecasting")
    data = _data(etth1_slice, target_columns=["OT", "HULL"], input_columns=["HULL", "MUFL", "OT"])
    prepared = task.load(data.model_copy(update={"predict_change": True}), seed=0)
    model = task.build(TINY, prepared)
    head = model.get_layer("forecast")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    x, _ = window_arrays(prepared.test, 24)
    forecast = np.asarray(model.predict(x, verbose=0)).reshape(len(x), 12, 2)
    np.testing.assert_allclose(forecast, naive_forecast(prepared.test, 24), atol=1e-6)
    metrics = task.evaluate(model, prepared, TINY)
    assert metrics["mse"] == pytest.approx(metrics["baseline"]["mse"], rel=1e-5)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(
        np.asarray(again.predict(x, verbose=0)), forecast.reshape(len(x), -1)
    )


@pytest.mark.parametrize("predict_change", [False, True])
@pytest.mark.slow
def test_score_equals_what_keras_logs(etth1_slice: Path, predict_change: bool) -> None:
    task = get_task("forecasting")
    data = _data(etth1_slice, input_columns=["OT", "LUFL"], predict_change=predict_change)
    prepared = task.load(data, seed=0)
    keras.utils.set_random_seed(5)
    model = task.build(TINY, prepared)
    recorder = fit(
        model,
        task.batches(prepared.fit, TINY, shuffle_seed=5),
        task.batches(prepared.validation, TINY, shuffle_seed=None),
        objective=task.objective("val_mse"),
        epochs=1,
    )
    for metric in ("val_mse", "val_mae"):
        logged = recorder.history[metric][-1]
        assert task.score(model, prepared.validation, TINY, metric) == pytest.approx(
            logged, rel=1e-4
        )
    sample = task.sample(prepared.validation, 50, seed=1)
    assert task.size(sample) == 50
    assert set(sample.starts) <= set(prepared.validation.target_starts(24))


# --------------------------------------------------------------------------- bad input


def _study(tmp: Path, data: Path, **data_changes: Any) -> Path:
    return write_study(
        tmp,
        name="ett",
        task="forecasting",
        seed=3,
        data={
            "path": str(data),
            "time_column": "date",
            "target_columns": ["OT"],
            "horizon": 12,
            "split_rows": SPLIT,
            **data_changes,
        },
        training={"epochs": 2},
        search={
            "n_trials": 3,
            "sampler": {"name": "random"},
            "pruner": {"name": "median", "options": {"n_startup_trials": 1, "n_warmup_steps": 0}},
            # One config that learns, one whose learning rate cannot move the weights: its
            # validation MSE stays above the first trial's, so the median pruner stops it.
            "enqueue": [TINY, {**TINY, "learning_rate": 1e-7}],
        },
        space={
            "hidden_size": {"low": 4, "high": 8},
            "num_layers": 1,
            "learning_rate": {"low": 1e-7, "high": 1e-2, "log": True},
            "dropout_rate": 0.0,
            "sequence_length": {"low": 12, "high": 36, "step": 12},
            "batch_size": 64,
        },
    )


def _edited(source: Path, out: Path, edit: Any) -> Path:
    lines = source.read_text(encoding="utf-8").splitlines()
    out.write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")
    return out


def _cell(lines: list[str], line: int, column: int, value: str) -> list[str]:
    cells = lines[line - 1].split(",")
    cells[column] = value
    return [*lines[: line - 1], ",".join(cells), *lines[line:]]


def _cells(lines: list[str], numbers: range, column: int, value: str) -> list[str]:
    for line in numbers:
        lines = _cell(lines, line, column, value)
    return lines


def _swap(lines: list[str], a: int, b: int) -> list[str]:
    lines = list(lines)
    lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]
    return lines


BAD_INPUTS = [
    ({"time_column": "time"}, None, r"data\.time_column: no column 'time'"),
    ({"target_columns": ["OT", "TEMP"]}, None, r"data\.target_columns: no column 'TEMP'"),
    ({"input_columns": ["OT", "load"]}, None, r"data\.input_columns: no column 'load'"),
    (
        {},
        lambda ls: _cell(ls, 40, 7, "warm"),
        r"line 40: column 'OT' \(data\.target_columns\) is 'warm'; expected a number",
    ),
    (
        {"input_columns": ["OT", "HULL"]},
        lambda ls: _cell(ls, 7, 2, "NaN"),
        r"line 7: column 'HULL' \(data\.input_columns\) is 'NaN'; expected a finite number",
    ),
    (
        {},
        lambda ls: _cell(ls, 12, 7, ""),
        r"line 12: column 'OT' \(data\.target_columns\) is ''; expected a number",
    ),
    (
        {},
        lambda ls: _swap(ls, 30, 31),
        r"line 31: column 'date' \(data\.time_column\) value '2016-07-02 04:00:00' comes "
        r"before the previous row's '2016-07-02 05:00:00'",
    ),
    (
        {},
        lambda ls: _cell(ls, 21, 0, "2016-07-01 18:00:00"),
        r"line 21: column 'date' \(data\.time_column\) value '2016-07-01 18:00:00' "
        r"duplicates the previous row's",
    ),
    (
        {},
        lambda ls: _cell(ls, 5, 0, "yesterday"),
        r"line 5: column 'date' \(data\.time_column\) is 'yesterday'; expected an ISO 8601",
    ),
    (
        {"input_columns": ["OT", "HULL"]},
        lambda ls: _cells(ls, range(2, 902), 2, "1.5"),  # every training row
        r"column 'HULL' is constant \(1\.5\) over the 900 training rows",
    ),
    ({"horizon": 251}, None, r"data\.horizon: 251 steps .* the 250 validation rows"),
    ({"split_rows": [1000, 300, 300]}, None, r"data\.split_rows: \[1000, 300, 300\] need 1600"),
]


@pytest.mark.parametrize(("data_changes", "edit", "expected"), BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_writes_no_storage(
    etth1_slice: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    data_changes: dict[str, Any],
    edit: Any,
    expected: str,
) -> None:
    data = etth1_slice if edit is None else _edited(etth1_slice, tmp_path / "bad.csv", edit)
    db = tmp_path / "bad.db"
    code = main(
        ["search", str(_study(tmp_path, data, **data_changes)), "--storage", f"sqlite:///{db}"]
    )
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and str(data) in lines[0], err
    assert re.search(expected, lines[0]), lines[0]
    assert not db.exists(), "bad data must not create the study's storage"


def test_a_window_longer_than_the_training_rows_is_one_line_exit_2(
    etth1_slice: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], study_file: StudyFile
) -> None:
    study = yaml.safe_load(_study(tmp_path, etth1_slice).read_text())
    del study["space"]
    study["params"] = {**TINY, "sequence_length": 889}  # 889 + horizon 12 > 900 train rows
    config = study_file(filename="long.yaml", **study)
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(etth1_slice) in lines[0]
    assert "sequence_length: 889 rows of look-back plus data.horizon 12" in lines[0]
    assert "allowed: sequence_length <= 888" in lines[0]
    assert not (tmp_path / "run" / "metrics.json").exists()
    prepared = get_task("forecasting").load(_data(etth1_slice), seed=0)
    with pytest.raises(DataError, match="sequence_length: 889"):
        get_task("forecasting").batches(prepared.fit, study["params"], shuffle_seed=None)


@pytest.mark.slow
def test_a_search_fails_a_trial_whose_window_does_not_fit_and_goes_on(
    etth1_slice: Path, tmp_path: Path, study_file: StudyFile
) -> None:
    study = yaml.safe_load(_study(tmp_path, etth1_slice).read_text())
    study["search"].update(n_trials=1, enqueue=[{**TINY, "sequence_length": 889}, TINY])
    study["space"]["sequence_length"] = {"choices": [889, 24]}
    path = study_file(filename="mixed.yaml", **study)
    storage = f"sqlite:///{tmp_path / 'mixed.db'}"
    assert main(["search", str(path), "--storage", storage]) == 0
    failed, complete = optuna.load_study(study_name="ett", storage=storage).trials
    assert (failed.state, complete.state) == (TrialState.FAIL, TrialState.COMPLETE)
    assert "sequence_length: 889 rows of look-back" in failed.user_attrs["fail_reason"]


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_search_export_train_report_on_an_etth1_slice(
    etth1_slice: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study_file = _study(tmp_path, etth1_slice)
    storage = f"sqlite:///{tmp_path / 'ett.db'}"
    assert main(["search", str(study_file), "--storage", storage]) == 0
    study = optuna.load_study(study_name="ett", storage=storage)
    assert study.direction == StudyDirection.MINIMIZE and study.metric_names == ["val_mse"]
    states = [t.state for t in study.trials]
    assert len(states) == 3 and states[:2] == [TrialState.COMPLETE, TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert study.best_value == min(t.value for t in complete)  # type: ignore[type-var]
    first = study.trials[0]
    assert first.value == min(first.user_attrs["val_mse_per_epoch"])
    assert {"loss", "mse", "mae", "val_loss", "val_mse", "val_mae"} <= set(
        first.user_attrs["history"]
    )
    assert "best: trial" in capsys.readouterr().out

    best_yaml = tmp_path / "best.yaml"
    args = ["export-best", "--study-name", "ett", "--storage", storage, "-o", str(best_yaml)]
    assert main(args) == 0
    exported = load_spec(best_yaml)
    assert exported.data.target_columns == ("OT",) and exported.data.horizon == 12

    out_dir = tmp_path / "run"
    assert main(["train", str(best_yaml), "--out", str(out_dir)]) == 0
    assert "Naive repeat-last: MSE" in capsys.readouterr().out
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["task"] == "forecasting" and metrics["metric"] == "val_mse"
    window = metrics["params"]["sequence_length"]
    assert metrics["windows"] == {
        "fit": 900 - window - 12 + 1,
        "validation": 250 - 12 + 1,
        "test": 250 - 12 + 1,
    }
    std = get_task("forecasting").load(exported.data, 0).meta["std"]
    # One target: original-scale errors are the z-scored ones times the training std.
    assert metrics["mse_original"] == pytest.approx(metrics["mse"] * std["OT"] ** 2, rel=1e-4)
    assert metrics["mae_original"] == pytest.approx(metrics["mae"] * std["OT"], rel=1e-4)
    for scores in (metrics, metrics["baseline"]):
        steps = scores["by_horizon_step"]
        assert len(steps["mse"]) == len(steps["mae"]) == 12
        assert np.mean(steps["mse"]) == pytest.approx(scores["mse"], rel=1e-4)
    assert metrics["baseline"]["name"] == "naive"
    assert metrics["beats_baseline"] == (metrics["mse"] < metrics["baseline"]["mse"])
    plot = metrics["forecast_plot"]
    assert len(plot["time"]) == len(plot["series"]["OT"]["forecast"]) > 0
    assert (out_dir / "model.keras").exists()

    report = tmp_path / "report.html"
    args = ["report", "--study-name", "ett", "--storage", storage, "-o", str(report)]
    assert main([*args, "--metrics", str(out_dir / "metrics.json")]) == 0
    html = report.read_text()
    for section in ("test-metrics", "error-by-horizon", "forecasts"):
        assert f'id="{section}"' in html
    assert "repeat the last value" in html and "val_mse" in html
