"""lstm_tune.storages.backends: open_storage opens each scheme through its own module, and
imports only that one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lstm_tune.storages import open_storage
from lstm_tune.storages.rdb import ResilientRDBStorage
from tests.helpers import ROOT


def test_a_database_url_opens_the_rdb_storage_with_its_options(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}?heartbeat_interval=3&grace_period=9")
    assert isinstance(storage, ResilientRDBStorage)
    assert (storage.get_heartbeat_interval(), storage.options.grace_period) == (3, 9)
    assert storage.display_url == f"sqlite:///{tmp_path / 's.db'}"  # options stripped


def test_opening_a_sqlite_storage_loads_no_grpc_module(tmp_path: Path) -> None:
    code = (
        "import sys; from lstm_tune.storages import open_storage; "
        f"open_storage('sqlite:///{tmp_path / 's.db'}'); "
        "print(sorted(m for m in sys.modules if m.startswith('lstm_tune.storages.')))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    loaded = run.stdout
    assert "lstm_tune.storages.rdb" in loaded
    assert "lstm_tune.storages.grpc" not in loaded and "lstm_tune.storages.proxy" not in loaded
