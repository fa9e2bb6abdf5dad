"""Retrain one config and evaluate it on the held-out test split, as the seed notebook does.

The model is trained on the same fit/validation split the search used, for the trial's
``best_epoch`` epochs when the config came from ``export-best`` and for ``training.epochs``
otherwise. The task computes the test metrics and its trivial baseline.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from lstm_tune.config import StudySpec
from lstm_tune.results.inference import save_model_dir
from lstm_tune.results.report import summary_text
from lstm_tune.tasks import get_task
from lstm_tune.training.fit import fit
from lstm_tune.tuning.export import installed_versions


@dataclass(frozen=True)
class Evaluation:
    """Where the artifacts went and the metrics written to ``metrics.json``."""

    out_dir: Path
    metrics: dict[str, Any]


def retrain_and_evaluate(
    spec: StudySpec, out_dir: str | Path, *, refit_full: bool = False
) -> Evaluation:
    """Train the config ``spec`` describes, evaluate it on the test split and write reports.

    ``refit_full`` trains on the fit and validation splits together for the chosen number of
    epochs (the validation values it records are then not held out, only a sanity check).
    """
    params = spec.fixed_params()
    epochs = spec.result.best_epoch if spec.result is not None else spec.training.epochs
    task = get_task(spec.task)
    prepared = task.for_params(task.load(spec.data, spec.seed), params)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(spec.seed)
    model = task.build(params, prepared)
    objective = spec.objective
    started = time.perf_counter()
    training = task.with_validation_in_fit(prepared) if refit_full else prepared
    recorder = fit(
        model,
        task.batches(training.fit, params, shuffle_seed=spec.seed),
        task.batches(prepared.validation, params, shuffle_seed=None),
        objective=objective,
        epochs=epochs,
        planned_epochs=spec.training.epochs,  # the trial's schedule, if it had one
    )
    train_seconds = time.perf_counter() - started
    metrics: dict[str, Any] = {"task": task.name, "metric": objective.name}
    metrics.update(task.evaluate(model, prepared, params))
    metrics.update(
        params=params,
        epochs=epochs,
        train_size=task.size(training.fit),
        refit_full=refit_full,
        validation_size=task.size(prepared.validation),
        test_size=task.size(prepared.test),
        validation_per_epoch=recorder.values,
        history=recorder.history,
        seconds_per_epoch=recorder.seconds_per_epoch,
        train_seconds=train_seconds,
        param_count=int(model.count_params()),
    )
    save_model_dir(out, model, spec, prepared, installed_versions())
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return Evaluation(out, metrics)


def summary(metrics: dict[str, Any]) -> str:
    """The short text report of ``metrics`` for the terminal."""
    return summary_text(metrics)
