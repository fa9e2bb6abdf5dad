"""Training throughput of a machine by layout: worker processes x TensorFlow threads.

Every layout trains the same config on the same IMDB reviews (lstm-tune's training path:
length-bucketed batches, masked Keras LSTM) in whole processes that run at the same time, as a
pool's workers do. All processes of a layout load, build and warm up first, then train during
one shared window of ``--seconds``; each counts the reviews of the batches it trained within
the window (a batch that straddles an edge counts for its share of time). The layout's
throughput is the sum over its processes, given as reviews per second and per hour (an
IMDB epoch of lstm-tune's search is 20,000 reviews). Layouts run interleaved over
``--rounds`` rounds, so drift of the machine hits them alike.

Layouts:

- ``1 worker, default threads``: what ``lstm-tune search`` runs without ``--workers``;
- ``N workers, default threads``: N processes that each size TensorFlow to all the cores
  (a pool before ``--workers auto``: the compose replicas used to run so);
- ``auto``: what ``lstm-tune search --workers auto`` chooses here
  (``lstm_tune.runtime.workers_and_threads``);
- ``auto on 1 core``: the same rule under ``taskset -c 0`` (it picks 1 worker there), to say
  how the layout scales from 1 core to this machine's.

    python benchmarks/pool_throughput.py --data-path ../shared/data/imdb_50k.csv.gz --write
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import ROOT, git_revision, imdb_study, machine_line, publish  # noqa: E402

from lstm_tune.config import load_spec  # noqa: E402
from lstm_tune.runtime.workers_and_threads import Threads, auto_layout, parse_threads, usable_cores  # noqa: E402

SEED_PARAMS = load_spec(ROOT / "studies" / "seed_config.yaml").fixed_params()
REVIEWS_PER_EPOCH = 20_000
# Enough reviews that a window never runs out of distinct batches to train on.
TRAIN_LIMIT = 6_000


def configs() -> dict[str, dict[str, Any]]:
    """The seed config and the largest config of ``studies/imdb.yaml``'s space."""
    from lstm_tune.runtime.sizing import largest_configs

    largest = largest_configs(load_spec(ROOT / "studies" / "imdb.yaml"))[0]
    return {"seed": dict(SEED_PARAMS), "largest": {**SEED_PARAMS, **largest}}


# --- one worker process ----------------------------------------------------------------------


def worker(config: str, data_path: str, threads: Threads, start_at: float, seconds: float) -> None:
    """Train ``config`` from ``start_at`` for ``seconds``; print the reviews trained as JSON."""
    from lstm_tune.runtime.workers_and_threads import apply_threads

    applied = apply_threads(threads)
    import keras

    from lstm_tune.tasks import get_task

    spec = imdb_study(data_path, train_limit=TRAIN_LIMIT)
    params = configs()[config]
    task = get_task(spec.task)
    prepared = task.load(spec.data, spec.seed)
    keras.utils.set_random_seed(spec.seed)
    model = task.build(params, prepared)
    dataset = task.batches(prepared.fit, params, shuffle_seed=None)
    sizes = [int(labels.shape[0]) for _, labels in dataset]
    window_end = start_at + seconds
    state: dict[str, Any] = {"reviews": 0.0, "batches": 0, "first_begin": None}

    class Window(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_begin(self, index: int, logs: Any = None) -> None:
            state["begin"] = time.time()

        def on_train_batch_end(self, index: int, logs: Any = None) -> None:
            begin, end = state["begin"], time.time()
            overlap = min(end, window_end) - max(begin, start_at)
            if overlap > 0:
                if state["first_begin"] is None:
                    state["first_begin"] = begin
                share = overlap / max(end - begin, 1e-9)
                state["reviews"] += sizes[index % len(sizes)] * share
                state["batches"] += share
            if end >= window_end:
                self.model.stop_training = True

    model.fit(
        dataset.repeat(),
        steps_per_epoch=10**7,
        epochs=1,
        verbose=0,
        callbacks=[Window()],
    )
    late = max(0.0, (state["first_begin"] or window_end) - start_at)
    print(
        json.dumps(
            {
                "reviews": state["reviews"],
                "batches": state["batches"],
                "late_seconds": late,
                "threads": str(applied),
            }
        ),
        flush=True,
    )


# --- the parent ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayoutRun:
    """A layout to measure: its name, processes, threads each and an optional core list."""

    name: str
    workers: int
    threads: Threads
    cpus: str | None = None


def measure(
    layout: LayoutRun, config: str, data_path: str, seconds: float, warmup: float
) -> dict[str, Any]:
    """Run ``layout``'s processes together; return their summed reviews per second."""
    start_at = time.time() + warmup
    argv = [
        sys.executable, __file__, "--worker", config, "--data-path", data_path,
        "--threads", layout.threads.as_env(), "--start-at", repr(start_at),
        "--seconds", str(seconds),
    ]  # fmt: skip
    if layout.cpus is not None:
        argv = ["taskset", "-c", layout.cpus, *argv]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(layout.workers)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"worker failed ({layout.name}): {err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    late = max(r["late_seconds"] for r in results)
    return {
        "reviews_per_second": sum(r["reviews"] for r in results) / seconds,
        "late_seconds": late,
        "threads": sorted({r["threads"] for r in results}),
    }


def layouts(data_path: str) -> list[LayoutRun]:
    """The layouts compared on this machine."""
    from lstm_tune.runtime.sizing import study_size
    from lstm_tune.training.preflight import MAX_SHARE_OF_AVAILABLE, available_memory_bytes

    cores = usable_cores()
    spec = load_spec(ROOT / "studies" / "imdb.yaml")
    # The rule sized for this config alone (the search sizes for its space's largest).
    largest_bytes = study_size(spec, _prepared_for_sizing(data_path)).estimate.total
    auto = auto_layout(
        cores=cores,
        worker_bytes=largest_bytes,
        available_bytes=available_memory_bytes(),
        max_share=MAX_SHARE_OF_AVAILABLE,
        trials=spec.search.n_trials,
    )
    one_core = auto_layout(
        cores=1, worker_bytes=largest_bytes, available_bytes=available_memory_bytes(),
        max_share=MAX_SHARE_OF_AVAILABLE, trials=spec.search.n_trials,
    )  # fmt: skip
    return [
        LayoutRun("1 worker, default threads", 1, Threads()),
        LayoutRun(f"{cores} workers, default threads", cores, Threads()),
        LayoutRun(f"auto: {auto.workers} workers x {auto.threads}", auto.workers, auto.threads),
        LayoutRun(
            f"auto on 1 core (taskset -c 0): {one_core.workers} x {one_core.threads}",
            one_core.workers,
            one_core.threads,
            cpus="0",
        ),
    ]


def _prepared_for_sizing(data_path: str) -> Any:
    """The benchmark's slice of IMDB, prepared: sizing reads its vocabulary and lengths."""
    from lstm_tune.tasks import get_task

    spec = imdb_study(data_path, train_limit=TRAIN_LIMIT)
    return get_task(spec.task).load(spec.data, spec.seed)


def table(config: str, runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Markdown rows for ``config``: each layout's rounds, mean, and ratio to the baseline."""
    means = {
        name: statistics.fmean(r["reviews_per_second"] for r in rs) for name, rs in runs.items()
    }
    baseline = next(iter(means.values()))
    rows = []
    for name, rs in runs.items():
        rounds = " / ".join(f"{r['reviews_per_second']:.1f}" for r in rs)
        late = max(r["late_seconds"] for r in rs)
        rows.append(
            f"| {config} | {name} | {rounds} | {means[name]:.1f} | "
            f"{means[name] * 3600 / REVIEWS_PER_EPOCH:.1f} | {means[name] / baseline:.2f}x | "
            f"{late:.1f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-path", required=True)
    parser.add_argument("--configs", default="seed,largest")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--one-core", default="seed", help="configs also measured under taskset -c 0"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=60.0, help="load + build + first steps")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", default="0", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data_path, parse_threads(args.threads), args.start_at,
               args.seconds)  # fmt: skip
        return
    names = args.configs.split(",")
    compared = layouts(args.data_path)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {n: {} for n in names}
    for round_index in range(args.rounds):
        for name in names:
            for layout in compared:
                if layout.cpus is not None and name not in args.one_core.split(","):
                    continue
                result = measure(layout, name, args.data_path, args.seconds, args.warmup)
                results[name].setdefault(layout.name, []).append(result)
                print(f"round {round_index + 1} {name} {layout.name}: "
                      f"{result['reviews_per_second']:.1f} reviews/s "
                      f"(late {result['late_seconds']:.1f} s, threads {result['threads']})",
                      flush=True)  # fmt: skip
    params = configs()
    body = "\n".join(
        [
            "## pool_throughput",
            "",
            f"Command: `python benchmarks/pool_throughput.py --data-path {args.data_path} "
            f"--configs {args.configs} --one-core {args.one_core} --rounds {args.rounds} "
            f"--seconds {args.seconds:g} --warmup {args.warmup:g} "
            f"--write` (commit {git_revision()})",
            f"Machine: {machine_line()}; {usable_cores()} usable cores.",
            "",
            f"Each layout's processes train together for one {args.seconds:g}-second window "
            f"after loading and warming up; {args.rounds} interleaved rounds. Reviews per "
            f"second summed over the processes; epochs per hour = that x 3600 / "
            f"{REVIEWS_PER_EPOCH:,} (one epoch of the IMDB search). 'late' is how long the "
            f"slowest process of a layout missed of the window's start (0: all trained the "
            f"whole window).",
            "",
            "| config | layout | reviews/s per round | mean reviews/s | epochs/hour | "
            "vs 1 worker, default threads | late s |",
            "|---|---|---:|---:|---:|---:|---:|",
            *[row for name in names for row in table(name, results[name])],
            "",
            *[f"- {name}: {params[name]}" for name in names],
        ]
    )
    publish("pool_throughput", body, args.write)


if __name__ == "__main__":
    main()
