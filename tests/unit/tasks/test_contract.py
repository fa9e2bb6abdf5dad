"""The task contract: at most ten methods, documented, and enough for a whole new task.

A tiny task defined here (is the sum of a random sequence positive?) writes only the abstract
methods of :class:`~lstm_tune.tasks.base.Task` on :class:`~lstm_tune.tasks.base.Examples`
splits, and runs the whole path a user takes: search with checkpoints (the default sample),
train with ``--refit-full`` (the default merge and sizes), the report page and the terminal
summary, and predict on a file (the default input check).
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna
import pytest
import tensorflow as tf
import yaml
from optuna.trial import TrialState
from pydantic import BaseModel, ConfigDict, Field

import lstm_tune.config.spec
import lstm_tune.tasks
import lstm_tune.tasks.base
from lstm_tune import load_model
from lstm_tune.cli import main
from lstm_tune.figures import ConfusionMatrix, Report, Row, Section, Table, Text
from lstm_tune.results.report import load_metrics, write_train_report
from lstm_tune.tasks.base import Examples, Options, State, Task
from lstm_tune.tasks.readers import read_text_lines
from lstm_tune.training import preflight
from lstm_tune.training.lstm_stack import lstm_stack, optimizer
from lstm_tune.types import Estimate, Objective, Params, Prepared

MAX_METHODS = 10
STEPS = 12
PARAMS = {
    "hidden_size": 8,
    "num_layers": 1,
    "learning_rate": 0.02,
    "dropout_rate": 0.0,
    "sequence_length": STEPS,
    "batch_size": 32,
}


class SumSignData(BaseModel):
    """The ``data:`` section of the sum-sign task: how many sequences, how long."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    examples: int = Field(300, ge=30)
    steps: int = Field(STEPS, ge=2)


def _positive(model: keras.Model, split: Examples[np.ndarray], params: Params) -> np.ndarray:
    window = int(params["sequence_length"])
    return np.asarray(model.predict(split.inputs[:, -window:], verbose=0)).reshape(-1)


class SumSign(Task):
    """Random sequences → whether their sum is positive; the contract's methods only."""

    name = "contract_sum_sign"
    data_model = SumSignData
    objectives = (Objective("val_accuracy", "maximize"), Objective("val_loss", "minimize"))
    example_noun = "sequences"

    def load(self, data: Any, seed: int) -> Prepared:
        x = np.random.default_rng(seed).normal(size=(data.examples, data.steps, 1))
        every = Examples(x.astype(np.float32), (x.sum(axis=(1, 2)) > 0).astype(np.int32))
        fit, validation = int(0.6 * data.examples), int(0.8 * data.examples)
        return Prepared(
            fit=every.take(np.arange(fit)),
            validation=every.take(np.arange(fit, validation)),
            test=every.take(np.arange(validation, data.examples)),
        )

    def batches(self, split: Any, params: Params, *, shuffle_seed: int | None) -> tf.data.Dataset:
        window = int(params["sequence_length"])
        dataset = tf.data.Dataset.from_tensor_slices((split.inputs[:, -window:], split.targets))
        if shuffle_seed is not None:
            dataset = dataset.shuffle(len(split), seed=shuffle_seed)
        return dataset.batch(int(params["batch_size"]))

    def build(self, params: Params, prepared: Prepared) -> keras.Model:
        inputs = keras.Input(shape=(None, 1))
        x = inputs
        for layer in lstm_stack(params):
            x = layer(x)
        model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
        model.compile(
            optimizer=optimizer(params), loss="binary_crossentropy", metrics=["accuracy"]
        )
        return model

    def score(self, model: keras.Model, split: Any, params: Params, metric: str) -> float:
        p = np.clip(_positive(model, split, params), 1e-7, 1 - 1e-7)
        if metric == "val_accuracy":
            return float(np.mean((p > 0.5) == split.targets))
        return float(-np.mean(split.targets * np.log(p) + (1 - split.targets) * np.log(1 - p)))

    def evaluate(self, model: keras.Model, prepared: Prepared, params: Params) -> dict[str, Any]:
        test = prepared.test
        predicted = (_positive(model, test, params) > 0.5).astype(int)
        majority = int(np.bincount(prepared.fit.targets, minlength=2).argmax())
        matrix = np.zeros((2, 2), int)
        np.add.at(matrix, (test.targets, predicted), 1)
        accuracy = float(np.mean(predicted == test.targets))
        baseline = float(np.mean(test.targets == majority))
        return {
            "accuracy": accuracy,
            "confusion_matrix": matrix.tolist(),
            "baseline": {"name": "majority class", "accuracy": baseline},
            "beats_baseline": accuracy > baseline,
        }

    def report(self, metrics: Mapping[str, Any]) -> Report:
        matrix = ConfusionMatrix(
            tuple(tuple(row) for row in metrics["confusion_matrix"]), ("negative", "positive")
        )
        base = metrics["baseline"]
        scores = Table(
            ("model", f"baseline: {base['name']}"),
            (Row("accuracy", (metrics["accuracy"], base["accuracy"])),),
        )
        return Report(
            sections=(
                Section("test-metrics", "Test metrics", (scores,)),
                Section("confusion-matrix", "Confusion matrix", (matrix,)),
            ),
            summary=(
                Text(
                    "Test accuracy: {} (baseline {}) on {} sequences",
                    (metrics["accuracy"], base["accuracy"], metrics.get("test_size")),
                ),
                matrix,
            ),
        )

    def estimate(
        self, params: Params, prepared: Prepared, checkpoints: int = 0, sample_size: int = 0
    ) -> Estimate:
        hidden, batch = int(params["hidden_size"]), int(params["batch_size"])
        weights = preflight.lstm_parameter_count(params, input_width=1) + hidden + 1
        memory = preflight.estimate_memory(params, weights=weights, input_width=1)
        window = int(params["sequence_length"])
        validation = math.ceil(len(prepared.validation) / batch)
        sample = math.ceil(min(sample_size, len(prepared.validation)) / batch)
        forward = (validation + checkpoints * sample) * window
        train = math.ceil(len(prepared.fit) / batch) * window
        return Estimate(memory, preflight.epoch_seconds(params, train, forward))

    def inference_state(self, prepared: Prepared, data: Any) -> dict[str, Any]:
        return {"steps": data.steps}

    def read_inputs(self, state: State, path: Path) -> Iterator[Any]:
        for line in read_text_lines(path):
            yield [float(value) for value in line.split()]

    def predict(
        self, model: keras.Model, state: State, params: Params, inputs: list[Any], options: Options
    ) -> list[dict[str, Any]]:
        window = int(params["sequence_length"])
        x = np.asarray([sequence[-window:] for sequence in inputs], np.float32)[..., None]
        return [{"positive": float(p)} for p in np.asarray(model.predict(x, verbose=0))[:, 0]]


@pytest.fixture
def sum_sign(monkeypatch: pytest.MonkeyPatch) -> Iterator[SumSign]:
    """The sum-sign task registered for this test only (and the study schema that knows it)."""
    lstm_tune.tasks.all_tasks()  # the real tasks first, so discovery does not run later
    task = SumSign()
    monkeypatch.setitem(lstm_tune.tasks._REGISTRY, task.name, task)
    lstm_tune.config.spec._study_adapter.cache_clear()
    yield task
    lstm_tune.config.spec._study_adapter.cache_clear()


def test_the_contract_has_at_most_ten_methods_and_its_docstring_names_each() -> None:
    abstract = Task.__abstractmethods__
    assert len(abstract) <= MAX_METHODS, sorted(abstract)
    contract = lstm_tune.tasks.base.__doc__ or ""
    for name in abstract:
        assert f"``{name}(" in contract, f"the contract's docstring does not describe {name}"


def test_the_tiny_task_writes_only_the_contract() -> None:
    written = {
        name
        for name, value in vars(SumSign).items()
        if inspect.isfunction(value) and not name.startswith("_")
    }
    assert written == set(Task.__abstractmethods__)


@pytest.mark.slow
def test_a_task_of_only_the_contract_runs_search_train_report_and_predict(
    sum_sign: SumSign, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = {
        "name": "sums",
        "task": sum_sign.name,
        "seed": 3,
        "data": {"examples": 300},
        # A checkpoint every 60 sequences, scored on the default sample of 40 of them.
        "training": {"epochs": 2, "report_every": 60, "report_sample": 40},
        "search": {"n_trials": 2, "sampler": {"name": "random"}, "pruner": {"name": "none"}},
        "space": {**PARAMS, "hidden_size": {"low": 4, "high": 8}},
    }
    study_file = tmp_path / "sums.yaml"
    study_file.write_text(yaml.safe_dump(study))
    storage = f"sqlite:///{tmp_path / 'sums.db'}"
    assert main(["search", str(study_file), "--storage", storage]) == 0
    trials = optuna.load_study(study_name="sums", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    # 180 fit sequences: 3 checkpoints per epoch, counted across the 2 epochs.
    assert sorted(trials[0].intermediate_values) == [1, 2, 3, 4, 5, 6]
    assert trials[0].user_attrs["estimated_peak_mib"] >= preflight.BASE_BYTES / 2**20

    config = tmp_path / "one.yaml"
    doc = {k: v for k, v in study.items() if k not in ("space", "search")}
    config.write_text(yaml.safe_dump({**doc, "params": PARAMS}))
    out = tmp_path / "model"
    capsys.readouterr()
    assert main(["train", str(config), "--out", str(out), "--refit-full"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == sum_sign.name
    # Refit on fit and validation together: 180 + 60 sequences; 60 held out for the test.
    assert (metrics["train_size"], metrics["validation_size"], metrics["test_size"]) == (
        240,
        60,
        60,
    )
    assert f"Test accuracy: {metrics['accuracy']:.4f} (baseline " in printed
    assert f"Confusion matrix (rows true, columns predicted): {metrics['confusion_matrix']}" in (
        printed
    )

    page = write_train_report(load_metrics(out / "metrics.json"), tmp_path / "report.html")
    html = page.read_text(encoding="utf-8")
    assert re.findall(r'<section id="([^"]+)"', html) == ["test-metrics", "confusion-matrix"]
    assert 'id="confusion-matrix-figure"' in html
    assert f"<th>accuracy</th><td>{metrics['accuracy']:.4f}</td>" in html

    inputs = tmp_path / "sequences.txt"
    rng = np.random.default_rng(9)
    sequences = rng.normal(size=(5, STEPS))
    inputs.write_text("\n".join(" ".join(f"{v:.6f}" for v in row) for row in sequences) + "\n")
    rows = load_model(out).predict(inputs)  # type: ignore[attr-defined]
    assert len(rows) == 5 and all(0.0 <= row["positive"] <= 1.0 for row in rows)
    model = keras.saving.load_model(out / "model.keras")
    own = model.predict(np.round(sequences, 6).astype(np.float32)[..., None], verbose=0)[:, 0]
    np.testing.assert_allclose([row["positive"] for row in rows], own, rtol=1e-5)


def test_the_defaults_refuse_a_split_type_they_do_not_know(sum_sign: SumSign) -> None:
    prepared = Prepared(fit=[1, 2, 3], validation=[4], test=[5])
    assert sum_sign.size(prepared.fit) == 3
    with pytest.raises(TypeError, match=r"SumSign\.sample: the split is a list; .* overrides"):
        sum_sign.sample(prepared.fit, 2, seed=0)
    with pytest.raises(TypeError, match=r"with_validation_in_fit: the split is a list"):
        sum_sign.with_validation_in_fit(prepared)


def test_examples_take_and_follow_arrays_and_lists_alike() -> None:
    arrays = Examples(np.arange(10).reshape(5, 2), np.arange(5))
    ragged = Examples([np.arange(n) for n in range(5)], np.arange(5))
    for split in (arrays, ragged):
        picked = split.take(np.array([3, 1]))
        assert picked.targets.tolist() == [3, 1] and len(picked) == 2
        assert np.array_equal(picked.inputs[0], split.inputs[3])
        both = split.followed_by(picked)
        assert both.targets.tolist() == [0, 1, 2, 3, 4, 3, 1] and len(both.inputs) == 7
    assert isinstance(arrays.take(np.array([0])).inputs, np.ndarray)
    sample = SumSign().sample(arrays, 3, seed=4)
    assert len(sample) == 3 and sample.targets.tolist() == sorted(sample.targets.tolist())
    again = SumSign().sample(arrays, 3, seed=4)
    assert np.array_equal(again.inputs, sample.inputs)  # the same seed, the same sample
    assert len(SumSign().sample(arrays, 50, seed=4)) == 5
