"""lstm_tune.storages.grpc: a worker behind the gRPC storage proxy waits out a proxy restart
(an in-process proxy server on Optuna's in-memory storage, stopped and started again)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import optuna
import pytest
from optuna.storages import InMemoryStorage
from optuna.storages._grpc.server import make_server
from optuna.study import StudyDirection

from lstm_tune.errors import StorageError
from lstm_tune.storages import open_storage
from tests.helpers.pg import free_port

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _serve(storage: InMemoryStorage, port: int) -> object:
    server = make_server(storage, "127.0.0.1", port, ThreadPoolExecutor(2))
    server.start()
    return server


def test_a_worker_waits_out_a_proxy_restart() -> None:
    # Found by the chaos soak (issue 33): a worker behind a proxy that was killed and started
    # again died with a gRPC UNAVAILABLE traceback, then hung (its heartbeat thread had died).
    backend, port = InMemoryStorage(), free_port()
    server = _serve(backend, port)
    storage = open_storage(f"grpc://127.0.0.1:{port}?retry_timeout=30")
    study_id = storage.create_new_study([StudyDirection.MINIMIZE], study_name="s")
    server.stop(None).wait()  # type: ignore[attr-defined]
    again: list[object] = []
    restart = threading.Timer(2.0, lambda: again.append(_serve(backend, port)))
    restart.start()
    try:
        started = time.monotonic()
        trial_id = storage.create_new_trial(study_id)
        waited = time.monotonic() - started
    finally:
        restart.join()
        for each in again:
            each.stop(None)  # type: ignore[attr-defined]
    assert waited >= 1.5
    assert backend.get_trial(trial_id).state == optuna.trial.TrialState.RUNNING


def test_a_proxy_that_stays_away_is_one_line_after_retry_timeout() -> None:
    backend, port = InMemoryStorage(), free_port()
    server = _serve(backend, port)
    storage = open_storage(f"grpc://127.0.0.1:{port}?retry_timeout=2")
    server.stop(None).wait()  # type: ignore[attr-defined]
    with pytest.raises(StorageError, match=r"still unreachable after \d+s .*gRPC UNAVAILABLE"):
        storage.get_all_studies()
