"""Seed notebook pipeline vs lstm-tune's training path, same config and data, one run.

The seed pipeline is the notebook's code path: every review padded to 500 tokens, an
unmasked Sequential model, ``model.fit`` on the padded arrays. lstm-tune's path is what
``lstm-tune search`` and ``lstm-tune train`` run (``lstm_tune.training.fit``): batches of
similar length padded only to their longest review, masked padding, a prefetching
``tf.data`` pipeline. Both train the seed config on the same fit/validation split.

The limit is this machine's measured float32 matrix-multiply rate at the LSTM's own matrix
shapes, divided by the LSTM's training FLOPs per real token.

    python benchmarks/train_speed.py --epochs 2            # full IMDB (20,000 fit reviews)
    python benchmarks/train_speed.py --epochs 1 --train-limit 2000   # a quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import (  # noqa: E402
    ROOT,
    SHARED_DATA,
    git_revision,
    lstm_training_flops_per_token,
    machine_line,
    write_section,
)
from _notebook import notebook_model  # noqa: E402

from lstm_tune.cli.env import default_cache_dir  # noqa: E402
from lstm_tune.config import load_spec  # noqa: E402
from lstm_tune.tasks.text_classification.batching import (
    dataset,  # noqa: E402
    truncated_lengths,  # noqa: E402
)
from lstm_tune.tasks.text_classification.data import (  # noqa: E402
    DataSpec,
    Split,
    load_corpus,
    pad,
    split_validation,
)
from lstm_tune.tasks.text_classification.task import build_classifier  # noqa: E402
from lstm_tune.training.fit import EpochRecorder, fit  # noqa: E402
from lstm_tune.types import Objective  # noqa: E402

# The seed notebook's config, from the study file that states it once for the whole project.
SEED_CONFIG = load_spec(ROOT / "studies" / "seed_config.yaml")
SEED = SEED_CONFIG.fixed_params()
MAX_FEATURES = SEED_CONFIG.data.max_features
# Both pipelines' epochs and accuracies, read by search_efficiency (one seed training run).
RESULT_JSON = ROOT / "runs" / "train_speed.json"


@dataclass
class Result:
    name: str
    seconds_per_epoch: list[float]
    val_accuracy: list[float]
    real_tokens: int
    cpu_seconds_per_epoch: float

    @property
    def mean_epoch(self) -> float:
        return float(np.mean(self.seconds_per_epoch))

    @property
    def tokens_per_second(self) -> float:
        return self.real_tokens / self.mean_epoch


ACCURACY = Objective("val_accuracy", "maximize")


def run_seed_pipeline(train: Split, val: Split, vocab: int, epochs: int, real: int) -> Result:
    keras.backend.clear_session()
    keras.utils.set_random_seed(42)
    model = notebook_model(SEED, vocab)
    recorder = EpochRecorder(ACCURACY)
    cpu = time.process_time()
    model.fit(
        pad(train.sequences, SEED["sequence_length"]),
        train.labels.astype("float32"),
        validation_data=(pad(val.sequences, SEED["sequence_length"]), val.labels),
        batch_size=SEED["batch_size"],
        epochs=epochs,
        callbacks=[recorder],
        verbose=0,
    )
    return Result(
        "seed notebook pipeline",
        recorder.seconds_per_epoch,
        recorder.history["val_accuracy"],
        real,
        (time.process_time() - cpu) / epochs,
    )


def run_lstm_tune(train: Split, val: Split, vocab: int, epochs: int, real: int) -> Result:
    keras.backend.clear_session()
    keras.utils.set_random_seed(42)
    model = build_classifier(SEED, vocab)
    cpu = time.process_time()
    length, batch = SEED["sequence_length"], SEED["batch_size"]
    recorder = fit(
        model,
        dataset(train, sequence_length=length, batch_size=batch, shuffle_seed=42),
        dataset(val, sequence_length=length, batch_size=batch, shuffle_seed=None),
        objective=ACCURACY,
        epochs=epochs,
    )
    return Result(
        "lstm-tune training path",
        recorder.seconds_per_epoch,
        recorder.history["val_accuracy"],
        real,
        (time.process_time() - cpu) / epochs,
    )


def matmul_rate(batch: int, hidden: int, seconds: float = 3.0) -> float:
    """Measured float32 FLOP/s of [batch, hidden] @ [hidden, 4*hidden], the LSTM's shape."""
    a = tf.random.normal((batch, hidden))
    b = tf.random.normal((hidden, 4 * hidden))

    @tf.function
    def many(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        acc = tf.zeros((batch, 4 * hidden))
        for _ in tf.range(100):
            acc += tf.matmul(a, b)
        return acc

    many(a, b).numpy()  # trace and warm up
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        many(a, b).numpy()
        calls += 1
    elapsed = time.perf_counter() - start
    return calls * 100 * 2 * batch * hidden * 4 * hidden / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--train-limit",
        type=int,
        default=None,
        help="stratified slice of the 25,000 training reviews (default: all)",
    )
    parser.add_argument("--data-path", default=str(SHARED_DATA))
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument(
        "--section",
        default="train_speed",
        help="the BENCHMARKS.md section to write (another keeps an earlier machine's table)",
    )
    args = parser.parse_args()

    cache = default_cache_dir()
    corpus = load_corpus(
        DataSpec(
            source="csv",
            path=args.data_path,
            max_features=MAX_FEATURES,
            train_limit=args.train_limit,
            cache_dir=cache,
        ),
        seed=42,
    )
    train, val = split_validation(corpus.train, 0.2, seed=42)
    real = int(truncated_lengths(train, SEED["sequence_length"]).sum())
    padded_tokens = len(train) * SEED["sequence_length"]
    print(
        f"{len(train)} fit / {len(val)} validation reviews; real tokens per epoch {real:,} "
        f"of {padded_tokens:,} padded ({real / padded_tokens:.1%})",
        flush=True,
    )

    rate = matmul_rate(SEED["batch_size"], SEED["hidden_size"])
    limit = rate / lstm_training_flops_per_token(SEED["hidden_size"], SEED["num_layers"])
    print(
        f"matmul [64,128]@[128,512]: {rate / 1e9:.1f} GFLOP/s -> limit {limit:,.0f} tokens/s",
        flush=True,
    )

    results = [
        run_seed_pipeline(train, val, corpus.vocab_size, args.epochs, real),
        run_lstm_tune(train, val, corpus.vocab_size, args.epochs, real),
    ]
    seed, ours = results
    header = (
        "| pipeline | s/epoch | CPU s/epoch | real tokens/s | fraction of limit | "
        + " | ".join(f"val acc e{i + 1}" for i in range(args.epochs))
        + " |"
    )
    rows = [header, "|" + "---|" * (5 + args.epochs)]
    for r in results:
        rows.append(
            f"| {r.name} | {r.mean_epoch:.1f} | {r.cpu_seconds_per_epoch:.1f} | "
            f"{r.tokens_per_second:,.0f} | "
            f"{r.tokens_per_second / limit:.1%} | "
            + " | ".join(f"{v:.4f}" for v in r.val_accuracy)
            + " |"
        )
    table = "\n".join(rows)
    speedup = seed.mean_epoch / ours.mean_epoch
    cpu_speedup = seed.cpu_seconds_per_epoch / ours.cpu_seconds_per_epoch
    print(table)
    print(f"speed-up per epoch: {speedup:.2f}x wall, {cpu_speedup:.2f}x CPU time")
    if args.no_write:
        return
    # For search_efficiency: one seed-config training run of the notebook pipeline, measured here.
    RESULT_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULT_JSON.write_text(
        json.dumps(
            {
                "commit": git_revision(),
                "train_limit": args.train_limit,
                "seed_pipeline": dataclasses.asdict(seed),
                "lstm_tune": dataclasses.asdict(ours),
            }
        )
    )
    fraction = ours.tokens_per_second / limit
    verdict = (
        f"Against the targets (issue 5): 3x per epoch is "
        f"{'met' if speedup >= 3 else 'missed'} ({speedup:.2f}x); half of the limit is "
        f"{'met' if fraction >= 0.5 else 'missed'} ({fraction:.1%})."
    )
    print(verdict)
    options = f" --train-limit {args.train_limit}" if args.train_limit else ""
    if args.section != "train_speed":
        options += f" --section {args.section}"
    command = f"python benchmarks/train_speed.py --epochs {args.epochs}{options}"
    body = f"""## {args.section}

Command: `{command}` (commit {git_revision()})
Machine: {machine_line()}. One run of each, side by side in one process; the machine is shared
with other work, so seconds carry noise of several percent.

Data: {len(train):,} fit / {len(val):,} validation reviews (stratified, seed 42), seed config
(hidden 128, 2 layers, lr 1e-3, dropout 0.3, sequence_length 500, batch 64). Real tokens per
epoch {real:,} of {padded_tokens:,} padded ({real / padded_tokens:.1%}).

Limit: measured float32 matmul rate at the LSTM's shape [64,128]@[128,512] = {rate / 1e9:.1f}
GFLOP/s, divided by the LSTM's training FLOPs per token (3 x forward, forward = 2 layers x
2 x 256 x 512) = {lstm_training_flops_per_token(128, 2) / 1e6:.2f} MFLOP -> {limit:,.0f} tokens/s.

{table}

Speed-up per epoch of lstm-tune's path over the seed pipeline: **{speedup:.2f}x** in wall
time, {cpu_speedup:.2f}x in CPU time (process CPU seconds, less sensitive to other load; the
CPU-time ratio over-states the gain if the seed pipeline used idle cores more fully).

{verdict}
"""
    write_section(args.section, body)


if __name__ == "__main__":
    main()
