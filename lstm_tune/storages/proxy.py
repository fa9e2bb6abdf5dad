"""``lstm-tune storage-proxy``: Optuna's gRPC storage proxy in front of the database, with the
heartbeats of workers behind it carried through.

A worker behind the proxy (:mod:`lstm_tune.storages.grpc`) sends its heartbeat as a write of
the reserved trial system attribute :data:`~lstm_tune.storages.grpc.HEARTBEAT_KEY`. Here that
write is turned into the database's own heartbeat (``RDBStorage.record_heartbeat``: the same
table and the database server's clock as direct workers), and a sweeper thread fails every
study's stale trials and re-queues their params (``grace_period``, ``max_requeue`` of the
proxy's ``--storage`` URL) exactly as a direct worker would before its next trial.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._heartbeat import BaseHeartbeat

from lstm_tune.errors import StorageError
from lstm_tune.storages import rdb
from lstm_tune.storages.attrs import DEFAULT_PROXY_PORT, DEFAULT_PROXY_THREADS
from lstm_tune.storages.grpc import HEARTBEAT_KEY
from lstm_tune.storages.url import GRPC_SCHEME, parse_database_url, redact_url

__all__ = [
    "DEFAULT_PROXY_PORT",
    "DEFAULT_PROXY_THREADS",
    "open_proxy_backend",
    "serve_proxy",
    "start_sweeper",
]


_log = logging.getLogger("lstm_tune.storages")


class _RelayingRDBStorage(rdb.ResilientRDBStorage):
    """The proxy's database storage: a heartbeat written as :data:`HEARTBEAT_KEY` becomes the
    database's own heartbeat row instead of a system attribute."""

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        """Store the attribute, or record a heartbeat when the key is :data:`HEARTBEAT_KEY`."""
        if key == HEARTBEAT_KEY:
            self._send_heartbeat(trial_id)  # a relay: the worker judges its own trial
            return
        super().set_trial_system_attr(trial_id, key, value)


class _ProxyCache(_CachedStorage):
    """Optuna's cache layer for the proxy: a parameter written to a trial this proxy has not
    seen yet (created before it restarted) first loads that trial's study.

    Optuna's cache looks the trial up in itself and raises KeyError otherwise, which the proxy
    answers NOT_FOUND: the chaos soak saw every worker mid-trial across a proxy restart fail
    its trial at its next ``suggest_*`` and crash with a traceback. A worker's own cache never
    meets a trial it has not created or read; a restarted proxy meets all of them.
    """

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        """Set the parameter, loading the trial's study into the cache first if need be."""
        with self._lock:
            known = trial_id in self._trial_id_to_study_id_and_number
        if not known:
            backend = self._backend
            assert isinstance(backend, rdb.ResilientRDBStorage)
            self._read_trials_from_remote_storage(backend.get_study_id_of_trial(trial_id))
        super().set_trial_param(trial_id, param_name, param_value_internal, distribution)


class _StaleTrialSweeper(threading.Thread):
    """Every ``every`` seconds, fail each study's stale trials and re-queue their params."""

    def __init__(self, storage: BaseStorage, every: float) -> None:
        super().__init__(name="lstm-tune-sweeper", daemon=True)
        self.storage = storage
        self.every = every
        self.stopped = threading.Event()
        self.sweeps = 0

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            try:
                self.sweep()
            except Exception as exc:  # a database outage must not end the sweeper
                _log.warning("stale-trial sweep failed (%s); next in %gs", exc, self.every)

    def sweep(self) -> None:
        """One pass over every study (what a direct worker does before each trial)."""
        with warnings.catch_warnings():  # fail_stale_trials is experimental in Optuna 5
            warnings.simplefilter("ignore", ExperimentalWarning)
            for frozen in self.storage.get_all_studies():
                study = optuna.load_study(
                    study_name=frozen.study_name,
                    storage=self.storage,
                    sampler=optuna.samplers.RandomSampler(),
                )
                optuna.storages.fail_stale_trials(study)
        self.sweeps += 1


def open_proxy_backend(storage_url: str) -> BaseStorage:
    """The proxy's database storage for ``storage_url``: heartbeats relayed, Optuna's cache."""
    if storage_url.startswith(f"{GRPC_SCHEME}:"):
        raise StorageError(
            f"--storage {redact_url(storage_url)!r}: the proxy needs the database itself "
            f"(sqlite:/// or postgresql+psycopg://), not another proxy"
        )
    database = rdb.open_url(parse_database_url(storage_url), storage_class=_RelayingRDBStorage)
    # Optuna's cache layer, as direct workers get it (the proxy's documentation asks for it).
    return _ProxyCache(database)


def start_sweeper(storage: BaseStorage) -> _StaleTrialSweeper | None:
    """Start the stale-trial sweeper for ``storage`` (every ``heartbeat_interval`` seconds of
    its URL); None when heartbeats are off there (a dead worker's trial is then never
    recovered)."""
    interval = storage.get_heartbeat_interval() if isinstance(storage, BaseHeartbeat) else None
    if interval is None:
        return None
    sweeper = _StaleTrialSweeper(storage, float(interval))
    sweeper.start()
    return sweeper


def serve_proxy(
    storage_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PROXY_PORT,
    threads: int = DEFAULT_PROXY_THREADS,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``storage_url`` over gRPC on ``host:port`` with the sweeper; blocks until killed.

    Runs Optuna's ``run_grpc_proxy_server``; ``threads`` gRPC calls at most are served at
    once (each holds at most one database connection).
    """
    storage = open_proxy_backend(storage_url)
    sweeper = start_sweeper(storage)
    if on_ready is not None:
        every = "off" if sweeper is None else f"every {sweeper.every:g}s"
        on_ready(
            f"gRPC storage proxy for {redact_url(storage_url)} on {host}:{port} "
            f"({threads} threads); stale-trial sweep {every}"
        )
    try:
        with warnings.catch_warnings():  # Optuna marks the proxy experimental
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.run_grpc_proxy_server(
                storage, host=host, port=port, thread_pool=ThreadPoolExecutor(threads)
            )
    except RuntimeError as exc:  # grpcio: "Failed to bind to address ..."
        raise StorageError(f"storage proxy cannot listen on {host}:{port}: {exc}") from exc
