"""One worker: create or load the study, run trials until the shared budget is reached.

The budget (``n_trials``) counts the study's finished trials (complete + pruned) across all
workers, so running the same command again resumes a study instead of adding to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from lstm_tune.config import StudySpec, spec_to_dict
from lstm_tune.errors import StorageError, exception_chain
from lstm_tune.storages import BUDGET_ATTR, describe_storage_error
from lstm_tune.tasks import get_task
from lstm_tune.training.fit import TrainingDiverged
from lstm_tune.training.preflight import ConfigTooLarge
from lstm_tune.tuning import studies
from lstm_tune.tuning.objective import (
    TrialEpochHook,
    TrialModelHook,
    TrialPrunedHook,
    make_objective,
)
from lstm_tune.tuning.sampler_and_pruner import Strategy
from lstm_tune.types import Prepared

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
# A worker gives up after this many failed trials in a row: the cause is then the setup
# (data, memory), not one unlucky config, and looping on it would never finish the budget.
MAX_CONSECUTIVE_FAILURES = 5
StudyCallback = Callable[[optuna.study.Study, FrozenTrial], None]


@dataclass(frozen=True)
class SearchOutcome:
    """How a worker's run ended."""

    study: optuna.study.Study
    finished: int
    budget: int
    stopped_because: str
    gave_up: bool = False


def count_finished(study: optuna.study.Study) -> int:
    """Number of complete or pruned trials in ``study``."""
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


def open_study(
    spec: StudySpec,
    *,
    storage_url: str,
    study_name: str,
    worker_index: int = 0,
    accept_changes: bool = False,
) -> optuna.study.Study:
    """Create the study if it does not exist, else load it; see :func:`studies.open_study`.

    ``worker_index`` no longer changes the sampler's seed: each trial's randomness comes from
    the study seed and the trial's number, so every worker samples its own configs.
    """
    return studies.open_study(
        spec, storage_url=storage_url, study_name=study_name, accept_changes=accept_changes
    )


class _BudgetStop:
    """Stops the study when the shared budget is met or trials keep failing."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.consecutive_failures = 0
        self.reason = "timeout or interrupted"
        self.gave_up = False

    def __call__(self, study: optuna.study.Study, trial: FrozenTrial) -> None:
        self.consecutive_failures = (
            self.consecutive_failures + 1 if trial.state == TrialState.FAIL else 0
        )
        if count_finished(study) >= self.budget:
            self.reason = "budget reached"
            study.stop()
        elif self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            self.reason = f"{self.consecutive_failures} trials failed in a row"
            self.gave_up = True
            study.stop()


def run_search(
    spec: StudySpec,
    *,
    storage_url: str,
    study_name: str,
    n_trials: int | None = None,
    timeout: float | None = None,
    callbacks: Sequence[StudyCallback] = (),
    on_trained: TrialModelHook | None = None,
    on_epoch: TrialEpochHook | None = None,
    on_pruned: TrialPrunedHook | None = None,
    worker_index: int = 0,
    prepared: Prepared | None = None,
    accept_changes: bool = False,
    strategy: Strategy | None = None,
) -> SearchOutcome:
    """Run trials of ``spec`` until the study holds ``n_trials`` finished ones (or timeout).

    The data is read and validated before the storage is touched, so a bad data file leaves
    nothing behind. ``prepared`` replaces the data ``spec.data`` names (already loaded, e.g.
    by a caller that runs several searches on the same data); ``strategy`` the sampler and
    pruner (already built, so already checked).
    """
    budget = n_trials if n_trials is not None else spec.search.n_trials
    if prepared is None:
        prepared = get_task(spec.task).load(spec.data, spec.seed)
    study = studies.open_study(
        spec,
        storage_url=storage_url,
        study_name=study_name,
        accept_changes=accept_changes,
        strategy=strategy,
    )
    study.set_user_attr(BUDGET_ATTR, budget)
    finished = count_finished(study)
    if finished >= budget:
        return SearchOutcome(study, finished, budget, "budget already reached")
    stop = _BudgetStop(budget)
    try:
        study.optimize(
            studies.tag_trials(
                make_objective(
                    spec, prepared, on_trained=on_trained, on_epoch=on_epoch, on_pruned=on_pruned
                ),
                spec_to_dict(spec),
            ),
            timeout=timeout if timeout is not None else spec.search.timeout,
            catch=(TrainingDiverged, ConfigTooLarge),
            callbacks=[*callbacks, stop],
            gc_after_trial=True,
        )
    except optuna.exceptions.StorageInternalError as exc:
        raise StorageError(
            f"storage failed during the search: {describe_storage_error(exc)}"
        ) from exc
    except AssertionError as exc:
        # When the storage refuses the write that ends a trial (read-only volume, full disk),
        # Optuna's trial runner asserts "Should not reach." over the storage's own error.
        refused = _storage_error_behind(exc)
        if refused is None:
            raise
        raise StorageError(
            f"{refused}; the running trial could not be ended: a worker that starts a trial "
            f"once the storage takes writes again fails it as stale (no heartbeat for the URL's "
            f"grace_period) and re-queues its params"
        ) from exc
    return SearchOutcome(study, count_finished(study), budget, stop.reason, stop.gave_up)


def _storage_error_behind(exc: BaseException) -> StorageError | None:
    """The :class:`StorageError` an exception was raised over, if any."""
    return next((e for e in exception_chain(exc) if isinstance(e, StorageError)), None)
