"""Worker processes for the pool tests: the command of one, its environment, starting one
with its output in a log, whether one is still alive, the trials it left in a storage, and
waiting for a condition."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

from lstm_tune.storages import open_storage
from tests.helpers import ROOT, write_slice
from tests.helpers.studies import write_study

__all__ = [
    "review_study", "search_argv", "start_worker", "trials_of", "wait_for", "worker_env",
]  # fmt: skip


def review_study(
    directory: Path,
    corpus: Path,
    *,
    name: str,
    seed: int,
    epochs: int,
    search: dict[str, Any],
    max_features: int = 1000,
) -> Path:
    """A study whose trials take seconds, for tests of worker processes: 400 real reviews of
    ``corpus`` (100 per split and class), the default tiny space (a 4-8 unit LSTM), its data
    cached in ``directory``; ``epochs`` sets how long a trial lasts."""
    data = write_slice(corpus, directory / "slice.csv", 100)
    return write_study(
        directory,
        name=name,
        seed=seed,
        data={
            "path": str(data),
            "max_features": max_features,
            "validation_split": 0.25,
            "cache_dir": str(directory / "cache"),
        },
        training={"epochs": epochs},
        search=search,
    )


def search_argv(study: Path, *args: str) -> list[str]:
    """``lstm-tune search STUDY ARGS`` with the study's own artifact dir."""
    return [
        sys.executable, "-m", "lstm_tune.cli", "search", str(study),
        "--artifact-dir", str(study.parent / "artifacts"), *args,
    ]  # fmt: skip


def worker_env() -> dict[str, str]:
    """This environment, this checkout importable, no storage URL inherited."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "LSTM_TUNE_STORAGE": ""}


def start_worker(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` from the checkout, its output into ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=worker_env(), cwd=ROOT
        )


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs: a zombie (dead, not yet reaped) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def trials_of(url: str, name: str = "pool") -> list[FrozenTrial]:
    """Every trial of study ``name`` in the storage at ``url``."""
    storage = open_storage(url)
    study_id = storage.get_study_id_from_name(name)
    return storage.get_all_trials(study_id, deepcopy=False)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 180.0) -> None:
    """Return once ``check()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except KeyError:
            pass  # the study does not exist yet
        time.sleep(0.2)  # how often the test looks at the database
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
