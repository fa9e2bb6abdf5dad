"""Worker memory: peak RSS of the largest config, and RSS across 20 small trials in one worker.

    python benchmarks/memory.py

Part 1 trains the largest config of ``studies/imdb.yaml`` (every range at its top: hidden 512,
3 layers, sequence_length 500, batch 128) on the longest reviews of IMDB (the worst case for
memory: every batch 500 steps) for a few batches in a fresh process, and reads that process's
peak RSS. Part 2 runs 20 small trials in one worker process (``lstm_tune.tuning.worker.run_search``
on a slice of IMDB) and reads the RSS after each trial. Trials 1-19 are sampled at random; trial
20 repeats trial 1's config, because a trial's RSS depends on its shapes (hidden size, batch,
sequence length), so only two trials of one config show growth that the worker accumulated.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import SHARED_DATA, git_revision, machine_line, write_section  # noqa: E402

from lstm_tune.cli.env import default_cache_dir  # noqa: E402

LARGEST_BATCHES = 6
SMALL_TRIALS = 20


def rss_mib() -> float:
    """Current resident set size of this process in MiB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def largest_config_child(data_path: str) -> None:
    """In a child process: train the largest config on the longest reviews, print peak RSS."""
    import numpy as np

    from lstm_tune.config import load_spec
    from lstm_tune.tasks.text_classification.batching import dataset
    from lstm_tune.tasks.text_classification.data import DataSpec, Split, load_corpus
    from lstm_tune.tasks.text_classification.task import build_classifier
    from lstm_tune.training.fit import fit

    spec = load_spec(Path(__file__).resolve().parents[1] / "studies" / "imdb.yaml")
    params = {name: getattr(r, "high", None) for name, r in spec.space.items()}
    params["batch_size"] = max(spec.space["batch_size"].choices)  # type: ignore[union-attr]
    params["dropout_rate"] = 0.3
    cache = default_cache_dir()
    corpus = load_corpus(DataSpec(source="csv", path=data_path, cache_dir=cache), seed=42)
    longest = np.argsort([-len(s) for s in corpus.train.sequences])
    n = LARGEST_BATCHES * int(params["batch_size"])
    train = Split(
        [corpus.train.sequences[i] for i in longest[:n]], corpus.train.labels[longest[:n]]
    )
    val = Split(train.sequences[: params["batch_size"]], train.labels[: params["batch_size"]])
    before = rss_mib()
    model = build_classifier(params, corpus.vocab_size)
    length, batch = int(params["sequence_length"]), int(params["batch_size"])
    fit(
        model,
        dataset(train, sequence_length=length, batch_size=batch, shuffle_seed=0),
        dataset(val, sequence_length=length, batch_size=batch, shuffle_seed=None),
        objective=spec.objective,
        epochs=1,
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "params": params,
                "rss_before_model_mib": before,
                "peak_rss_mib": peak,
                "param_count": model.count_params(),
            }
        )
    )


def small_trials(data_path: str) -> list[float]:
    """Run SMALL_TRIALS small trials in this process; return the RSS after each.

    The last trial repeats the first trial's params (enqueued once the one before it ends).
    """
    import optuna

    from lstm_tune.config import parse_spec
    from lstm_tune.tuning.worker import run_search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cache = default_cache_dir()
    spec = parse_spec(
        {
            "name": "memory",
            "data": {
                "path": data_path,
                "max_features": 5000,
                "train_limit": 1000,
                "test_limit": 100,
                "cache_dir": cache,
            },
            "training": {"epochs": 1},
            "search": {
                "n_trials": SMALL_TRIALS,
                "pruner": {"name": "none"},
                "sampler": {"name": "random"},
            },
            "space": {
                "hidden_size": {"low": 16, "high": 64},
                "num_layers": {"low": 1, "high": 2},
                "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
                "dropout_rate": {"low": 0.0, "high": 0.5},
                "sequence_length": {"low": 50, "high": 150, "step": 50},
                "batch_size": {"choices": [32, 64]},
            },
        },
        "memory benchmark",
    )
    after: list[float] = []
    first_params: dict[str, object] = {}

    def record(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        after.append(rss_mib())
        if trial.number == 0:
            first_params.update(trial.params)
        if trial.number == SMALL_TRIALS - 2:
            study.enqueue_trial(first_params)

    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_search(
            spec, storage_url=f"sqlite:///{tmp}/m.db", study_name="memory", callbacks=[record]
        )
    trials = outcome.study.trials
    if trials[-1].params != trials[0].params:
        raise RuntimeError(f"last trial's params {trials[-1].params} != first {trials[0].params}")
    return after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-path", default=str(SHARED_DATA))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.child:
        largest_config_child(args.data_path)
        return

    child = subprocess.run(
        [sys.executable, __file__, "--child", "--data-path", args.data_path],
        capture_output=True,
        text=True,
        check=True,
    )
    largest = json.loads(child.stdout.strip().splitlines()[-1])
    after = small_trials(args.data_path)
    growth = (after[-1] - after[0]) / after[0]
    # least-squares slope of RSS against trial number: less swayed by one trial than the ends
    slope = statistics.linear_regression(range(len(after)), after).slope
    trend = slope * (len(after) - 1) / after[0]
    table = "\n".join(
        [
            "| measurement | MiB |",
            "|---|---|",
            f"| largest config: RSS before building the model "
            f"| {largest['rss_before_model_mib']:.0f} |",
            f"| largest config: peak RSS while training | {largest['peak_rss_mib']:.0f} |",
            f"| small trials: RSS after trial 1 | {after[0]:.0f} |",
            f"| small trials: RSS after trial {len(after)} | {after[-1]:.0f} |",
        ]
    )
    per_trial = ", ".join(f"{v:.0f}" for v in after)
    print(table)
    print(f"RSS after each trial (MiB): {per_trial}")
    print(f"growth from trial 1 to trial {len(after)} (same config): {growth:+.1%}")
    print(f"least-squares trend: {slope:+.2f} MiB/trial, {trend:+.1%} over the run")
    if args.no_write:
        return
    write_section(
        "memory",
        f"""## memory

Command: `python benchmarks/memory.py` (commit {git_revision()}). Machine: {machine_line()}.
One run.

Largest config of `studies/imdb.yaml`: {largest["params"]} ({largest["param_count"]:,}
parameters), trained for {LARGEST_BATCHES} batches of the longest IMDB reviews (every batch
500 steps), in a fresh process.

{table}

RSS after each of the {len(after)} small trials in one worker (MiB): {per_trial}.
Trials 1-{len(after) - 1} are sampled at random; trial {len(after)} repeats trial 1's config, so
the two ends compare like with like (a trial's RSS follows its shapes).
Growth from trial 1 to trial {len(after)}: **{growth:+.1%}** (target: under 5%). Least-squares
trend over all {len(after)} trials: {slope:+.2f} MiB per trial, {trend:+.1%} over the run.
""",
    )


if __name__ == "__main__":
    main()
