"""A model directory trained with every knob of its task: `predict`, in a fresh process, gives
what the model's own evaluation gave when `train` wrote the directory (metrics.json)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from lstm_tune.cli import main
from lstm_tune.config import load_spec
from lstm_tune.tasks import get_task
from tests.helpers import ROOT, etth1_forecaster, require_or_skip
from tests.helpers.studies import write_study

SHARED = ROOT.parent / "shared" / "data"
TINY = {
    "hidden_size": 6,
    "num_layers": 2,
    "learning_rate": 0.01,
    "dropout_rate": 0.1,
    "batch_size": 32,
}
COMMON = {"weight_decay": 0.01, "clipnorm": 0.5, "lr_schedule": "cosine", "lr_warmup": 0.2}


def _train(tmp: Path, doc: dict[str, object]) -> tuple[Path, dict[str, object]]:
    config = write_study(tmp, filename="config.yaml", **doc)
    out = tmp / "model"
    assert main(["train", str(config), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    preprocessing = json.loads((out / "preprocessing.json").read_text())
    assert preprocessing["params"] == doc["params"]  # every knob recorded for predict
    assert load_spec(out / "config.yaml").fixed_params() == doc["params"]
    return out, metrics


def _predict(model_dir: Path, *args: str) -> list[dict[str, str]]:
    """`lstm-tune predict` in a fresh interpreter; its output rows."""
    out = model_dir.parent / "predicted.csv"
    result = subprocess.run(
        [sys.executable, "-m", "lstm_tune.cli", "predict", str(model_dir), *args, "-o", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    with out.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_text_model_with_every_knob_predicts_what_its_evaluation_gave(
    imdb_slice: Path, tmp_path: Path
) -> None:
    params = {
        **TINY,
        "sequence_length": 60,
        **COMMON,
        "embedding_size": 5,
        "bidirectional": True,
        "pooling": "attention",
        "max_features": 300,
    }
    doc = {
        "name": "knobs",
        "seed": 2,
        "data": {"path": str(imdb_slice), "max_features": 1000},
        "training": {"epochs": 1},
        "params": params,
    }
    model_dir, metrics = _train(tmp_path, doc)
    state = json.loads((model_dir / "preprocessing.json").read_text())["state"]
    assert len(state["vocabulary"]) == 300 - 2  # the knob's vocabulary, not data's 1000
    with imdb_slice.open(newline="", encoding="utf-8") as f:
        test_rows = [row for row in csv.DictReader(f) if row["split"] == "test"]
    raw = tmp_path / "new.csv"
    with raw.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["review"], *([r["review"]] for r in test_rows)])
    rows = _predict(model_dir, str(raw), "--batch-size", "50")
    assert len(rows) == len(test_rows) == metrics["test_size"] == 400
    # The evaluation train ran on the test split: its accuracy and cross-entropy.
    names = metrics["class_names"]
    probabilities = np.array([[float(r[f"probability_{n}"]) for n in names] for r in rows])
    labels = np.array([names.index(r["sentiment"]) for r in test_rows])
    assert float(np.mean(probabilities.argmax(axis=1) == labels)) == metrics["accuracy"]
    nats = -np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-15, 1)))
    assert nats == pytest.approx(metrics["cross_entropy"], abs=1e-5)
    # And the loaded model, in this process, row by row.
    from lstm_tune.tasks.text_classification.task import predict_proba

    spec = load_spec(model_dir / "config.yaml")
    prepared = get_task(spec.task).load(spec.data, spec.seed)
    model = keras.saving.load_model(model_dir / "model.keras", compile=False)
    expected = predict_proba(model, prepared.test, spec.fixed_params())
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


@pytest.mark.slow
def test_a_forecaster_with_every_knob_forecasts_what_its_evaluation_gave(tmp_path: Path) -> None:
    params = {
        **TINY,
        "sequence_length": 24,
        **COMMON,
        "predict_change": True,
        "bidirectional": True,
    }
    doc, lines = etth1_forecaster(tmp_path, params)
    model_dir, metrics = _train(tmp_path, doc)
    assert metrics["predict_change"] is True
    state = json.loads((model_dir / "preprocessing.json").read_text())["state"]
    assert state["predict_change"] is True
    history = tmp_path / "history.csv"
    history.write_text("".join(lines[: 1 + 750]))  # up to the first test target
    rows = _predict(model_dir, str(history))
    # The evaluation's first test window, as the report plots it (rounded to 4 decimals).
    evaluated = metrics["forecast_plot"]["series"]["OT"]["forecast"][:6]
    np.testing.assert_allclose([float(r["OT"]) for r in rows], evaluated, atol=1e-4)


@pytest.mark.slow
def test_a_language_model_with_every_knob_scores_and_writes_what_its_evaluation_did(
    tmp_path: Path,
) -> None:
    text = SHARED / "tinyshakespeare.txt"
    if not text.exists():
        require_or_skip(f"Tiny Shakespeare is not at {text}")
    data = tmp_path / "shakespeare.txt"
    data.write_text(text.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    params = {**TINY, "sequence_length": 32, **COMMON, "embedding_size": 4}
    doc = {
        "name": "lm",
        "task": "language_model",
        "seed": 1,
        "data": {"path": str(data), "level": "char"},
        "training": {"epochs": 1},
        "params": params,
    }
    model_dir, metrics = _train(tmp_path, doc)
    from lstm_tune.tasks.language_model import (
        continue_ids,
        cross_entropy,
        detokenize,
        encode,
        tokenize,
    )

    spec = load_spec(model_dir / "config.yaml")
    prepared = get_task(spec.task).load(spec.data, spec.seed)
    model = keras.saving.load_model(model_dir / "model.keras", compile=False)
    assert model.layers[0].output_dim == 4  # the embedding
    nats = cross_entropy(model, prepared.test, spec.fixed_params())
    assert nats == pytest.approx(metrics["cross_entropy"], abs=1e-5)
    (row,) = _predict(model_dir, "--prompt", "ROMEO:", "--length", "30", "--temperature", "0.7")
    state = json.loads((model_dir / "preprocessing.json").read_text())["state"]
    written = continue_ids(
        model,
        encode(tokenize("ROMEO:", "char"), state["vocabulary"]),
        30,
        0.7,
        np.random.default_rng(0),  # predict's seed when none is given
    )
    assert row["text"] == detokenize([state["vocabulary"][i] for i in written], "char")
