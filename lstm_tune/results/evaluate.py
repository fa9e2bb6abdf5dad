"""Retrain one config and evaluate it on the held-out test split, as the seed notebook does.

The model is trained on the same fit/validation split the search used. With
``training.early_stopping`` in the config it trains for at most ``training.epochs`` (or the
``epochs`` given), stops on the validation split as the trials did and keeps its best epoch's
weights. Without it, it trains for the trial's ``best_epoch`` epochs when the config came from
``export-best`` and for ``training.epochs`` otherwise (or the ``epochs`` given), as before.
``refit_full`` trains on fit and validation together, so it never stops early: it runs the
best epoch count found with validation. The task computes the test metrics and its trivial
baseline.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from lstm_tune.config import EarlyStoppingSpec, StudySpec
from lstm_tune.results.inference import save_model_dir
from lstm_tune.results.report import summary_text
from lstm_tune.tasks import get_task
from lstm_tune.training.fit import fit
from lstm_tune.tuning.export import installed_versions
from lstm_tune.tuning.finalize import final_stopper


@dataclass(frozen=True)
class Evaluation:
    """Where the artifacts went and the metrics written to ``metrics.json``."""

    out_dir: Path
    metrics: dict[str, Any]


@dataclass(frozen=True)
class TrainingPlan:
    """How long ``train`` trains: at most ``epochs``, stopping early when ``early_stopping``
    (patience in epochs) is set, then keeping the best epoch's weights."""

    epochs: int
    early_stopping: EarlyStoppingSpec | None


def training_plan(
    spec: StudySpec, *, refit_full: bool = False, epochs: int | None = None
) -> TrainingPlan:
    """What :func:`retrain_and_evaluate` trains ``spec`` for; ``epochs`` overrides the count
    (the maximum, with early stopping)."""
    stopping = spec.training.early_stopping
    if stopping is not None and not refit_full:
        return TrainingPlan(epochs or spec.training.epochs, stopping)
    chosen = spec.result.best_epoch if spec.result is not None else spec.training.epochs
    return TrainingPlan(epochs or chosen, None)


def retrain_and_evaluate(
    spec: StudySpec,
    out_dir: str | Path,
    *,
    refit_full: bool = False,
    epochs: int | None = None,
) -> Evaluation:
    """Train the config ``spec`` describes, evaluate it on the test split and write reports.

    ``refit_full`` trains on the fit and validation splits together for the chosen number of
    epochs (the validation values it records are then not held out, only a sanity check).
    ``epochs`` replaces the number of epochs (the maximum when the config stops early).
    """
    params = spec.fixed_params()
    plan = training_plan(spec, refit_full=refit_full, epochs=epochs)
    task = get_task(spec.task)
    prepared = task.for_params(task.load(spec.data, spec.seed), params)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(spec.seed)
    model = task.build(params, prepared)
    objective = spec.objective
    started = time.perf_counter()
    training = task.with_validation_in_fit(prepared) if refit_full else prepared
    stopper = final_stopper(spec, task.size(training.fit)) if plan.early_stopping else None
    recorder = fit(
        model,
        task.batches(training.fit, params, shuffle_seed=spec.seed),
        task.batches(prepared.validation, params, shuffle_seed=None),
        objective=objective,
        epochs=plan.epochs,
        callbacks=[stopper] if stopper is not None else [],
        restore_best=stopper is not None,
        # A schedule spans the trial's planned epochs (so `train` replays its rates), or the
        # epochs run here when more.
        planned_epochs=max(plan.epochs, spec.training.epochs),
    )
    train_seconds = time.perf_counter() - started
    metrics: dict[str, Any] = {"task": task.name, "metric": objective.name}
    metrics.update(task.evaluate(model, prepared, params))
    if stopper is not None:
        metrics["early_stopping"] = {
            "patience_epochs": stopper.patience,
            "min_delta": abs(stopper.min_delta),
            "max_epochs": plan.epochs,
            "stop_reason": stopper.reason(),
            # The kept (best epoch's) weights scored on the validation split again.
            "validation_value": task.score(model, prepared.validation, params, objective.name),
        }
    metrics.update(
        params=params,
        epochs=len(recorder.values),
        best_epoch=recorder.best_epoch,
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
