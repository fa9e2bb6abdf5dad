"""Pool scale: N worker processes on one study, PostgreSQL directly vs through the gRPC proxy.

Each worker is a separate process that opens the storage with lstm-tune's own code
(``open_storage``: heartbeats on, retries, the held-trial ledger; ``grpc://`` for the proxy),
stops at the study's budget with lstm-tune's own callbacks (``BudgetGate`` and the worker's
budget stop) and runs trivial trials: sample the six LSTM params, sleep ``--sleep`` seconds,
return. Workers start, open the study and wait; the clock starts when all are released, so
64 Python start-ups do not count. Measured per run:

* trials/s: the budget over the time from release to the last worker's exit;
* storage ms/trial: time inside storage calls (every thread, heartbeats included) per trial;
* PostgreSQL connections: ``pg_stat_activity`` rows of the benchmark database, sampled every
  0.2 s while the workers run (max and mean): the workers' own when direct, the proxy's
  through the proxy (it stays up, idle, during the direct runs);
* failures: FAIL trials and non-zero worker exits; overshoot: finished trials past the budget.

    python benchmarks/pool_scale.py [--workers 8 32 64] [--trials-per-worker 5]
        [--sleep 0.1] [--pg "host=127.0.0.1 port=5432 user=postgres dbname=postgres"] [--write]

Creates a scratch database and drops it afterwards. ``--write`` puts the table into
BENCHMARKS.md (section ``pool_scale``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# Storage calls timed in the workers (the outermost call only: nested ones are not counted).
TIMED = (
    "create_new_study", "get_study_id_from_name", "get_study_name_from_id",
    "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "set_study_user_attr", "set_study_system_attr", "create_new_trial", "set_trial_param",
    "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
    "set_trial_system_attr", "get_trial", "get_all_trials", "get_n_trials",
    "get_best_trial", "record_heartbeat", "_get_stale_trial_ids",
)  # fmt: skip


# --- the worker process ------------------------------------------------------------------------


def _time_storage_calls(cls: type) -> dict[str, float]:
    """Patch ``cls``'s storage methods to add their wall time (outermost calls) to a total."""
    totals = {"seconds": 0.0}
    depth = threading.local()
    lock = threading.Lock()

    def wrap(name: str) -> None:
        base = getattr(cls, name)

        def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            level = getattr(depth, "n", 0)
            depth.n = level + 1
            started = time.perf_counter()
            try:
                return base(self, *args, **kwargs)
            finally:
                depth.n = level
                if level == 0:
                    spent = time.perf_counter() - started
                    with lock:
                        totals["seconds"] += spent
                        totals[name] = totals.get(name, 0.0) + spent

        setattr(cls, name, timed)

    for name in TIMED:
        if hasattr(cls, name):
            wrap(name)
    return totals


def worker_main(url: str, study_name: str, budget: int, sleep: float) -> int:
    """One worker: open the study, say ready, wait for "go" on stdin, run to the budget."""
    import warnings

    import optuna

    from lstm_tune.storages import open_storage
    from lstm_tune.tuning.budget import BudgetGate

    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.get_storage(open_storage(url))
    totals = _time_storage_calls(type(storage))
    study = optuna.load_study(
        study_name=study_name, storage=storage, sampler=optuna.samplers.RandomSampler()
    )
    print("ready", flush=True)
    sys.stdin.readline()
    ran = [0]
    FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_int("hidden_size", 32, 512, log=True)
        trial.suggest_int("num_layers", 1, 3)
        trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
        trial.suggest_float("dropout_rate", 0.0, 0.5)
        trial.suggest_int("sequence_length", 100, 500, step=50)
        trial.suggest_categorical("batch_size", [32, 64, 128])
        ran[0] += 1
        time.sleep(sleep)
        return 0.5

    def stop_at_budget(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        # What lstm_tune.tuning.worker's budget stop does (imported from there, a worker would load
        # TensorFlow: 64 of them would not fit in memory).
        if len(study.get_trials(deepcopy=False, states=FINISHED)) >= budget:
            study.stop()

    exit_code = 0
    try:
        study.optimize(objective, callbacks=[BudgetGate(budget), stop_at_budget])
    except Exception as exc:  # counted as a failure by the parent
        print(f"error {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        exit_code = 1
    calls = {k: v for k, v in totals.items() if k != "seconds"}
    print(
        json.dumps({"trials": ran[0], "storage_s": totals["seconds"], "calls": calls}), flush=True
    )
    return exit_code


# --- the parent --------------------------------------------------------------------------------


@dataclass
class Result:
    """One run: a storage mode and a number of workers."""

    mode: str
    workers: int
    budget: int
    seconds: float
    storage_ms_per_trial: float
    connections_max: int
    connections_mean: float
    failed_trials: int
    failed_workers: int
    overshoot: int
    # Storage ms per trial spent in each kind of call, largest first.
    top_calls: list[tuple[str, float]]


# The proxy's connections carry this application_name, so a direct run (with the proxy
# idle beside it) counts only the workers' connections.
PROXY_APP = "lstm-tune-proxy"


def _sample_connections(
    conninfo: str, db: str, with_proxy: bool, stop: threading.Event, out: list[int]
) -> None:
    import psycopg

    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
    if not with_proxy:
        query += f" AND application_name <> '{PROXY_APP}'"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while not stop.is_set():
            row = conn.execute(query, (db,)).fetchone()
            out.append(int(row[0]) if row else 0)
            stop.wait(0.2)


def run_one(
    mode: str, url: str, n_workers: int, per_worker: int, sleep: float, conninfo: str, db: str
) -> Result:
    """Create a study, start ``n_workers`` workers on ``url``, release them, measure."""
    import optuna

    from lstm_tune.storages import open_storage

    study_name = f"scale-{mode}-{n_workers}-{uuid.uuid4().hex[:6]}"
    optuna.create_study(storage=open_storage(url), study_name=study_name)
    budget = n_workers * per_worker
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, __file__, "--worker", url, study_name, str(budget), str(sleep)]
    procs = [
        subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(n_workers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            for other in procs:
                other.kill()
            for other in procs:
                other.wait()
            raise RuntimeError(f"a {mode} worker did not start (said {line!r})")
    samples: list[int] = []
    stop = threading.Event()
    sampler = threading.Thread(
        target=_sample_connections,
        args=(conninfo, db, url.startswith("grpc:"), stop, samples),
    )
    sampler.start()
    time.sleep(0.5)  # a first sample of the idle, connected pool
    started = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        reports.append(json.loads(lines[-1]) if lines else {"trials": 0, "storage_s": 0.0})
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()

    storage = open_storage(url)
    trials = storage.get_all_trials(storage.get_study_id_from_name(study_name), deepcopy=False)
    finished = sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    ran = sum(r["trials"] for r in reports) or 1
    calls: dict[str, float] = {}
    for report in reports:
        for name, spent in report.get("calls", {}).items():
            calls[name] = calls.get(name, 0.0) + 1000 * spent / ran
    return Result(
        mode=mode,
        workers=n_workers,
        budget=budget,
        seconds=seconds,
        storage_ms_per_trial=1000 * sum(r["storage_s"] for r in reports) / ran,
        connections_max=max(samples),
        connections_mean=statistics.mean(samples),
        failed_trials=sum(t.state.name == "FAIL" for t in trials),
        failed_workers=sum(proc.returncode != 0 for proc in procs),
        overshoot=finished - budget,
        top_calls=sorted(calls.items(), key=lambda item: -item[1])[:3],
    )


def table(results: list[Result]) -> str:
    """The Markdown table of ``results``."""
    lines = [
        "| storage | workers | budget | trials/s | storage ms/trial | PG connections max "
        "| mean | failed trials | failed workers | overshoot |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.mode} | {r.workers} | {r.budget} | {r.budget / r.seconds:.1f} "
            f"| {r.storage_ms_per_trial:.1f} | {r.connections_max} | {r.connections_mean:.1f} "
            f"| {r.failed_trials} | {r.failed_workers} | {r.overshoot} |"
        )
    return "\n".join(lines)


def where_storage_time_goes(results: list[Result]) -> str:
    """One line per run: the three storage calls that took the most ms per trial."""
    lines = []
    for r in results:
        top = ", ".join(f"`{name}` {ms:.0f}" for name, ms in r.top_calls)
        lines.append(f"- {r.mode}, {r.workers} workers: {top}")
    return "\n".join(lines)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_proxy(url: str, port: int) -> subprocess.Popen[str]:
    proxy = subprocess.Popen(
        [sys.executable, "-m", "lstm_tune.cli", "storage-proxy", "--storage", url,
         "--port", str(port)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    import socket

    deadline = time.monotonic() + 120
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proxy
        if proxy.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the storage proxy did not listen on port {port}")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    """Run every (mode, N), print the table, optionally write BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--trials-per-worker", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=0.1, help="seconds per trivial trial")
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "LSTM_TUNE_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
        ),
        help="libpq conninfo of a server where a scratch database may be created",
    )
    parser.add_argument("--write", action="store_true", help="write the BENCHMARKS.md section")
    args = parser.parse_args(argv)

    import psycopg

    db = f"lstm_tune_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
        row = conn.execute("SHOW max_connections").fetchone()
        max_connections = row[0] if row else "?"
        base = f"postgresql+psycopg://{conn.info.user}@{conn.info.host}:{conn.info.port}/{db}"
    port = _free_port()
    direct_url = base  # lstm-tune's defaults: heartbeat every 10 s, grace period 60 s
    results: list[Result] = []
    failures: list[str] = []
    proxy = None
    try:
        proxy = _start_proxy(f"{direct_url}?application_name={PROXY_APP}", port)
        for n in args.workers:
            modes = (("PostgreSQL direct", direct_url), ("gRPC proxy", f"grpc://127.0.0.1:{port}"))
            for mode, url in modes:
                try:
                    result = run_one(mode, url, n, args.trials_per_worker, args.sleep, args.pg, db)
                except RuntimeError as exc:
                    # A pool that cannot even start is the measurement at that size: say so
                    # and go on with the other mode (the workers' own errors are on stderr).
                    failures.append(f"{mode}, {n} workers: {exc}")
                    print(f"| {mode} | {n} | did not start: {exc} |", flush=True)
                    continue
                print(table([result]).splitlines()[-1], flush=True)
                results.append(result)
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=30)
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    import optuna
    from _common import git_revision, publish

    command = (
        f"python benchmarks/pool_scale.py --workers {' '.join(map(str, args.workers))} "
        f"--trials-per-worker {args.trials_per_worker} --sleep {args.sleep:g} --write"
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = (
        "## pool_scale\n\n"
        f"N worker processes on one machine ({os.cpu_count()} cores, shared with other work) "
        f"share one study of trivial trials (six params sampled by the random sampler, "
        f"{args.sleep:g} s sleep, no training), each opening the storage with lstm-tune's "
        f"`open_storage` (heartbeat every 10 s) and stopping at the budget with lstm-tune's "
        f"budget gate; PostgreSQL (`max_connections` {max_connections}) "
        f"on the same machine, directly or through one `lstm-tune storage-proxy` (10 threads). "
        f"Measured {when}, commit {git_revision()}, Optuna {optuna.__version__}.\n\n"
        f"    {command}\n\n{table(results)}\n\n"
        f"{''.join(f'Did not start: {line}.' + chr(10) * 2 for line in failures)}"
        "Where the storage time goes (ms per trial, the three largest kinds of call):\n\n"
        f"{where_storage_time_goes(results)}\n\n"
        "trials/s: budget / seconds from releasing the (already started) workers to the last "
        "exit; storage ms/trial: time inside storage calls, all threads, per trial run; PG "
        "connections: `pg_stat_activity` rows of the benchmark database sampled every 0.2 s "
        "(direct: the workers' only; proxy: all, i.e. the proxy's); overshoot: finished "
        "trials beyond the budget. "
        "Extrapolation to 1,000 workers: docs/kubernetes.md.\n"
    )
    publish("pool_scale", body, args.write)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        raise SystemExit(
            worker_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
        )
    raise SystemExit(main())
