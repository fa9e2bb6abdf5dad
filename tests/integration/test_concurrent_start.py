"""Workers that start at the same instant on a new database: none may die.

Optuna creates its tables, types and version rows on first use without a lock, so on a fresh
PostgreSQL database one of several workers starting together died with ``UniqueViolation ...
CREATE TYPE studydirection``; the study and its recorded spec were raced for too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lstm_tune.storages import SPEC_ATTR, open_storage
from tests.helpers import ROOT, TINY_SPACE
from tests.helpers.studies import write_study

ROUNDS = 5
PROCESSES = 4


def _study_file(tmp_path: Path) -> Path:
    lows = {k: v["low"] for k, v in TINY_SPACE.items() if "low" in v}
    search = {"enqueue": [{**lows, "batch_size": 16}]}
    return write_study(tmp_path, name="race", data={"path": "unused.csv"}, search=search)


def _race(study: Path, urls: list[str], logs: Path) -> list[str]:
    """A round per URL: PROCESSES `create-study` processes started at one instant; a line
    for each racer that failed."""
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LSTM_TUNE_STORAGE": ""}
    argv = [sys.executable, str(ROOT / "tests" / "helpers" / "start_at.py"), str(PROCESSES)]
    argv += [str(logs), *urls, "--", "create-study", str(study)]
    starter = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert starter.returncode == 0, starter.stdout + starter.stderr
    rounds = [[int(code) for code in line.split()] for line in starter.stdout.splitlines()]
    assert len(rounds) == len(urls), starter.stdout
    return [
        f"round {round_}: exit {code}: {(logs / f'{round_}-{i}.log').read_text()[-800:]}"
        for round_, codes in enumerate(rounds)
        for i, code in enumerate(codes)
        if code != 0
    ]


def _check_study(url: str) -> None:
    storage = open_storage(url)
    study_id = storage.get_study_id_from_name("race")
    assert SPEC_ATTR in storage.get_study_user_attrs(study_id)
    # The queued config is queued once, not once per worker that raced to create the study.
    assert len(storage.get_all_trials(study_id)) == 1


@pytest.mark.postgres
@pytest.mark.slow
def test_workers_starting_together_on_a_new_postgresql_database_all_live(tmp_path: Path) -> None:
    from tests.helpers import pg as _pg
    from tests.helpers import require_or_skip

    problem = _pg.shared_server_problem()
    if problem:
        require_or_skip(problem)
    study = _study_file(tmp_path)
    databases = [_pg.create_database() for _ in range(ROUNDS)]
    try:
        urls = [url for url, _ in databases]
        failures = _race(study, urls, tmp_path / "logs")
        for url in urls:
            _check_study(url)
    finally:
        for _, drop in databases:
            drop()
    print(f"concurrent starts on PostgreSQL: {len(failures)} failures in {ROUNDS}x{PROCESSES}")
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_workers_starting_together_on_a_new_sqlite_file_all_live(tmp_path: Path) -> None:
    study = _study_file(tmp_path)
    urls = [f"sqlite:///{tmp_path / f'race{round_}.db'}" for round_ in range(ROUNDS)]
    failures = _race(study, urls, tmp_path / "logs")
    for url in urls:
        _check_study(url)
    print(f"concurrent starts on SQLite: {len(failures)} failures in {ROUNDS}x{PROCESSES}")
    assert not failures, "\n".join(failures)
