"""The study's trial budget met exactly by a pool of workers: none starts a trial it won't need."""

from __future__ import annotations

import time
import warnings

import optuna
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

__all__ = ["BUDGET_POLL_SECONDS", "BudgetGate"]

# How often a worker waiting at the end of the budget looks whether it is still needed.
BUDGET_POLL_SECONDS = 2.0
_COUNTED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


class BudgetGate:
    """Study callback: do not start a trial the budget will not need.

    After each trial, a worker whose next trial would overshoot the budget (finished plus
    running elsewhere already reach it) waits instead: if a running trial fails or its worker
    dies (its heartbeat goes stale and it is re-queued), the waiting worker runs the missing
    trial; if they all finish, the budget is met exactly and every worker stops. Without
    heartbeats a dead worker's trial would look alive forever, so the gate does not wait then.
    """

    def __init__(self, budget: int, *, poll: float = BUDGET_POLL_SECONDS) -> None:
        self.budget = budget
        self.poll = poll

    def __call__(self, study: optuna.study.Study, trial: FrozenTrial) -> None:
        if not is_heartbeat_enabled(study._storage):
            return
        while True:
            with warnings.catch_warnings():  # Optuna marks fail_stale_trials experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False, states=_COUNTED_STATES)
            finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
            running = len(trials) - finished
            if finished >= self.budget or finished + running < self.budget:
                return
            time.sleep(self.poll)
