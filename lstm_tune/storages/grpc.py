"""Optuna's gRPC storage proxy in front of the database, with heartbeats carried through it.

Optuna's proxy (``run_grpc_proxy_server`` / ``GrpcStorageProxy``) forwards the storage API
but not Optuna's heartbeat: ``GrpcStorageProxy`` is not a heartbeat storage, so a worker
behind it sends no heartbeat and a killed worker's trial would stay RUNNING forever (and the
pool's budget gate, which trusts heartbeats, could not wait for it). lstm-tune closes that
gap on both sides of the proxy:

* **Worker side** (:class:`HeartbeatGrpcStorage`, ``grpc://host:port`` URLs): a heartbeat
  storage whose ``record_heartbeat`` sends the trial's heartbeat through the proxy as a write
  of the reserved trial system attribute :data:`HEARTBEAT_KEY`.
* **Proxy side** (:func:`serve_proxy`, ``lstm-tune storage-proxy``): that write is turned
  into the database's own heartbeat (``RDBStorage.record_heartbeat``: the same table and the
  database server's clock as direct workers), and a sweeper thread fails every study's
  stale trials and re-queues their params (``grace_period``, ``max_requeue`` of the proxy's
  ``--storage`` URL) exactly as a direct worker would before its next trial.

Workers behind the proxy and workers connected directly can therefore share one study.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, GrpcStorageProxy
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from lstm_tune.errors import StorageError
from lstm_tune.storages.rdb import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_RETRY_TIMEOUT,
    ResilientRDBStorage,
    _hold,
    _is_held,
    _release,
    open_storage,
    redact_url,
)

__all__ = [
    "DEFAULT_PROXY_PORT",
    "GRPC_SCHEME",
    "HEARTBEAT_KEY",
    "GrpcOptions",
    "HeartbeatGrpcStorage",
    "open_grpc_storage",
    "open_proxy_backend",
    "parse_grpc_url",
    "serve_proxy",
    "start_sweeper",
]

GRPC_SCHEME = "grpc"
DEFAULT_PROXY_PORT = 13000
# The trial system attribute a worker writes through the proxy to say "still alive"; the proxy
# records it as the database heartbeat instead of storing it.
HEARTBEAT_KEY = "lstm_tune:heartbeat"
# Threads serving gRPC calls: each holds at most one database connection while it works, so
# this (not the number of workers) bounds the proxy's connections. Optuna's default is 10.
DEFAULT_PROXY_THREADS = 10
_GRPC_OPTIONS = ("heartbeat_interval", "retry_timeout")

_log = logging.getLogger("lstm_tune.storages")


@dataclass(frozen=True)
class GrpcOptions:
    """Where the proxy listens and the worker-side settings of a ``grpc://`` URL."""

    host: str
    port: int
    heartbeat_interval: int | None = DEFAULT_HEARTBEAT_INTERVAL
    # How long a worker waits for the proxy to accept connections when it starts.
    retry_timeout: float = DEFAULT_RETRY_TIMEOUT


def parse_grpc_url(url: str) -> GrpcOptions:
    """Parse ``grpc://host:port[?heartbeat_interval=10&retry_timeout=600]``."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme != GRPC_SCHEME or not parts.hostname or port is None or port <= 0:
        raise StorageError(
            f"storage URL {url!r}: expected grpc://HOST:PORT (e.g. grpc://127.0.0.1:13000), "
            f"the address of `lstm-tune storage-proxy`"
        )
    if parts.path not in ("", "/") or parts.username or parts.password:
        raise StorageError(
            f"storage URL {url!r}: a grpc:// URL has no user, password or database "
            f"(the proxy's --storage URL holds them)"
        )
    options: dict[str, Any] = {}
    for name, text in parse_qsl(parts.query, keep_blank_values=True):
        if name not in _GRPC_OPTIONS:
            raise StorageError(
                f"storage URL {url!r}: option {name!r} is not allowed on a grpc:// URL; "
                f"allowed: {', '.join(_GRPC_OPTIONS)} (grace_period and max_requeue belong "
                f"on the proxy's --storage URL)"
            )
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if value < 0 or (name == "heartbeat_interval" and value != int(value)):
            allowed = "an integer >= 0" if name == "heartbeat_interval" else "seconds >= 0"
            raise StorageError(
                f"storage URL {url!r}: {name}={text!r} is not allowed; expected {allowed}"
            )
        if name == "heartbeat_interval":
            options[name] = int(value) or None
        else:
            options[name] = value
    return GrpcOptions(host=parts.hostname, port=port, **options)


class HeartbeatGrpcStorage(GrpcStorageProxy, BaseHeartbeat):
    """``GrpcStorageProxy`` that sends heartbeats through the proxy and tracks held trials.

    Staleness is judged on the proxy side (its sweeper, on the database server's clock), so
    :meth:`_get_stale_trial_ids` finds none here; the budget gate sees a dead worker's trial
    leave RUNNING when the sweeper fails it.
    """

    def __init__(self, options: GrpcOptions) -> None:
        with warnings.catch_warnings():  # Optuna marks the proxy experimental
            warnings.simplefilter("ignore", ExperimentalWarning)
            super().__init__(host=options.host, port=options.port)
        self.options = options
        self.display_url = f"grpc://{options.host}:{options.port}"
        self._study_of_trial: dict[int, int] = {}

    # Heartbeat: written through the proxy, judged by the proxy's sweeper.

    def record_heartbeat(self, trial_id: int) -> None:
        """Tell the proxy this trial's worker is alive (it records the database heartbeat)."""
        self.set_trial_system_attr(trial_id, HEARTBEAT_KEY, True)

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
        """Create a trial; remember it when it starts RUNNING."""
        trial_id = super().create_new_trial(study_id, template_trial)
        self._study_of_trial[trial_id] = study_id
        if template_trial is None or template_trial.state == TrialState.RUNNING:
            _hold(self, trial_id)
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

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        """Move a trial to ``state``; a trial the sweeper failed meanwhile is given up."""
        try:
            updated = super().set_trial_state_values(trial_id, state, values)
        except UpdateFinishedTrialError:
            current = self.get_trial(trial_id).state
            if state.is_finished() and current == TrialState.FAIL and _is_held(trial_id):
                _log.warning(
                    "trial %d was failed as stale by the proxy's sweeper while this worker "
                    "ran it; its result is discarded and its re-queued copy will run it again",
                    self.get_trial(trial_id).number,
                )
                _release(trial_id)
                return False
            raise
        if updated and state == TrialState.RUNNING:
            _hold(self, trial_id)
        elif state.is_finished():
            _release(trial_id)
        return updated


def open_grpc_storage(url: str) -> HeartbeatGrpcStorage:
    """The storage behind ``grpc://host:port``, once the proxy accepts connections."""
    options = parse_grpc_url(url)
    storage = HeartbeatGrpcStorage(options)
    try:
        # Pods start in any order: wait for the proxy as a direct worker waits for its database.
        storage.wait_server_ready(timeout=max(options.retry_timeout, 0.001))
    except ConnectionError as exc:
        raise StorageError(
            f"storage {storage.display_url!r}: no gRPC storage proxy answered within "
            f"{options.retry_timeout:g}s (retry_timeout); is `lstm-tune storage-proxy` running?"
        ) from exc
    return storage


# --- the proxy side ----------------------------------------------------------------------------


class _RelayingRDBStorage(ResilientRDBStorage):
    """The proxy's database storage: a heartbeat written as :data:`HEARTBEAT_KEY` becomes the
    database's own heartbeat row instead of a system attribute."""

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        """Store the attribute, or record a heartbeat when the key is :data:`HEARTBEAT_KEY`."""
        if key == HEARTBEAT_KEY:
            self.record_heartbeat(trial_id)
            return
        super().set_trial_system_attr(trial_id, key, value)


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
            f"--storage {storage_url!r}: the proxy needs the database itself "
            f"(sqlite:/// or postgresql+psycopg://), not another proxy"
        )
    rdb = open_storage(storage_url, storage_class=_RelayingRDBStorage)
    # Optuna's cache layer, as direct workers get it (the proxy's documentation asks for it).
    return optuna.storages.get_storage(rdb)


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
