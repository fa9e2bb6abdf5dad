"""One trial: params → data → model → training → validation accuracy.

The only module that ties Optuna to training: it samples through ``space``, reports each
epoch's validation accuracy to the pruner (optuna-integration's ``KerasPruningCallback``),
and records the trial's history and timings as user attributes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import keras
import optuna
from optuna_integration import KerasPruningCallback

from lstm_tune.config import StudySpec
from lstm_tune.data import Corpus, Split, review_lengths, sample_of, split_validation
from lstm_tune.model import build_model
from lstm_tune.preflight import (
    ConfigTooLarge,
    available_memory_bytes,
    check_fits,
    estimate_epoch_seconds,
    forward_lengths,
    time_warning,
)
from lstm_tune.space import suggest
from lstm_tune.training import CheckpointEvaluator, EpochRecorder, TrainingDiverged, fit

# Called with the trial, the trained model and its recorder once a trial completes, so a
# caller can keep artifacts (the best model file, plots) without this module knowing how.
TrialModelHook = Callable[[optuna.trial.Trial, keras.Model, EpochRecorder], None]
# Called after every epoch with the running trial (terminal progress).
TrialEpochHook = Callable[[optuna.trial.Trial, EpochRecorder], None]
# Called when the pruner stops a trial, while it can still take artifacts (plots, notes);
# the recorder is None if it stopped before any epoch ended.
TrialPrunedHook = Callable[[optuna.trial.Trial, EpochRecorder | None], None]

log = logging.getLogger(__name__)


def make_objective(
    spec: StudySpec,
    corpus: Corpus,
    *,
    on_trained: TrialModelHook | None = None,
    on_epoch: TrialEpochHook | None = None,
    on_pruned: TrialPrunedHook | None = None,
) -> Callable[[optuna.trial.Trial], float]:
    """Return the objective for ``spec``: it trains one model per trial on ``corpus``."""
    fit_split, val_split = split_validation(corpus.train, spec.data.validation_split, spec.seed)
    fit_lengths = review_lengths(fit_split)
    predicted_lengths = forward_lengths(
        review_lengths(val_split),
        len(fit_split),
        spec.training.report_every,
        spec.training.report_sample,
    )

    def pruning_callback(
        trial: optuna.trial.Trial, params: dict[str, int | float], val_split: Split
    ) -> keras.callbacks.Callback:
        every = spec.training.report_every
        if every is None:
            return KerasPruningCallback(trial, "val_accuracy")
        # optuna-integration's callback reports only at epoch ends; reporting within epochs
        # needs our own, on a fixed validation sample so checkpoints compare across trials.

        def report(step: int, accuracy: float) -> None:
            trial.report(accuracy, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at checkpoint {step} ({step * every} reviews)")

        return CheckpointEvaluator(
            every_reviews=every,
            sample=sample_of(val_split, spec.training.report_sample, spec.seed),
            sequence_length=int(params["sequence_length"]),
            batch_size=int(params["batch_size"]),
            on_checkpoint=report,
        )

    def objective(trial: optuna.trial.Trial) -> float:
        params = suggest(trial, spec.space)
        # Each trial starts from a clean Keras state so layers and graphs of earlier trials
        # are freed, and from the study seed so a config retrains to the same weights.
        keras.backend.clear_session(free_memory=True)
        keras.utils.set_random_seed(spec.seed)
        try:
            estimate = check_fits(params, corpus.vocab_size, available_memory_bytes())
        except ConfigTooLarge as exc:
            trial.set_user_attr("fail_reason", str(exc))
            raise
        trial.set_user_attr("estimated_peak_mib", round(estimate.total / 2**20))
        seconds = estimate_epoch_seconds(params, fit_lengths, predicted_lengths)
        trial.set_user_attr("estimated_seconds_per_epoch", round(seconds, 1))
        warning = time_warning(seconds, spec.training.epochs, spec.search.timeout)
        if warning is not None:
            log.warning("trial %d: %s", trial.number, warning)
        model = build_model(params, corpus.vocab_size)
        trial.set_user_attr("param_count", int(model.count_params()))

        latest: EpochRecorder | None = None

        def record(recorder: EpochRecorder) -> None:
            nonlocal latest
            latest = recorder
            trial.set_user_attr("history", recorder.history)
            trial.set_user_attr("val_accuracy_per_epoch", recorder.history["val_accuracy"])
            trial.set_user_attr("seconds_per_epoch", recorder.seconds_per_epoch)
            trial.set_user_attr("best_epoch", recorder.best_epoch)
            if on_epoch is not None:
                on_epoch(trial, recorder)

        try:
            recorder = fit(
                model,
                fit_split,
                val_split,
                sequence_length=int(params["sequence_length"]),
                batch_size=int(params["batch_size"]),
                epochs=spec.training.epochs,
                seed=spec.seed,
                callbacks=[pruning_callback(trial, params, val_split)],
                on_epoch=record,
            )
        except TrainingDiverged as exc:
            trial.set_user_attr("fail_reason", str(exc))
            raise
        except optuna.TrialPruned:
            if on_pruned is not None:
                on_pruned(trial, latest)
            raise
        if on_trained is not None:
            on_trained(trial, model, recorder)
        return recorder.best_value

    return objective
