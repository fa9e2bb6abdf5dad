"""TPE's time to sample one trial's six params, as the study's history grows.

A pool of 1,000 workers fills a study's history a thousand times faster than one worker,
and every worker's sampler reads all of it before each trial. This measures that cost alone
(in memory, no storage): `studies/imdb.yaml`'s sampler (TPE, multivariate, 8 start-up
trials) and space, after N finished trials with random values, median of ``--samples``.

    python benchmarks/sampler_history.py [--history 100 1000 5000] [--samples 15] [--write]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# studies/imdb.yaml's space.
SPACE = {
    "hidden_size": IntDistribution(32, 512, log=True),
    "num_layers": IntDistribution(1, 3),
    "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
    "dropout_rate": FloatDistribution(0.0, 0.5),
    "sequence_length": IntDistribution(100, 500, step=50),
    "batch_size": CategoricalDistribution([32, 64, 128]),
}


def _history(n: int, rng: random.Random) -> list[optuna.trial.FrozenTrial]:
    trials = []
    for _ in range(n):
        params = {
            "hidden_size": int(2 ** rng.uniform(5, 9)),
            "num_layers": rng.randint(1, 3),
            "learning_rate": 10 ** rng.uniform(-4, -2),
            "dropout_rate": rng.uniform(0.0, 0.5),
            "sequence_length": rng.choice(range(100, 501, 50)),
            "batch_size": rng.choice([32, 64, 128]),
        }
        trials.append(
            optuna.trial.create_trial(params=params, distributions=SPACE, value=rng.random())
        )
    return trials


def ms_per_sample(n: int, samples: int) -> float:
    """Median milliseconds TPE takes to sample the six params after ``n`` finished trials."""
    with warnings.catch_warnings():  # multivariate TPE is experimental in Optuna
        warnings.simplefilter("ignore")
        sampler = optuna.samplers.TPESampler(n_startup_trials=8, multivariate=True, seed=0)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.add_trials(_history(n, random.Random(n)))
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            trial = study.ask(SPACE)
            times.append((time.perf_counter() - started) * 1000)
            study.tell(trial, 0.5)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, optionally write BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--write", action="store_true", help="write the BENCHMARKS.md section")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rows = [(n, ms_per_sample(n, args.samples)) for n in args.history]
    from _common import git_revision, publish

    command = (
        f"python benchmarks/sampler_history.py --history {' '.join(map(str, args.history))} "
        f"--samples {args.samples} --write"
    )
    table = "\n".join(
        ["| finished trials in the study | TPE ms per trial (median) |", "|---:|---:|"]
        + [f"| {n:,} | {ms:.0f} |" for n, ms in rows]
    )
    body = (
        "## sampler_history\n\n"
        "TPE (multivariate, as `studies/imdb.yaml`) sampling one trial's six params after N "
        "finished trials, in memory (no storage), on the shared 2-core machine; commit "
        f"{git_revision()}, Optuna {optuna.__version__}.\n\n    {command}\n\n{table}\n"
    )
    publish("sampler_history", body, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
