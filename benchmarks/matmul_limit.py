"""How fast this machine multiplies an LSTM step's matrices, the bound a character LSTM's
training speed is read against (BENCHMARKS.md ``task_search_shakespeare_char`` and after).

One recurrent step of a layer with ``hidden`` units multiplies ``[batch, hidden]`` by
``[hidden, 4 * hidden]``. This times that product in float32 with numpy and with TensorFlow
(a ``tf.function``): 20 warm-up calls, then calls in runs of 50 for ``--seconds``, and prints
GFLOP/s per shape. With ``--model-dir`` (a ``train`` output of a language model) it also
prints the model's measured training characters per second against the limit at its shape.

    python benchmarks/matmul_limit.py --model-dir runs/q/shakespeare/best
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import lstm_training_flops_per_token  # noqa: E402


def gflops(call: Callable[[], object], flops: float, seconds: float) -> float:
    """Run ``call`` 20 times to warm up, then in runs of 50 for ``seconds``: GFLOP/s."""
    for _ in range(20):
        call()
    calls = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(50):
            call()
        calls += 50
    return flops * calls / (time.perf_counter() - started) / 1e9


def measure(batch: int, hidden: int, seconds: float) -> tuple[float, float]:
    """(numpy, TensorFlow) GFLOP/s of ``[batch, hidden] @ [hidden, 4 hidden]`` in float32."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = rng.random((batch, hidden), dtype=np.float32)
    b = rng.random((hidden, 4 * hidden), dtype=np.float32)
    flops = 2.0 * batch * hidden * 4 * hidden
    ta, tb = tf.constant(a), tf.constant(b)
    product = tf.function(lambda: tf.matmul(ta, tb))
    return gflops(lambda: a @ b, flops, seconds), gflops(product, flops, seconds)


def main() -> None:
    """Parse flags, time the shapes, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="32,64,128", help="batch sizes, comma-separated")
    parser.add_argument("--hiddens", default="128,256,384,512", help="hidden sizes")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per shape")
    parser.add_argument("--model-dir", help="a language model's `train` output to read against")
    args = parser.parse_args()

    table: dict[tuple[int, int], tuple[float, float]] = {}
    print("| shape [batch, hidden] | numpy GFLOP/s | TF GFLOP/s |\n|---|---:|---:|")
    for batch in (int(x) for x in args.batches.split(",")):
        for hidden in (int(x) for x in args.hiddens.split(",")):
            table[batch, hidden] = measure(batch, hidden, args.seconds)
            np_rate, tf_rate = table[batch, hidden]
            print(f"| [{batch}, {hidden}] | {np_rate:.1f} | {tf_rate:.1f} |", flush=True)
    if not args.model_dir:
        return
    metrics = json.loads((Path(args.model_dir) / "metrics.json").read_text())
    params = metrics["params"]
    hidden, batch = int(params["hidden_size"]), int(params["batch_size"])
    per_char = lstm_training_flops_per_token(
        hidden,
        int(params["num_layers"]),
        inputs=int(params.get("embedding_size") or hidden),  # the default is hidden_size
        head=int(metrics["vocab_size"]),
    )
    np_rate, tf_rate = table.get((batch, hidden)) or measure(batch, hidden, args.seconds)
    epoch_s = float(np.median(metrics["seconds_per_epoch"]))
    chars_s = metrics["train_size"] / epoch_s
    limit = np_rate * 1e9 / per_char
    print(
        f"\n{params['num_layers']}x{hidden}, batch {batch}: {per_char / 1e6:.2f} MFLOP/char; "
        f"numpy [{batch}, {hidden}] {np_rate:.1f} GFLOP/s (TF {tf_rate:.1f}) -> limit "
        f"{limit:,.0f} chars/s; measured {chars_s:,.0f} chars/s (median epoch {epoch_s:.1f} s "
        f"over {len(metrics['seconds_per_epoch'])} epochs, {metrics['train_size']:,} characters, "
        f"validation pass included): {chars_s / limit:.0%} of the limit"
    )


if __name__ == "__main__":
    main()
