"""The worker side of Optuna's gRPC storage proxy (``grpc://host:port`` URLs), with heartbeats.

Optuna's ``GrpcStorageProxy`` forwards the storage API but not Optuna's heartbeat: it is not a
heartbeat storage, so a worker behind it would send no heartbeat and a killed worker's trial
would stay RUNNING forever (and the pool's budget gate, which trusts heartbeats, could not wait
for it). :class:`HeartbeatGrpcStorage` is a heartbeat storage whose ``record_heartbeat`` sends
the trial's heartbeat through the proxy as a write of the reserved trial system attribute
:data:`HEARTBEAT_KEY`; the proxy (:mod:`lstm_tune.storages.proxy`) turns it into the
database's own heartbeat and fails stale trials itself. It keeps the held-trial ledger like a
direct worker's storage, so workers behind the proxy and connected directly can share a study.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import GrpcStorageProxy
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from lstm_tune.errors import StorageError, StorageUnreachable
from lstm_tune.storages.interrupts import storage_call
from lstm_tune.storages.ledger import TrialLedger, hold
from lstm_tune.storages.retry import QUERY_CALLS, Retrier
from lstm_tune.storages.url import GrpcURL, StorageURL

__all__ = ["HEARTBEAT_KEY", "HeartbeatGrpcStorage", "open_url"]

# The trial system attribute a worker writes through the proxy to say "still alive"; the proxy
# records it as the database heartbeat instead of storing it.
HEARTBEAT_KEY = "lstm_tune:heartbeat"

# GrpcStorageProxy calls retried as a whole while the proxy is unreachable (UNAVAILABLE: it is
# restarting); the trial state write is retried by the ledger's own rule (_write_trial_state).
_RETRIED = (*QUERY_CALLS, "create_new_trial")
_log = logging.getLogger("lstm_tune.storages")


class _RetryingGrpcStorageProxy(GrpcStorageProxy):
    """``GrpcStorageProxy`` whose calls wait out a proxy that restarts, as a direct worker's
    wait out a database restart (the chaos soak saw a worker behind a restarted proxy die with
    a traceback, then hang: its heartbeat thread had died too)."""

    _retry: Retrier


def _retrying(name: str) -> Any:
    base = getattr(GrpcStorageProxy, name)

    @functools.wraps(base)
    def method(self: _RetryingGrpcStorageProxy, *args: Any, **kwargs: Any) -> Any:
        return self._retry.call(name, lambda: base(self, *args, **kwargs))

    return method


for _name in _RETRIED:
    setattr(_RetryingGrpcStorageProxy, _name, _retrying(_name))


class HeartbeatGrpcStorage(TrialLedger, _RetryingGrpcStorageProxy, BaseHeartbeat):
    """``GrpcStorageProxy`` that sends heartbeats through the proxy and tracks held trials.

    Staleness is judged on the proxy side (its sweeper, on the database server's clock), so
    :meth:`_get_stale_trial_ids` finds none here; the budget gate sees a dead worker's trial
    leave RUNNING when the sweeper fails it.
    """

    stale_failed_by = "by the proxy's sweeper while this worker ran it"
    stale_checked_by = "the storage proxy's stale-trial sweep"

    def __init__(self, url: GrpcURL) -> None:
        self._retry = Retrier(url.address, url.options)
        self._heartbeat_refused: set[int] = set()
        with warnings.catch_warnings():  # Optuna marks the proxy experimental
            warnings.simplefilter("ignore", ExperimentalWarning)
            super().__init__(host=url.host, port=url.port)
        self.options = url.options
        self.display_url = url.address
        self._study_of_trial: dict[int, int] = {}

    # Heartbeat: written through the proxy, judged by the proxy's sweeper.

    def _send_heartbeat(self, trial_id: int) -> None:
        """Tell the proxy this trial's worker is alive (it records the database heartbeat);
        a proxy still unreachable after ``retry_timeout`` is logged, not raised: this runs in
        Optuna's heartbeat thread, which an exception would end for good."""
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_KEY, True)
        except StorageError as exc:
            if trial_id not in self._heartbeat_refused:
                self._heartbeat_refused.add(trial_id)
                _log.warning("heartbeat of a running trial not recorded: %s", exc)

    def _write_trial_state(self, write: Callable[[], bool]) -> bool:
        return self._retry.call("set_trial_state_values", write)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return []  # the proxy's sweeper fails stale trials; see the class docstring

    def get_heartbeat_interval(self) -> int | None:
        """Seconds between heartbeats (None: off), from the ``grpc://`` URL."""
        return self.options.heartbeat_interval

    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.study.Study, FrozenTrial], None] | None:
        """None: the proxy's sweeper re-queues stale trials."""
        return None

    # The ledger of held trials (so a stopped worker fails and re-queues its own trial).

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        """Create a trial; hold it when it starts RUNNING (one storage call for both, so a
        stop asked for during the create is raised once the trial is held)."""
        with storage_call():
            trial_id = super().create_new_trial(study_id, template_trial)
            self._study_of_trial[trial_id] = study_id
            if template_trial is None or template_trial.state == TrialState.RUNNING:
                hold(self, trial_id, study_id)
        return trial_id

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Any = None,
    ) -> list[FrozenTrial]:
        """The study's trials (noting which study each trial id belongs to)."""
        trials = super().get_all_trials(study_id, deepcopy=deepcopy, states=states)
        self._study_of_trial.update((t._trial_id, study_id) for t in trials)
        return trials

    def get_study_id_of_trial(self, trial_id: int) -> int:
        """The study of a trial this process created or listed (what the ledger needs)."""
        return self._study_of_trial[trial_id]


def open_url(parsed: StorageURL) -> HeartbeatGrpcStorage:
    """The storage behind ``grpc://host:port``, once the proxy accepts connections."""
    if not isinstance(parsed, GrpcURL):
        raise TypeError(f"{parsed.scheme}:// is not a grpc:// URL; this module opens those")
    storage = HeartbeatGrpcStorage(parsed)
    timeout = parsed.options.retry_timeout
    try:
        # Pods start in any order: wait for the proxy as a direct worker waits for its database.
        storage.wait_server_ready(timeout=max(timeout, 0.001))
        storage._retry.reached = True
    except ConnectionError as exc:
        raise StorageUnreachable(
            f"storage {storage.display_url!r}: no gRPC storage proxy answered within "
            f"{timeout:g}s (retry_timeout); is `lstm-tune storage-proxy` running?"
        ) from exc
    return storage
