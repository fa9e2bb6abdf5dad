"""A timed search of any study, then `train` on its best config, beside the task's baseline.

Runs the real commands a user runs, each a fresh process: ``lstm-tune search STUDY --timeout
BUDGET`` on a new SQLite file, ``export-best``, ``train``. Prints (and with ``--write`` puts
into BENCHMARKS.md under ``## task_search_<study name>``) the best validation value at each
minute mark, the trials' fates, which knobs mattered (Optuna's fANOVA importances over the
completed trials), and the test metrics of the retrained best config beside the task's trivial
baseline.

    python benchmarks/task_search.py studies/imdb_rating.yaml \
        --data-path ../shared/data/imdb_50k.csv.gz --budget 1800 --workers auto --write

``--search-args`` and ``--train-args`` pass more flags through (e.g. ``--train-args "--epochs
50"``); ``--section`` names the BENCHMARKS.md section when one study is run several ways;
``--storage`` shares one storage between runs, so a wide study can warm-start from the six's;
``--no-train`` stops after the search, when ``benchmarks/finalists.py`` retrains the study's
finalists over several seeds instead (two 60-minute IMDB searches then fit in one session).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git_revision, machine_line, publish  # noqa: E402

from lstm_tune.config import load_spec  # noqa: E402

MARKS_MIN = (1, 2, 5, 10, 15, 20, 25, 30, 45, 60)
NOT_TRAINED = (
    "No `train` in this run (`--no-train`): the test scores come from `benchmarks/finalists.py`."
)


def run(args: list[str], log: Path) -> float:
    """Run ``lstm-tune ARGS``, appending its output to ``log``; return its wall seconds."""
    started = time.perf_counter()
    with log.open("a") as out:
        out.write(f"$ lstm-tune {' '.join(args)}\n")
        out.flush()
        subprocess.run(
            [sys.executable, "-m", "lstm_tune.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
        )
    return time.perf_counter() - started


def best_over_time(study: optuna.Study, direction: str) -> list[tuple[float, float]]:
    """(minutes since the first trial started, best value) after each completed trial."""
    trials = study.get_trials(deepcopy=False)
    start = min(t.datetime_start for t in trials if t.datetime_start is not None)
    done = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE and t.datetime_complete),
        key=lambda t: t.datetime_complete,  # type: ignore[arg-type,return-value]
    )
    best: float | None = None
    out = []
    for t in done:
        assert t.value is not None and t.datetime_complete is not None
        if best is None or (t.value > best if direction == "maximize" else t.value < best):
            best = t.value
        out.append(((t.datetime_complete - start).total_seconds() / 60, best))
    return out


def importance_table(study: optuna.Study) -> str:
    """A markdown table of Optuna's parameter importances, or why there is none."""
    try:
        importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as exc:  # fewer than two completed trials, one value
        return f"(no importances: {exc})"
    rows = [f"| {name} | {value:.3f} |" for name, value in importances.items()]
    return "\n".join(["| parameter | importance |", "|---|---:|", *rows])


def train_section(args: argparse.Namespace, work: Path, data: list[str], log: Path) -> str:
    """Run `train` on the exported best config; the section's paragraph and table of its test
    scores beside the task's trivial baseline."""
    train = ["train", str(work / "best.yaml"), "--out", str(work / "best"), *data]
    train_s = run([*train, *shlex.split(args.train_args)], log)
    metrics = json.loads((work / "best" / "metrics.json").read_text())
    baseline = metrics.get("baseline", {})
    scores = [
        k
        for k in ("accuracy", "f1_macro", "roc_auc", "mse", "mae", "perplexity", "cross_entropy")
        if k in metrics
    ]
    rows = "\n".join(
        f"| {k} | {metrics[k]:.4f} | "
        + (f"{baseline[k]:.4f}" if isinstance(baseline.get(k), float) else "-")
        + " |"
        for k in scores
        if isinstance(metrics[k], float)
    )
    return f"""`train` on the best config ({metrics["epochs"]} epochs, {train_s / 60:.1f} min wall,
{metrics["train_size"]} fit / {metrics["validation_size"]} validation / {metrics["test_size"]} test
examples), test split:

| metric | model | baseline: {baseline.get("name", "-")} ({baseline.get("predicts", "")}) |
|---|---:|---:|
{rows}"""


def main() -> None:
    """Parse flags, run search → export-best → train (unless --no-train), print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", help="study YAML file")
    parser.add_argument("--data-path", help="local data file (passed to search and train)")
    parser.add_argument("--budget", type=float, default=1800, help="search seconds")
    parser.add_argument("--workers", default="1", help="search --workers (a number or auto)")
    parser.add_argument("--search-args", default="", help="more flags for search, one string")
    parser.add_argument("--train-args", default="", help="more flags for train, one string")
    parser.add_argument("--section", help="section name (default task_search_<study name>)")
    parser.add_argument("--workdir", help="where the run's files go (default: a temp dir)")
    parser.add_argument(
        "--storage",
        help="storage URL (default: sqlite:///WORKDIR/study.db); give two runs the same one "
        "to warm-start the second from the first (--search-args '--warm-start-from NAME')",
    )
    parser.add_argument(
        "--no-train",
        action="store_true",
        help="stop after the search (the finalists are retrained by benchmarks/finalists.py)",
    )
    parser.add_argument("--write", action="store_true", help="write the BENCHMARKS.md section")
    args = parser.parse_args()

    spec = load_spec(args.study)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="task-search-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    storage = args.storage or f"sqlite:///{work / 'study.db'}"
    data = ["--data-path", args.data_path] if args.data_path else []
    log = work / "run.log"
    common = ["--storage", storage]
    search_s = run(
        [
            "search",
            args.study,
            *common,
            *data,
            "--timeout",
            str(args.budget),
            "--artifact-dir",
            str(work / "artifacts"),
            "--workers",
            args.workers,
            *shlex.split(args.search_args),
        ],
        log,
    )
    run(["export-best", "--study-name", spec.name, *common, "-o", str(work / "best.yaml")], log)
    trained = NOT_TRAINED if args.no_train else train_section(args, work, data, log)

    study = optuna.load_study(study_name=spec.name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    states = {s: sum(t.state == s for t in trials) for s in TrialState}
    curve = best_over_time(study, spec.search.direction)
    metric = spec.search.metric
    marks = []
    for mark in MARKS_MIN:
        if mark * 60 > args.budget + 600:
            break
        seen = [v for minute, v in curve if minute <= mark]
        marks.append(f"| {mark} | {seen[-1]:.4f} |" if seen else f"| {mark} | - |")
    best = study.best_trial
    flags = f" --data-path {args.data_path}" if args.data_path else ""
    flags += f" --workers {args.workers}" if args.workers != "1" else ""
    flags += f" --storage {args.storage}" if args.storage else ""
    flags += f" --search-args {shlex.quote(args.search_args)}" if args.search_args else ""
    flags += f" --train-args {shlex.quote(args.train_args)}" if args.train_args else ""
    flags += " --no-train" if args.no_train else ""
    section = args.section or f"task_search_{spec.name}"
    body = f"""## {section}

Command: `python benchmarks/task_search.py {args.study}{flags} --budget {args.budget:.0f}`
Commit {git_revision()}; machine: {machine_line()}. One run.

Search: {search_s / 60:.1f} min wall (budget {args.budget / 60:.0f} min, trials in flight at the
budget finish), {len(trials)} trials: {states[TrialState.COMPLETE]} complete,
{states[TrialState.PRUNED]} pruned, {states[TrialState.FAIL]} failed.
Best: trial {best.number}, {metric} {best.value:.4f} at epoch {best.user_attrs.get("best_epoch")},
params {json.dumps(best.params)}.

Which knobs mattered (fANOVA importance of each searched parameter for {metric}, over the
completed trials):

{importance_table(study)}

Best {metric} so far (completed trials), by minute since the search started:

| minute | best {metric} |
|---:|---:|
{chr(10).join(marks)}

{trained}
"""
    publish(section, body, args.write)
    print(f"files in {work}")


if __name__ == "__main__":
    main()
