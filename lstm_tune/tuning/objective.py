"""One trial: params → the task's data and model → training → the validation metric.

The only module that ties Optuna to training: it samples through ``space``, reports the
study's metric (the task's :class:`~lstm_tune.tasks.base.Objective`) to the pruner at each
epoch end (optuna-integration's ``KerasPruningCallback``) or checkpoint, and records the
trial's history and timings as user attributes. It asks the task for everything else.

A trial another worker takes from this one (failed as stale while this process was paused) is
dropped at once: training stops at the next batch after the heartbeat thread notices, and no
artifact hook runs for it (:class:`~lstm_tune.storages.ledger.TrialTaken`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import keras
import optuna
from optuna_integration import KerasPruningCallback

from lstm_tune.config import StudySpec
from lstm_tune.storages.ledger import noticed_taken, taken_trial
from lstm_tune.tasks import get_task
from lstm_tune.training.fit import (
    CheckpointEvaluator,
    EarlyStopper,
    EpochRecorder,
    TrainingDiverged,
    fit,
)
from lstm_tune.training.preflight import (
    ConfigTooLarge,
    available_memory_bytes,
    check_fits,
    time_warning,
)
from lstm_tune.training.tensorboard import TrialTensorBoard, trial_log_dir
from lstm_tune.tuning.space import Params, suggest
from lstm_tune.types import Prepared

# Called with the trial, the trained model and its recorder once a trial completes, so a
# caller can keep artifacts (the best model file, plots) without this module knowing how.
TrialModelHook = Callable[[optuna.trial.Trial, keras.Model, EpochRecorder], None]
# Called after every epoch with the running trial (terminal progress).
TrialEpochHook = Callable[[optuna.trial.Trial, EpochRecorder], None]
# Called when the pruner stops a trial, while it can still take artifacts (plots, notes);
# the recorder is None if it stopped before any epoch ended.
TrialPrunedHook = Callable[[optuna.trial.Trial, EpochRecorder | None], None]

log = logging.getLogger(__name__)


class _StopWhenTaken(keras.callbacks.Callback):  # type: ignore[misc]
    """Stops training between two batches once the trial is found taken from this worker."""

    def __init__(self, trial_id: int) -> None:
        super().__init__()
        self.trial_id = trial_id

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        taken = noticed_taken(self.trial_id)
        if taken is not None:
            raise taken


def _ensure_own(trial: optuna.trial.Trial) -> None:
    """Raise :class:`~lstm_tune.storages.ledger.TrialTaken` if ``trial`` is no longer this
    worker's (one read), so nothing (a plot, a model) is uploaded for it."""
    taken = taken_trial(trial._trial_id)
    if taken is not None:
        raise taken


def make_objective(
    spec: StudySpec,
    prepared: Prepared,
    *,
    on_trained: TrialModelHook | None = None,
    on_epoch: TrialEpochHook | None = None,
    on_pruned: TrialPrunedHook | None = None,
) -> Callable[[optuna.trial.Trial], float]:
    """Return the objective for ``spec``: it trains one model per trial on ``prepared``."""
    task = get_task(spec.task)
    objective_metric = spec.objective
    every = spec.training.report_every
    checkpoints = task.size(prepared.fit) // every if every else 0
    # The checkpoints' validation sample of each config's data (per value of the task's
    # data knobs: a vocabulary size's ids differ).
    samples: dict[tuple[object, ...], object] = {}

    def checkpoint_sample(data: Prepared, params: Params) -> object:
        key = tuple(params.get(name) for name in task.data_knobs)
        if key not in samples:
            samples[key] = task.sample(data.validation, spec.training.report_sample, spec.seed)
        return samples[key]

    stopping = spec.training.early_stopping

    def early_stopper() -> EarlyStopper | None:
        if stopping is None:
            return None
        return EarlyStopper(
            objective_metric,
            patience=stopping.patience,
            min_delta=stopping.min_delta,
            per_checkpoint=every is not None,
        )

    def pruning_callback(
        trial: optuna.trial.Trial,
        params: Params,
        data: Prepared,
        board: TrialTensorBoard | None,
        stopper: EarlyStopper | None,
    ) -> keras.callbacks.Callback:
        if every is None:
            return KerasPruningCallback(trial, objective_metric.name)
        # optuna-integration's callback reports only at epoch ends; reporting within epochs
        # needs our own, on a fixed validation sample so checkpoints compare across trials.

        def report(step: int, value: float) -> None:
            if board is not None:
                board.log_checkpoint(step, value)
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"pruned at checkpoint {step} ({step * every} {task.example_noun})"
                )
            if stopper is not None:
                stopper.on_checkpoint(step, value)

        sample = checkpoint_sample(data, params)
        return CheckpointEvaluator(
            every_examples=every,
            batch_size=int(params["batch_size"]),
            score=lambda model: task.score(model, sample, params, objective_metric.name),
            on_checkpoint=report,
        )

    def objective(trial: optuna.trial.Trial) -> float:
        params = suggest(trial, spec.space)
        # Each trial starts from a clean Keras state so layers and graphs of earlier trials
        # are freed, and from the study seed so a config retrains to the same weights.
        keras.backend.clear_session(free_memory=True)
        keras.utils.set_random_seed(spec.seed)
        data = task.for_params(prepared, params)  # e.g. at the trial's vocabulary size
        try:
            estimate = task.estimate(params, data, checkpoints, spec.training.report_sample)
            memory = check_fits(estimate.memory, params, available_memory_bytes())
        except ConfigTooLarge as exc:
            trial.set_user_attr("fail_reason", str(exc))
            raise
        trial.set_user_attr("estimated_peak_mib", round(memory.total / 2**20))
        seconds = estimate.epoch_seconds
        trial.set_user_attr("estimated_seconds_per_epoch", round(seconds, 1))
        warning = time_warning(seconds, spec.training.epochs, spec.search.timeout)
        if warning is not None:
            log.warning("trial %d: %s", trial.number, warning)
        model = task.build(params, data)
        trial.set_user_attr("param_count", int(model.count_params()))

        latest: EpochRecorder | None = None

        def record(recorder: EpochRecorder) -> None:
            nonlocal latest
            latest = recorder
            trial.set_user_attr("history", recorder.history)
            trial.set_user_attr(f"{recorder.metric_name}_per_epoch", recorder.values)
            trial.set_user_attr("seconds_per_epoch", recorder.seconds_per_epoch)
            trial.set_user_attr("best_epoch", recorder.best_epoch)
            if on_epoch is not None:
                on_epoch(trial, recorder)

        board = None
        if spec.training.tensorboard is not None:
            log_dir = trial_log_dir(
                spec.training.tensorboard, trial.study.study_name, trial.number
            )
            board = TrialTensorBoard(log_dir, objective_metric.name)
        stopper = early_stopper()
        # The board comes before the pruning callback, so a pruned epoch is in its curve too.
        callbacks = [
            pruning_callback(trial, params, data, board, stopper),
            *([stopper] if stopper is not None else []),
            _StopWhenTaken(trial._trial_id),
        ]
        try:
            recorder = fit(
                model,
                task.batches(data.fit, params, shuffle_seed=spec.seed),
                task.batches(data.validation, params, shuffle_seed=None),
                objective=objective_metric,
                epochs=spec.training.epochs,
                callbacks=callbacks if board is None else [board, *callbacks],
                on_epoch=record,
            )
        except TrainingDiverged as exc:
            trial.set_user_attr("fail_reason", str(exc))
            raise
        except optuna.TrialPruned:
            if on_pruned is not None:
                _ensure_own(trial)
                on_pruned(trial, latest)
            raise
        finally:
            if board is not None:
                board.close()
        if stopper is not None:
            _record_stop(trial, stopper, recorder)
        if on_trained is not None:
            _ensure_own(trial)
            on_trained(trial, model, recorder)
        return recorder.best_value

    return objective


def _record_stop(
    trial: optuna.trial.Trial, stopper: EarlyStopper, recorder: EpochRecorder
) -> None:
    """Record on ``trial`` why and when early stopping ended it (nothing if it ran to the
    maximum): ``stop_reason``, ``stopped_at_epoch`` and, counting checkpoints,
    ``stopped_at_checkpoint``. The trial keeps its best epoch's value either way."""
    reason = stopper.reason()
    if reason is None or stopper.stopped_at is None:
        return
    trial.set_user_attr("stop_reason", f"early stopping: {reason}")
    trial.set_user_attr("stopped_at_epoch", len(recorder.values))
    if stopper.per_checkpoint:
        trial.set_user_attr("stopped_at_checkpoint", stopper.stopped_at)
