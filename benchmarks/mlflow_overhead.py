"""MLflow's overhead per trial: the same tiny search with and without --mlflow-tracking-uri.

``lstm-tune search studies/imdb_tiny.yaml`` (4 trials of 2 epochs of tiny LSTMs on 800 IMDB
reviews; random sampler with the file's seed, so every run trains the same 4 configs) runs in a
fresh process per search, for each target, interleaved over ``--rounds`` rounds (the order
rotated each round, so no target always follows the same one):

- ``none``: no tracking;
- ``server``: ``--mlflow-tracking-uri http://127.0.0.1:PORT`` of an ``mlflow server`` started
  here on this machine (SQLite backend store, artifacts through the server; the server
  tests/integration/test_mlflow_server.py starts);
- ``sqlite``: ``--mlflow-tracking-uri sqlite:///...``, a local store written by the worker
  itself (no server).

For each search it takes, per trial: the trial's own seconds (Optuna's start to complete, mean
over the run's trials: what tracking costs the trials while they train), the user's wait (the
process's wall time over its trials: starting, loading the cached data, and at the end the wait
for runs still being written, all included), the search process's CPU seconds, and for
``server`` the server's CPU seconds meanwhile (its processes found by their command line). The
machine is shared, so wall times drift with its load: each target is compared with the ``none``
search of the same round (run next to it), and the median of those differences is reported.
CPU seconds drift much less than wall seconds. A tracked search's experiment must hold one
finished run per trial, or the benchmark stops: it measures tracking that works.

    python benchmarks/mlflow_overhead.py --data-path ../shared/data/imdb_50k.csv.gz \\
        [--rounds 3] [--targets none,server,sqlite] [--no-write]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import ROOT, git_revision, machine_line, publish  # noqa: E402

sys.path.insert(0, str(ROOT))  # tests.helpers: the test's `mlflow server`
STUDY = ROOT / "studies" / "imdb_tiny.yaml"
STUDY_TRIALS = 4  # imdb_tiny.yaml's search.n_trials
TARGETS = ("none", "server", "sqlite")


@dataclass
class Search:
    """One search's seconds per trial: the trials' own mean, the process's wall time, the
    process's CPU time and (``server`` only) the tracking server's CPU time."""

    trial: float
    wall: float
    cpu: float
    server_cpu: float = 0.0


FIGURES = {
    "trial": "trial s",
    "wall": "wall s",
    "cpu": "search CPU s",
    "server_cpu": "server CPU s",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-path", required=True, help="the IMDB CSV (imdb_50k.csv.gz)")
    parser.add_argument("--rounds", type=int, default=3, help="searches per target (default 3)")
    parser.add_argument(
        "--targets",
        default="none,server",
        help=f"comma-separated, of {', '.join(TARGETS)} (default none,server)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    targets = [t.strip() for t in args.targets.split(",")]
    if unknown := set(targets) - set(TARGETS):
        parser.error(f"--targets: unknown {sorted(unknown)}; allowed: {', '.join(TARGETS)}")
    data_path = str(Path(args.data_path).resolve())
    load_before = os.getloadavg()
    started = time.monotonic()
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlflow-bench-")))
        os.environ["LSTM_TUNE_CACHE_DIR"] = str(scratch / "cache")
        warm_data_cache(data_path)
        uris = {"none": None, "sqlite": f"sqlite:///{scratch / 'mlflow.db'}"}
        if "server" in targets:
            uris["server"] = stack.enter_context(server(scratch / "server"))
        results: dict[str, list[Search]] = {t: [] for t in targets}
        for round_ in range(args.rounds):
            shift = round_ % len(targets)
            for target in targets[shift:] + targets[:shift]:
                server_cpu = server_cpu_seconds(uris["server"]) if target == "server" else 0.0
                found = search(f"bench-{target}-{round_}", uris[target], data_path, scratch)
                if target == "server":
                    spent = server_cpu_seconds(uris["server"]) - server_cpu
                    found.server_cpu = spent / STUDY_TRIALS
                print(f"round {round_ + 1} {target}: {found}", flush=True)
                results[target].append(found)
    load_after = os.getloadavg()
    command = (
        f"python benchmarks/mlflow_overhead.py --data-path ../shared/data/imdb_50k.csv.gz "
        f"--rounds {args.rounds} --targets {','.join(targets)}"
    )
    body = "\n".join(
        [
            "## mlflow_overhead",
            "",
            f"Command: `{command}` (commit {git_revision()}).",
            f"Machine: {machine_line()}, MLflow {importlib.metadata.version('mlflow-skinny')}.",
            f"Load average (1, 5, 15 min) before: {_load(load_before)}; after: "
            f"{_load(load_after)}; {(time.monotonic() - started) / 60:.1f} minutes in all.",
            "",
            "`lstm-tune search studies/imdb_tiny.yaml` (4 trials of 2 epochs, tiny LSTMs, 800 "
            "IMDB reviews; the same 4 configs in every search), one process per search, "
            f"{args.rounds} rounds with the targets interleaved. `server` is an `mlflow "
            "server` (SQLite backend, one uvicorn worker) on this machine, `sqlite` a local "
            "`sqlite:///` store. Seconds per trial, median over rounds (min-max): *trial* is "
            "Optuna's start to complete, *wall* the search process's wall time over its "
            "trials, *search CPU* its CPU time (user + system) over its trials, *server CPU* "
            "the `mlflow server` processes' CPU time during the search over its trials.",
            "",
            *table(results),
            "",
            "Against `none`: the median over rounds of (target - `none` of the same round), "
            "and that as a share of `none`'s median; for `server`, *CPU on the machine* adds "
            "the server's CPU to the search's.",
            "",
            *differences(results),
        ]
    )
    publish("mlflow_overhead", body, write=not args.no_write)


def warm_data_cache(data_path: str) -> None:
    """Tokenize the study's data into ``$LSTM_TUNE_CACHE_DIR`` before any search, so the
    first search does not pay for it."""
    from lstm_tune.cli.env import load_with_overrides
    from lstm_tune.tasks import get_task

    spec = load_with_overrides(str(STUDY), data_path)
    get_task(spec.task).load(spec.data, spec.seed)


@contextmanager
def server(directory: Path) -> Iterator[str]:
    """An ``mlflow server`` for the block, as the test starts it."""
    from tests.helpers.servers import mlflow_server, mlflow_server_problem

    if problem := mlflow_server_problem():
        raise SystemExit(f"--targets server: {problem}")
    directory.mkdir()
    with mlflow_server(directory) as url:
        yield url


def search(name: str, uri: str | None, data_path: str, scratch: Path) -> Search:
    """Run one search as the study ``name`` (tracked to ``uri`` if given); its seconds per
    trial. Fails unless every trial completed and, tracked, became a finished run."""
    import optuna

    storage = f"sqlite:///{scratch / f'{name}.db'}"
    cmd = [
        sys.executable, "-m", "lstm_tune.cli", "search", str(STUDY),
        "--study-name", name, "--storage", storage, "--data-path", data_path,
        "--artifact-dir", str(scratch / "artifacts"),  # not studies/artifacts in the repo
    ]  # fmt: skip
    if uri is not None:
        cmd += ["--mlflow-tracking-uri", uri]
    env = {k: v for k, v in os.environ.items() if k != "LSTM_TUNE_MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(ROOT)
    log = scratch / f"{name}.log"
    began, cpu_before = time.perf_counter(), _children_cpu()
    with log.open("w") as out:
        done = subprocess.run(cmd, cwd=scratch, env=env, stdout=out, stderr=subprocess.STDOUT)
    wall, cpu = time.perf_counter() - began, _children_cpu() - cpu_before
    if done.returncode != 0:
        raise SystemExit(f"{name}: search exited {done.returncode}:\n{log.read_text()[-3000:]}")
    trials = optuna.load_study(study_name=name, storage=storage).trials
    if any(t.state != optuna.trial.TrialState.COMPLETE for t in trials):
        raise SystemExit(f"{name}: not every trial completed: {[t.state for t in trials]}")
    if uri is not None:
        check_runs(uri, name, len(trials))
    seconds = [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in trials
        if t.datetime_complete is not None and t.datetime_start is not None
    ]
    if len(trials) != STUDY_TRIALS:
        raise SystemExit(f"{name}: {len(trials)} trials, expected {STUDY_TRIALS}")
    n = len(trials)
    return Search(trial=statistics.mean(seconds), wall=wall / n, cpu=cpu / n)


def _children_cpu() -> float:
    """User + system CPU seconds of this process's ended (waited-for) children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def server_cpu_seconds(url: str | None) -> float:
    """User + system CPU seconds so far of the ``mlflow server`` processes serving ``url``
    (the CLI and its uvicorn child; both name the port on their command line)."""
    if url is None:
        return 0.0
    port = url.rsplit(":", 1)[1].encode()
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"mlflow" in b" ".join(argv) and port in argv and b"--port" in argv:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, ValueError, IndexError):
            continue
    return total


def check_runs(uri: str, experiment: str, expected: int) -> None:
    """Stop unless ``experiment`` at ``uri`` holds ``expected`` finished runs."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id]) if found is not None else []
    finished = [r for r in runs if r.info.status == "FINISHED"]
    if len(finished) != expected:
        raise SystemExit(
            f"{experiment} at {uri}: {len(finished)} finished runs, expected {expected}"
        )


def table(results: dict[str, list[Search]]) -> list[str]:
    """One row per target: each figure's median (min-max) over rounds."""
    lines = [
        "| target | " + " | ".join(FIGURES.values()) + " |",
        "|---|" + "---:|" * len(FIGURES),
    ]
    for target, found in results.items():
        cells = []
        for figure in FIGURES:
            if figure == "server_cpu" and target != "server":
                cells.append("-")
                continue
            values = [getattr(s, figure) for s in found]
            cells.append(f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})")
        lines.append(f"| {target} | " + " | ".join(cells) + " |")
    return lines


def differences(results: dict[str, list[Search]]) -> list[str]:
    """One row per tracked target: its paired difference to ``none`` in each figure."""
    base = results.get("none")
    if not base:
        return ["(no `none` target: nothing to compare with)"]
    columns = {"trial": "trial s", "wall": "wall s", "cpu": "search CPU s"}
    lines = [
        "| target | " + " | ".join(columns.values()) + " | CPU on the machine s |",
        "|---|" + "---:|" * (len(columns) + 1),
    ]
    for target, found in results.items():
        if target == "none":
            continue
        cells = [_paired(found, base, attrgetter(figure)) for figure in columns]
        cells.append(_paired(found, base, lambda s: s.cpu + s.server_cpu))
        lines.append(f"| {target} | " + " | ".join(cells) + " |")
    return lines


def _paired(found: list[Search], base: list[Search], figure: Callable[[Search], float]) -> str:
    """``+0.31 (+3%)``: the median of ``figure``'s round-by-round differences to ``base``."""
    diffs = [figure(a) - figure(b) for a, b in zip(found, base, strict=True)]
    median, reference = statistics.median(diffs), statistics.median(map(figure, base))
    return f"{median:+.2f} ({median / reference:+.0%})"


def _load(load: tuple[float, float, float]) -> str:
    return ", ".join(f"{x:.1f}" for x in load)


if __name__ == "__main__":
    main()
