"""Storage overhead per trial: SQLite file vs PostgreSQL, measured side by side in one run.

Each backend runs the same trivial objective (it samples the six LSTM hyperparameters and
returns at once), so the time per trial is what the storage costs: ask, six params, tell,
heartbeat thread, stale-trial check. Backends run in rounds, interleaved, and the median round
is reported, so a busy machine hurts all of them alike.

    python benchmarks/storage_overhead.py [--trials 100] [--rounds 3]
        [--pg "host=127.0.0.1 port=5432 user=postgres dbname=postgres"] [--no-write]

Prints a table and rewrites the "Storage overhead" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import optuna
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lstm_tune.storages import open_storage  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECTION_START = "<!-- storage_overhead:start -->"
SECTION_END = "<!-- storage_overhead:end -->"


def objective(trial: optuna.Trial) -> float:
    """Sample what an lstm-tune trial samples, train nothing."""
    trial.suggest_int("hidden_size", 16, 256, log=True)
    trial.suggest_int("num_layers", 1, 3)
    trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
    trial.suggest_float("dropout_rate", 0.0, 0.5)
    trial.suggest_int("sequence_length", 100, 400, step=50)
    trial.suggest_categorical("batch_size", [32, 64, 128])
    return 0.5


def run_round(url: str, n_trials: int) -> float:
    """Milliseconds per trial for ``n_trials`` trials in a fresh study on ``url``."""
    study = optuna.create_study(
        storage=open_storage(url),
        study_name=f"bench-{uuid.uuid4().hex[:8]}",
        sampler=optuna.samplers.RandomSampler(seed=0),  # TPE's own cost would swamp storage's
    )
    started = time.perf_counter()
    study.optimize(objective, n_trials=n_trials)
    return (time.perf_counter() - started) * 1000 / n_trials


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, write BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="trials per round (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per backend (default 3)")
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "LSTM_TUNE_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
        ),
        help="libpq conninfo of a PostgreSQL server where a scratch database may be created",
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    db_name = f"lstm_tune_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
        pg_base = f"postgresql+psycopg://{conn.info.user}@{conn.info.host}:{conn.info.port}"
    scratch = Path(tempfile.mkdtemp(prefix="lstm-tune-bench-"))
    backends: dict[str, str] = {
        "SQLite file, heartbeat off": f"sqlite:///{scratch / 'a.db'}?heartbeat_interval=0",
        "SQLite file, heartbeat on (default)": f"sqlite:///{scratch / 'b.db'}",
        "PostgreSQL, heartbeat off": f"{pg_base}/{db_name}?heartbeat_interval=0",
        "PostgreSQL, heartbeat on (default)": f"{pg_base}/{db_name}",
    }
    results: dict[str, list[float]] = {name: [] for name in backends}
    try:
        for _ in range(args.rounds):
            for name, url in backends.items():
                results[name].append(run_round(url, args.trials))
    finally:
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        for file in scratch.iterdir():
            file.unlink()
        scratch.rmdir()

    table = _table(results)
    print(table)
    if not args.no_write:
        command = (
            f"python benchmarks/storage_overhead.py --trials {args.trials} --rounds {args.rounds}"
        )
        _write_section(table, command, args.trials, args.rounds)
    return 0


def _table(results: dict[str, list[float]]) -> str:
    fmt: Callable[[float], str] = "{:.1f}".format
    lines = [
        "| storage | ms/trial (median) | min | max |",
        "|---|---:|---:|---:|",
    ]
    for name, values in results.items():
        lines.append(
            f"| {name} | {fmt(statistics.median(values))} | {fmt(min(values))} "
            f"| {fmt(max(values))} |"
        )
    return "\n".join(lines)


def _write_section(table: str, command: str, trials: int, rounds: int) -> None:
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"{SECTION_START}\n## Storage overhead per trial\n\n"
        f"A trivial objective (samples the six hyperparameters, trains nothing), {trials} "
        f"trials per round, {rounds} interleaved rounds per backend, median round shown. "
        f"PostgreSQL runs on the same machine (TCP on 127.0.0.1). Measured {when} on "
        f"{platform.machine()} with {os.cpu_count()} CPU cores (shared with other work), "
        f"Optuna {optuna.__version__}.\n\n"
        f"    {command}\n\n{table}\n\n"
        "An LSTM trial takes tens of seconds to hours, so either backend's overhead is noise; "
        "PostgreSQL is for pools that span machines, not for speed.\n"
        f"{SECTION_END}\n"
    )
    if SECTION_START in text and SECTION_END in text:
        head, rest = text.split(SECTION_START, 1)
        text = head + section + rest.split(SECTION_END, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
