"""Finalists re-validated: the best few configs retrained over several seeds before export.

A search's best trial is the maximum of noisy evaluations, so it tends to retrain worse than
it scored (winner's curse). ``lstm-tune finalize`` takes the top ``k`` distinct configs,
retrains each ``seeds`` times on the same fit/validation split for its trial's best epoch
count, and exports the one with the best mean validation value; mean and standard deviation
of every finalist go into the exported YAML (``result.finalists``) and onto the study
(``lstm_tune_finalists``, shown by ``lstm-tune report``). The cost is estimated up front from
the pre-flight time estimate, and a budget caps it. With ``training.early_stopping`` each run
trains as ``train`` does (at most ``training.epochs``, stopping on the validation split,
keeping its best epoch), and the estimate counts the maximum.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lstm_tune.config import StudySpec, parse_spec, spec_to_dict, with_data
from lstm_tune.errors import ConfigError
from lstm_tune.tasks import get_task
from lstm_tune.types import Prepared

if TYPE_CHECKING:
    import keras

    from lstm_tune.training.fit import EarlyStopper

FINALISTS_ATTR = "lstm_tune_finalists"
# Seconds in a minute, for the estimate and budget line.
MINUTE = 60


@dataclass
class Finalist:
    """One config's re-validation: the validation value after each seed's retraining."""

    trial_number: int
    trial_value: float
    params: dict[str, Any]
    epochs: int
    values: list[float] = field(default_factory=list)
    # With early stopping: each run's best epoch (the one whose weights it kept).
    best_epochs: list[int] = field(default_factory=list)

    @property
    def mean(self) -> float:
        """Mean validation value over the seeds run."""
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        """Sample standard deviation over the seeds (0 for one seed)."""
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "trial_number": self.trial_number,
            "trial_value": self.trial_value,
            "epochs": self.epochs,
            "values": self.values,
            "mean": self.mean,
            "std": self.std,
            "params": self.params,
            **({"best_epochs": self.best_epochs} if self.best_epochs else {}),
        }


def top_trials(study: optuna.Study, count: int) -> list[FrozenTrial]:
    """The ``count`` best complete trials with distinct params, best first."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    ranked = sorted(complete, key=lambda t: t.value or 0.0, reverse=maximize)
    chosen: list[FrozenTrial] = []
    seen: set[tuple[tuple[str, Any], ...]] = set()
    for trial in ranked:
        key = tuple(sorted(trial.params.items()))
        if key not in seen:
            seen.add(key)
            chosen.append(trial)
        if len(chosen) == count:
            break
    return chosen


def _epochs(trial: FrozenTrial, spec: StudySpec) -> int:
    return int(trial.user_attrs.get("best_epoch", spec.training.epochs))


def final_stopper(spec: StudySpec, fit_size: int) -> EarlyStopper | None:
    """The early stopping of a final training (``train``, ``finalize``) on ``fit_size``
    training examples: ``spec``'s, checked at epoch ends on the whole validation split. A
    patience counted in checkpoints (``report_every``) becomes the epochs that hold as many
    training examples, at least one. None when ``spec`` does not stop early."""
    from lstm_tune.training.fit import EarlyStopper

    stopping = spec.training.early_stopping
    if stopping is None:
        return None
    patience = stopping.patience
    every = spec.training.report_every
    if every is not None:
        patience = max(1, math.ceil(patience * every / max(1, fit_size)))
    return EarlyStopper(
        spec.objective, patience=patience, min_delta=stopping.min_delta, per_checkpoint=False
    )


def estimated_seconds(
    spec: StudySpec, prepared: Prepared, trials: list[FrozenTrial], seeds: int
) -> float:
    """Pre-flight time estimate of retraining every finalist ``seeds`` times: for its trial's
    best epoch count, or for the maximum (``training.epochs``) when runs stop early."""
    task = get_task(spec.task)
    stops_early = spec.training.early_stopping is not None
    return seeds * sum(
        (spec.training.epochs if stops_early else _epochs(t, spec))
        * task.estimate(t.params, prepared).epoch_seconds
        for t in trials
    )


def revalidate(
    spec: StudySpec,
    prepared: Prepared,
    trials: list[FrozenTrial],
    *,
    seeds: int,
    budget: float | None,
    on_run: Callable[[Finalist, int, keras.Model], None] | None = None,
) -> list[Finalist]:
    """Retrain each trial's config with seeds ``spec.seed``, ``spec.seed + 1``, ...; the
    value of a run is its last epoch's validation value (what ``train`` keeps). With
    ``training.early_stopping`` a run trains for at most ``training.epochs``, stops as
    ``train`` does and keeps its best epoch, whose value is the run's. Seeds run
    round-robin over the finalists, so a budget that runs out leaves each with as many runs
    as the others (or one fewer). ``on_run`` sees each run's finalist, seed and trained
    model (e.g. to evaluate it further)."""
    import keras

    from lstm_tune.training.fit import fit

    task = get_task(spec.task)
    objective = spec.objective
    finalists = [
        Finalist(t.number, float(t.value or 0.0), dict(t.params), _epochs(t, spec)) for t in trials
    ]
    started = time.perf_counter()
    for offset in range(seeds):
        for finalist in finalists:
            if budget is not None and time.perf_counter() - started > budget and offset > 0:
                return finalists
            seed = spec.seed + offset
            keras.backend.clear_session(free_memory=True)
            keras.utils.set_random_seed(seed)
            data = task.for_params(prepared, finalist.params)
            model = task.build(finalist.params, data)
            stopper = final_stopper(spec, task.size(data.fit))
            recorder = fit(
                model,
                task.batches(data.fit, finalist.params, shuffle_seed=seed),
                task.batches(data.validation, finalist.params, shuffle_seed=None),
                objective=objective,
                epochs=finalist.epochs if stopper is None else spec.training.epochs,
                callbacks=[] if stopper is None else [stopper],
                restore_best=stopper is not None,
                planned_epochs=spec.training.epochs,  # the trial's schedule, if it had one
            )
            if stopper is None:
                finalist.values.append(recorder.values[-1])
            else:
                finalist.values.append(recorder.best_value)
                finalist.best_epochs.append(recorder.best_epoch)
            if on_run is not None:
                on_run(finalist, seed, model)
    return finalists


def winner(spec: StudySpec, finalists: list[Finalist]) -> Finalist:
    """The finalist with the best mean (ties: the better trial value, i.e. the earlier)."""
    better = max if spec.objective.direction == "maximize" else min
    return better(finalists, key=lambda f: f.mean)


def finalize_study(
    base: StudySpec,
    study: optuna.Study,
    *,
    finalists: int,
    seeds: int,
    budget: float | None,
    say: Callable[[str], None],
) -> tuple[list[Finalist], Finalist]:
    """What ``lstm-tune finalize`` does between reading the study and writing the winner:
    estimate the cost (refused when above ``budget`` seconds), re-validate the ``finalists``
    best configs over ``seeds`` seeds, record them on ``study``; return them and the winner.
    ``base`` is the best trial's config (:func:`lstm_tune.tuning.export.best_config`)."""
    trials = top_trials(study, finalists)
    task = get_task(base.task)
    # Data knobs (a vocabulary size) differ between finalists: load at the largest of them,
    # as the search did, and cut it to each one's (Task.for_params).
    largest = {
        name: max(t.params[name] for t in trials if name in t.params)
        for name in task.data_knobs
        if any(name in t.params for t in trials)
    }
    prepared = task.load(with_data(base, **largest).data, base.seed)
    estimate = estimated_seconds(base, prepared, trials, seeds)
    say(
        f"re-validating {len(trials)} finalists x {seeds} seeds: about "
        f"{estimate / MINUTE:.0f} min by the pre-flight estimate"
        + (f" (budget {budget / MINUTE:.0f} min)" if budget else "")
    )
    if budget is not None and estimate > budget:
        raise ConfigError(
            f"--budget {budget:.0f} s is below the estimated {estimate:.0f} s; give "
            f"fewer --finalists or --seeds, or a larger --budget"
        )
    metric = base.search.metric

    def report_run(finalist: Finalist, seed: int, _model: object) -> None:
        say(f"trial {finalist.trial_number} seed {seed}: {metric}={finalist.values[-1]:.4f}")

    done = revalidate(base, prepared, trials, seeds=seeds, budget=budget, on_run=report_run)
    chosen = winner(base, done)
    study.set_user_attr(FINALISTS_ATTR, [f.as_dict() for f in done])
    return done, chosen


def finalized_config(
    base: StudySpec, chosen: Finalist, finalists: list[Finalist], study_name: str
) -> StudySpec:
    """The exported config of ``chosen``, with every finalist's re-validation in its result."""
    if base.result is None:
        raise ConfigError("finalize needs a best-trial config with its result")
    doc = spec_to_dict(base, params=chosen.params)
    doc["result"] = {
        **base.result.model_dump(mode="json"),
        "value": chosen.trial_value,
        "best_epoch": chosen.epochs,
        "study_name": study_name,
        "trial_number": chosen.trial_number,
        "finalists": [f.as_dict() for f in finalists],
    }
    return parse_spec(doc, f"finalist trial {chosen.trial_number} of study {study_name!r}")
