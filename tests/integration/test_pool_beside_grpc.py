"""A pool's parent on a ``grpc://`` storage holds a live gRPC channel while it starts its
workers. Started with a ``preexec_fn`` (a real fork of the parent), a worker now and then
aborted before it ran, with gRPC's "epoll_wait error: Bad file descriptor" (grpc/grpc#43055;
three pools' workers in the 30-minute proxy chaos soak). Measured beside a busy channel: 6
aborts in 300 starts with a ``preexec_fn``, 0 without; the poller's error line shows up in
more children than abort, so the test watches for both."""

from __future__ import annotations

import threading
from pathlib import Path

import optuna

from lstm_tune.runtime.pool import run_pool
from lstm_tune.storages import open_storage
from tests.helpers.servers import storage_proxy

STARTS = 300


def test_a_pool_beside_a_busy_grpc_channel_starts_every_worker(tmp_path: Path) -> None:
    with storage_proxy(f"sqlite:///{tmp_path / 'proxied.db'}", tmp_path / "proxy.log") as url:
        storage = open_storage(url)
        optuna.create_study(storage=storage, study_name="beside")
        stop = threading.Event()

        def keep_calling() -> None:  # as a pool parent's heartbeat and reads would
            while not stop.is_set():
                storage.get_all_studies()

        caller = threading.Thread(target=keep_calling, daemon=True)
        caller.start()
        said: list[str] = []
        try:
            result = run_pool(lambda index: ["true"], STARTS, say=said.append)
        finally:
            stop.set()
            caller.join(timeout=30)
    # gRPC's poller, started in a forked child, says so before it aborts (or the exec wins).
    poller_errors = [line for line in said if "Bad file descriptor" in line]
    aborted = [code for code in result.exit_codes if code != 0]
    assert not poller_errors and not aborted, (
        f"{len(aborted)} of {STARTS} workers did not start: {aborted}; {poller_errors[:3]}"
    )
