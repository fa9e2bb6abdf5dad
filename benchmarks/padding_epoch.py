"""Whole epochs of lstm-tune's training path: masked left-padding against right-padding read at
the last real token, side by side.

``train_step`` timed single steps on batches without padding; this times what a search runs:
one epoch of length-bucketed IMDB batches through ``lstm_tune.training.fit`` (validation
included), the seed config, each variant in a fresh process, interleaved over ``--rounds``:

- ``masked``: left-padded batches, ``Embedding(mask_zero=True)``, the last LSTM's final state
  (lstm-tune's path before this benchmark);
- ``right-padded``: lstm-tune's path now (``build_classifier``): right-padded batches, no
  mask, the last LSTM's output read at each review's last real token.

Both compute the same function of a review (tests/unit/tasks/test_model.py) and start from the same
weights; the validation accuracy column shows how far the trained models end up apart (the
dropout draws differ between the two graphs).

    python benchmarks/padding_epoch.py --rounds 2                # full IMDB, writes the section
    python benchmarks/padding_epoch.py --rounds 1 --train-limit 2000 --no-write   # a look
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from _common import ROOT, SHARED_DATA

VARIANTS = {
    "masked": "masked: left-padded, Embedding(mask_zero=True) (the path before)",
    "right-padded": "lstm-tune's path: right-padded, last real token read, no mask",
}


def run_variant(name: str, data_path: str, train_limit: int | None, epochs: int) -> dict:
    """Train the seed config for ``epochs`` with variant ``name``; times and accuracies."""
    from unittest import mock

    import keras

    from lstm_tune.config import load_spec
    from lstm_tune.tasks.text_classification import batching
    from lstm_tune.tasks.text_classification.batching import dataset
    from lstm_tune.tasks.text_classification.data import (
        DataSpec,
        load_corpus,
        pad,
        split_validation,
    )
    from lstm_tune.tasks.text_classification.task import build_classifier
    from lstm_tune.training.fit import fit
    from lstm_tune.types import Objective

    spec = load_spec(ROOT / "studies" / "seed_config.yaml")
    params = spec.fixed_params()
    corpus = load_corpus(
        DataSpec(
            source="csv",
            path=data_path,
            max_features=spec.data.max_features,
            train_limit=train_limit,
        ),
        seed=42,
    )
    train, validation = split_validation(corpus.train, 0.2, seed=42)
    keras.utils.set_random_seed(42)
    length, batch = int(params["sequence_length"]), int(params["batch_size"])
    model = build_classifier(params, corpus.vocab_size)
    if name == "masked":
        from _notebook import masked_classifier

        weights = model.get_weights()
        model = masked_classifier(params, corpus.vocab_size)
        model.set_weights(weights)
        # The batching module pads to the right now; this variant needs the padding before.
        padding = mock.patch.object(
            batching, "pad", lambda seqs, n, side="left": pad(seqs, n, side="left")
        )
    else:
        padding = mock.patch.object(batching, "pad", pad)
    cpu = time.process_time()
    with padding:
        recorder = fit(
            model,
            dataset(train, sequence_length=length, batch_size=batch, shuffle_seed=42),
            dataset(validation, sequence_length=length, batch_size=batch, shuffle_seed=None),
            objective=Objective("val_accuracy", "maximize"),
            epochs=epochs,
        )
    return {
        "seconds_per_epoch": recorder.seconds_per_epoch,
        "cpu_seconds": time.process_time() - cpu,
        "val_accuracy": recorder.history["val_accuracy"],
        "fit_reviews": len(train),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-limit", type=int, default=None, help="default: all 25,000")
    parser.add_argument("--data-path", default=str(SHARED_DATA))
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        result = run_variant(args.variant, args.data_path, args.train_limit, args.epochs)
        print(json.dumps(result))
        return

    from _common import git_revision, machine_line, publish

    results: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    for round_index in range(args.rounds):
        for name in VARIANTS:
            command = [sys.executable, __file__, "--variant", name, "--data-path", args.data_path]
            command += ["--epochs", str(args.epochs)]
            command += ["--train-limit", str(args.train_limit)] if args.train_limit else []
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]))
            print(f"round {round_index + 1} {name}: {results[name][-1]}", flush=True)

    def epoch_seconds(name: str) -> list[float]:
        return [statistics.fmean(r["seconds_per_epoch"]) for r in results[name]]

    base = statistics.fmean(epoch_seconds("masked"))
    rows = [
        "| variant | s per epoch, each round | mean | vs masked | CPU s per epoch | "
        "val accuracy after the last epoch, each round |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, label in VARIANTS.items():
        seconds = epoch_seconds(name)
        cpu = statistics.fmean(r["cpu_seconds"] / args.epochs for r in results[name])
        accuracies = " / ".join(f"{r['val_accuracy'][-1]:.4f}" for r in results[name])
        rows.append(
            f"| {label} | {' / '.join(f'{s:.1f}' for s in seconds)} | "
            f"{statistics.fmean(seconds):.1f} | {statistics.fmean(seconds) / base:.2f}x | "
            f"{cpu:.1f} | {accuracies} |"
        )
    command = f"python benchmarks/padding_epoch.py --rounds {args.rounds}"
    command += f" --epochs {args.epochs}" if args.epochs != 1 else ""
    command += f" --train-limit {args.train_limit}" if args.train_limit else ""
    fit_reviews = results["masked"][0]["fit_reviews"]
    body = "\n".join(
        [
            "## padding_epoch",
            "",
            f"Command: `{command}` (commit {git_revision()})",
            f"Machine: {machine_line()}. {args.rounds} rounds, variants interleaved, each in a "
            "fresh process.",
            "",
            f"The seed config trained for {args.epochs} epoch(s) of {fit_reviews:,} IMDB reviews "
            "through `lstm_tune.training.fit` (length-bucketed batches, validation on the "
            "held-out 20% included in the epoch's time), seed 42 in both variants.",
            "",
            *rows,
        ]
    )
    publish("padding_epoch", body, not args.no_write)


if __name__ == "__main__":
    main()
