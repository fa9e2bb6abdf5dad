"""Does re-validating a search's finalists pick a better model, and at what cost in time?

Runs (or reuses) a search, then retrains its top ``--finalists`` distinct configs over
``--seeds`` seeds exactly as ``lstm-tune finalize`` does
(``lstm_tune.tuning.finalize.revalidate``), and evaluates every retrained model on the test
split too, which ``finalize`` itself never looks at. It compares:

- the single best trial retrained once with the study's seed (what ``export-best`` +
  ``train`` give a user without ``finalize``): that is the top finalist's first seed run;
- the finalist ``finalize`` exports (best mean validation value over the seeds).

Usage (full IMDB, a 20-minute search first)::

    python benchmarks/finalists.py --data-path ../shared/data/imdb_50k.csv.gz \\
        --search-budget 1200 --workdir /tmp/finalists --write

or on a study that already exists: ``--storage URL --study-name NAME`` without
``--search-budget``. The section goes into BENCHMARKS.md as ``## finalists_<study>``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
from _common import ROOT, git_revision, machine_line, publish

from lstm_tune.cli.env import with_overrides as _with_overrides
from lstm_tune.storages import open_storage
from lstm_tune.tasks import get_task
from lstm_tune.tuning.export import best_config
from lstm_tune.tuning.finalize import Finalist, estimated_seconds, revalidate, top_trials, winner


def run_search(
    study_file: Path, data_path: str, storage: str, name: str, budget: int, workdir: Path
) -> float:
    """Phase 1: ``lstm-tune search`` with a timeout; returns its wall time in seconds."""
    command = [
        sys.executable,
        "-m",
        "lstm_tune.cli",
        "search",
        str(study_file),
        "--data-path",
        data_path,
        "--storage",
        storage,
        "--study-name",
        name,
        "--artifact-dir",
        str(workdir / "artifacts"),
        "--timeout",
        str(budget),
    ]
    started = time.perf_counter()
    with open(workdir / "search.log", "w", encoding="utf-8") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False, cwd=ROOT)
    return time.perf_counter() - started


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {std:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, default=ROOT / "studies" / "imdb.yaml")
    parser.add_argument("--data-path", required=True)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lstm-tune-finalists"))
    parser.add_argument("--storage", help="default: sqlite:///<workdir>/finalists.db")
    parser.add_argument("--study-name", default="finalists")
    parser.add_argument("--search-budget", type=int, help="seconds; omit to reuse the study")
    parser.add_argument("--finalists", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--test-metric", default="accuracy", help="key of the task's metrics")
    parser.add_argument(
        "--section",
        help="section name (default finalists_<study name>), so a new run of a study keeps "
        "the earlier run's section",
    )
    parser.add_argument("--write", action="store_true", help="write the BENCHMARKS.md section")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    storage = args.storage or f"sqlite:///{args.workdir.resolve()}/finalists.db"
    search_seconds = None
    if args.search_budget is not None:
        search_seconds = run_search(
            args.study, args.data_path, storage, args.study_name, args.search_budget, args.workdir
        )

    study = optuna.load_study(study_name=args.study_name, storage=open_storage(storage))
    base = _with_overrides(best_config(storage, args.study_name), args.data_path)
    task = get_task(base.task)
    prepared = task.load(base.data, base.seed)
    trials = top_trials(study, args.finalists)
    estimate = estimated_seconds(base, prepared, trials, args.seeds)
    print(
        f"{len(trials)} finalists x {args.seeds} seeds, estimated {estimate / 60:.1f} min",
        flush=True,
    )

    tests: dict[int, list[float]] = {t.number: [] for t in trials}
    run_seconds: list[dict[str, Any]] = []
    last = [time.perf_counter()]

    def evaluate_run(finalist: Finalist, seed: int, model: Any) -> None:
        metrics = task.evaluate(model, prepared, finalist.params)
        tests[finalist.trial_number].append(float(metrics[args.test_metric]))
        now = time.perf_counter()
        run_seconds.append(
            {"trial": finalist.trial_number, "seed": seed, "seconds": now - last[0]}
        )
        last[0] = now
        print(
            f"trial {finalist.trial_number} seed {seed}: validation "
            f"{finalist.values[-1]:.4f}, test {tests[finalist.trial_number][-1]:.4f}, "
            f"{run_seconds[-1]['seconds']:.0f} s",
            flush=True,
        )

    started = last[0] = time.perf_counter()
    finalists = revalidate(
        base, prepared, trials, seeds=args.seeds, budget=None, on_run=evaluate_run
    )
    finalize_seconds = time.perf_counter() - started
    chosen = winner(base, finalists)
    best_trial = finalists[0]
    one_run = [r["seconds"] for r in run_seconds if r["trial"] == best_trial.trial_number][0]

    metric = base.search.metric
    complete = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    pruned = len(study.get_trials(states=(optuna.trial.TrialState.PRUNED,)))
    rows = [
        f"| {f.trial_number}{' (exported)' if f is chosen else ''} | {f.trial_value:.4f} | "
        f"{f.epochs} | {_mean_std(f.values)} | {_mean_std(tests[f.trial_number])} | "
        f"{', '.join(f'{v:.4f}' for v in tests[f.trial_number])} | "
        f"{', '.join(f'{k}={v}' for k, v in sorted(f.params.items()))} |"
        for f in finalists
    ]
    picked_better = statistics.fmean(tests[chosen.trial_number]) - statistics.fmean(
        tests[best_trial.trial_number]
    )
    search_line = (
        f"search: {search_seconds / 60:.1f} min"
        if search_seconds is not None
        else "search: an existing study (its command is given beside this section)"
    )
    section = args.section or f"finalists_{base.name}"
    body = "\n".join(
        [
            f"## {section}",
            "",
            f"Command: `python benchmarks/finalists.py --study {args.study} "
            f"--data-path {args.data_path} --storage {storage} --study-name {args.study_name} "
            f"--finalists {args.finalists} --seeds {args.seeds}"
            f"{f' --search-budget {args.search_budget}' if args.search_budget else ''}"
            f"{f' --section {args.section}' if args.section else ''} --write` "
            f"(commit {git_revision()})",
            f"Machine: {machine_line()}. One run.",
            "",
            f"{search_line}; {complete} trials complete, {pruned} pruned. Each finalist is "
            f"retrained from scratch for its trial's best epoch count with seeds "
            f"{base.seed}..{base.seed + args.seeds - 1} on the search's fit/validation split "
            f"({task.size(prepared.fit)} / {task.size(prepared.validation)}), then evaluated on "
            f"the {task.size(prepared.test)} test examples. Validation = {metric} at the last "
            f"epoch (what `finalize` ranks by); test = {args.test_metric}.",
            "",
            f"| trial | search {metric} | epochs | re-validated {metric} (mean ± std) | "
            f"test {args.test_metric} (mean ± std) | test per seed | params |",
            "|---|---:|---:|---:|---:|---|---|",
            *rows,
            "",
            f"- Single best trial (trial {best_trial.trial_number}) retrained once with seed "
            f"{base.seed}, what `export-best` + `train` give: test {args.test_metric} "
            f"{tests[best_trial.trial_number][0]:.4f} (over {len(tests[best_trial.trial_number])} "
            f"seeds: {_mean_std(tests[best_trial.trial_number])}).",
            f"- `finalize` exports trial {chosen.trial_number}: test {args.test_metric} "
            f"{_mean_std(tests[chosen.trial_number])}; its mean minus the best trial's mean: "
            f"{picked_better:+.4f}.",
            f"- Cost: {finalize_seconds / 60:.1f} min for {sum(len(f.values) for f in finalists)} "
            f"retrainings (pre-flight estimate {estimate / 60:.1f} min), against "
            f"{one_run / 60:.1f} min for the one retraining of the best trial: "
            f"{finalize_seconds / one_run:.1f}x.",
        ]
    )
    (args.workdir / "finalists.json").write_text(
        json.dumps(
            {
                "finalists": [f.as_dict() | {"test": tests[f.trial_number]} for f in finalists],
                "chosen": chosen.trial_number,
                "runs": run_seconds,
                "finalize_seconds": finalize_seconds,
                "estimate_seconds": estimate,
                "search_seconds": search_seconds,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    publish(section, body, args.write)


if __name__ == "__main__":
    main()
