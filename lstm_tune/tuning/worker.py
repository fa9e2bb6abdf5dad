"""One worker: create or load the study, run trials until the shared budget is reached.

The budget (``n_trials``) counts the study's finished trials (complete + pruned) across all
workers, so running the same command again resumes a study instead of adding to it.

A trial taken from this worker (failed by another's stale-trial check while this one was
paused) costs it nothing more than that trial: it says so in one line and goes on; the trial's
re-queued copy runs it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from lstm_tune.config import StudySpec
from lstm_tune.errors import StorageError, StorageUnreachable, exception_chain
from lstm_tune.storages import BUDGET_ATTR, describe_storage_error
from lstm_tune.storages.ledger import TrialTaken, held_trials, taken_trial
from lstm_tune.storages.requeue import close_requeued_copies, settle_running_trials
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
from lstm_tune.tuning.sampler_and_pruner import Strategy, build_strategy
from lstm_tune.types import Prepared

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
# A worker gives up after this many failed trials in a row: the cause is then the setup
# (data, memory), not one unlucky config, and looping on it would never finish the budget.
MAX_CONSECUTIVE_FAILURES = 5
StudyCallback = Callable[[optuna.study.Study, FrozenTrial], None]

_log = logging.getLogger(__name__)


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


def wind_down(study: optuna.study.Study) -> None:
    """What a worker does when it stops on a met budget: fail the trials dead workers left
    RUNNING, then the re-queued copies no worker will run (see
    :mod:`lstm_tune.storages.requeue`)."""
    settle_running_trials(study)
    close_requeued_copies(study)


class BudgetStop:
    """Stops the study when the shared budget is met or trials keep failing."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.consecutive_failures = 0
        self.reason = "timeout or interrupted"
        self.gave_up = False

    def met(self, study: optuna.study.Study) -> bool:
        """Whether the study holds its budget of finished trials; if so, the re-queued copies
        no worker will run now are closed (see :mod:`lstm_tune.storages.requeue`)."""
        if count_finished(study) < self.budget:
            return False
        self.reason = "budget reached"
        wind_down(study)
        return True

    def __call__(self, study: optuna.study.Study, trial: FrozenTrial) -> None:
        self.consecutive_failures = (
            self.consecutive_failures + 1 if trial.state == TrialState.FAIL else 0
        )
        if self.met(study):
            study.stop()
        elif self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            self.reason = f"{self.consecutive_failures} trials failed in a row"
            self.gave_up = True
            study.stop()


def _own_trials_only(
    objective: Callable[[optuna.trial.Trial], float],
) -> Callable[[optuna.trial.Trial], float]:
    """``objective`` that raises :class:`TrialTaken` for a trial taken from this worker.

    Optuna's trial runner would otherwise fail on it: a write to it raises
    ``UpdateFinishedTrialError``, and telling its result ``ValueError: Cannot tell a FAIL
    trial``. TrialTaken leaves the runner untouched (it is no ``Exception``), so the taken
    trial's FAIL state and its re-queued copy stay as the stale-trial check left them.
    """

    def run(trial: optuna.trial.Trial) -> float:
        try:
            value = objective(trial)
        except UpdateFinishedTrialError as exc:
            taken = taken_trial(trial._trial_id)
            if taken is None:
                raise
            raise taken from exc
        taken = taken_trial(trial._trial_id)  # taken after its last write, before the tell
        if taken is not None:
            raise taken
        return value

    return run


def optimize_own_trials(
    study: optuna.study.Study,
    objective: Callable[[optuna.trial.Trial], float],
    *,
    stop: BudgetStop,
    deadline: float | None = None,
    callbacks: Sequence[StudyCallback] = (),
) -> None:
    """Run ``objective``'s trials until ``stop`` stops the study or ``deadline`` (monotonic).

    A trial taken from this worker (:class:`TrialTaken`, or Optuna's final tell refused for a
    held trial that is now FAIL: :func:`taken_at_tell`) is said in one line and the next trial
    starts.
    """
    while True:
        try:
            study.optimize(
                objective,
                timeout=None if deadline is None else max(0.0, deadline - time.monotonic()),
                catch=(TrainingDiverged, ConfigTooLarge),
                callbacks=[*callbacks, stop],
                gc_after_trial=True,
            )
            return
        except TrialTaken as taken:
            _log.warning(taken.line)
        except (AssertionError, ValueError) as exc:
            taken_then = taken_at_tell(study, exc)
            if taken_then is None:
                raise
            _log.warning(taken_then.line)
        if stop.met(study):  # the callbacks did not run for the taken trial
            return


def taken_at_tell(study: optuna.study.Study, exc: BaseException) -> TrialTaken | None:
    """The :class:`TrialTaken` behind Optuna's refused final tell, if that is what ``exc`` is.

    The objective's last look at its trial (:func:`_own_trials_only`) and Optuna's tell are
    two reads: a stale-trial check that fails the trial between them (e.g. after its heartbeat
    missed a database restart while it kept training) makes the tell raise ``ValueError:
    Cannot tell a FAIL trial.``, which Optuna's runner then masks with ``AssertionError:
    Should not reach.``. Such an error is the trial's taking when a trial this process still
    holds in ``study`` is now FAIL; any other error is left as it is (None).
    """
    if not any(isinstance(e, ValueError) for e in exception_chain(exc)):
        return None
    for held in held_trials():
        if held.study_id == study._study_id:
            taken = taken_trial(held.trial_id)
            if taken is not None:
                return taken
    return None


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
    pruner (already built, so already checked, with the data's size: see
    :func:`~lstm_tune.tuning.sampler_and_pruner.build_strategy`).
    """
    budget = n_trials if n_trials is not None else spec.search.n_trials
    task = get_task(spec.task)
    if prepared is None:
        prepared = task.load(spec.data, spec.seed)
    if strategy is None:
        strategy = build_strategy(spec, fit_size=task.size(prepared.fit))
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
        wind_down(study)
        return SearchOutcome(study, finished, budget, "budget already reached")
    stop = BudgetStop(budget)
    objective = _own_trials_only(
        studies.tag_trials(
            make_objective(
                spec, prepared, on_trained=on_trained, on_epoch=on_epoch, on_pruned=on_pruned
            ),
            studies.study_doc(spec),
        )
    )
    seconds = timeout if timeout is not None else spec.search.timeout
    try:
        optimize_own_trials(
            study,
            objective,
            stop=stop,
            deadline=None if seconds is None else time.monotonic() + seconds,
            callbacks=callbacks,
        )
    except optuna.exceptions.StorageInternalError as exc:
        raise _storage_error_class(exc)(
            f"storage failed during the search: {describe_storage_error(exc)}"
        ) from exc
    except AssertionError as exc:
        # When the storage refuses the write that ends a trial (read-only volume, full disk),
        # Optuna's trial runner asserts "Should not reach." over the storage's own error.
        refused = _storage_error_behind(exc)
        if refused is None:
            raise
        raise _storage_error_class(refused)(
            f"{refused}; the running trial could not be ended: a worker that starts a trial "
            f"once the storage takes writes again fails it as stale (no heartbeat for the URL's "
            f"grace_period) and re-queues its params"
        ) from exc
    return SearchOutcome(study, count_finished(study), budget, stop.reason, stop.gave_up)


def _storage_error_class(exc: BaseException) -> type[StorageError]:
    """:class:`StorageUnreachable` when ``exc`` comes of a storage that stayed unreachable (a
    restart may cure it), else :class:`StorageError`."""
    unreachable = any(isinstance(e, StorageUnreachable) for e in exception_chain(exc))
    return StorageUnreachable if unreachable else StorageError


def _storage_error_behind(exc: BaseException) -> StorageError | None:
    """The :class:`StorageError` an exception was raised over, if any."""
    return next((e for e in exception_chain(exc) if isinstance(e, StorageError)), None)
