"""Ways to make one LSTM training step faster on this CPU, measured side by side.

The training path (``lstm_tune.training.fit``) already skips padding by batching reviews of similar
length. What is left is the time of one step over real tokens. This probes the levers that do
not change what the model computes, each in a fresh process (thread settings must be set before
TensorFlow starts), interleaved over ``--rounds`` rounds:

- TensorFlow's thread pools (intra-op and inter-op threads);
- Keras's ``mixed_bfloat16`` policy (the CPU has AVX512-BF16);
- XLA: ``compile(jit_compile=True)``, which Keras leaves off on a CPU-only machine;
- the input projection hoisted out of the loop: Keras's LSTM cell multiplies each step's input
  by its kernel inside the recurrent loop; this variant does it for all steps in one matmul
  first, leaving only the recurrent matmul and the gates per step (same weights);
- masked: left-padded batches and ``Embedding(mask_zero=True)``, lstm-tune's path until the
  measurement here (0.92x the time per review without the mask) and ``padding_epoch`` made it
  read the last real token of right-padded batches instead (the same function, because an
  LSTM only looks back);
- TensorFlow's fused whole-sequence LSTM kernel (``tf.raw_ops.BlockLSTMV2``, the op behind
  TF1's ``LSTMBlockFusedCell``), right-padded as lstm-tune's path;
- batch sizes 32 and 128, to tell per-step overhead from arithmetic: if a step were mostly
  overhead, a batch twice as large would cost far less than twice as much.

Every variant trains the seed config (hidden 128, 2 layers, Adam 1e-3) on batches of 64
reviews of ``--length`` tokens (218 = IMDB's mean review length after cutting to 500). Variants
that change the arithmetic report how far their predictions are from lstm-tune's model given
the same weights.

    python benchmarks/train_step.py                 # 3 rounds, writes BENCHMARKS.md
    python benchmarks/train_step.py --rounds 1 --no-write
    python benchmarks/train_step.py --variants default,xla --section train_step_xla  # a subset
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import ROOT  # noqa: E402

from lstm_tune.config import load_spec  # noqa: E402

# The seed notebook's config, from the study file that states it once for the whole project.
SEED_CONFIG = load_spec(ROOT / "studies" / "seed_config.yaml")
SEED_PARAMS = SEED_CONFIG.fixed_params()
VOCAB = SEED_CONFIG.data.max_features
# name -> (what it is, settings for run_variant)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "default": (
        "lstm-tune's path: right-padded, last real step read, TensorFlow's default threads",
        {},
    ),
    "intra1-inter1": ("1 intra-op thread, 1 inter-op thread", {"threads": (1, 1)}),
    "intra2-inter1": ("2 intra-op threads, 1 inter-op thread", {"threads": (2, 1)}),
    "intra1-inter2": ("1 intra-op thread, 2 inter-op threads", {"threads": (1, 2)}),
    "bf16": ("Keras mixed_bfloat16 policy", {"policy": "mixed_bfloat16"}),
    "xla": ("XLA: compile(jit_compile=True)", {"jit_compile": True}),
    "hoisted": ("input projection in one matmul before the loop", {"kind": "hoisted"}),
    "masked": ("masked Keras LSTM on left-padded ids (the path before)", {"kind": "masked"}),
    "fused-op": ("fused kernel tf.raw_ops.BlockLSTMV2, right-padded", {"kind": "fused"}),
    "batch32": ("batch 32 (per-review cost)", {"batch": 32}),
    "batch128": ("batch 128 (per-review cost)", {"batch": 128}),
}


def run_variant(name: str, length: int, batches: int) -> dict[str, Any]:
    """Time ``batches`` training steps of variant ``name``; return medians and the deviation."""
    settings = VARIANTS[name][1]
    import tensorflow as tf

    if "threads" in settings:
        intra, inter = settings["threads"]
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    import keras
    import numpy as np

    from lstm_tune.tasks.text_classification.task import build_classifier as build_model

    if "policy" in settings:
        keras.mixed_precision.set_global_policy(settings["policy"])
    batch = int(settings.get("batch", 64))
    kind = settings.get("kind", "default")
    keras.utils.set_random_seed(0)
    reference = build_model(SEED_PARAMS, VOCAB)
    model = _variant_model(settings, reference)
    deviation = None
    rng = np.random.default_rng(0)
    lengths = rng.integers(length // 2, length + 1, size=128)
    tokens = [rng.integers(1, VOCAB, size=n) for n in lengths]
    if model is not reference:
        model.set_weights(reference.get_weights())
        right = _padded(tokens, length, "right")
        ids_for_model = _padded(tokens, length, "left") if kind == "masked" else right
        expected = reference.predict(right, verbose=0)
        deviation = float(np.abs(model.predict(ids_for_model, verbose=0) - expected).max())
    elif "policy" in settings:
        keras.mixed_precision.set_global_policy("float32")
        exact = build_model(SEED_PARAMS, VOCAB)
        exact.set_weights([np.asarray(w, dtype=np.float32) for w in reference.get_weights()])
        right = _padded(tokens, length, "right")
        deviation = float(
            np.abs(exact.predict(right, verbose=0) - reference.predict(right, verbose=0)).max()
        )
    ids = rng.integers(1, VOCAB, size=(batch * (batches + 2), length)).astype(np.int32)
    labels = rng.integers(0, 2, size=len(ids)).astype(np.float32)
    step_seconds: list[float] = []
    cpu_seconds: list[float] = []

    class Clock(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_begin(self, index: int, logs: Any = None) -> None:
            self.wall, self.cpu = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, index: int, logs: Any = None) -> None:
            if index >= 2:  # the first steps trace and warm up
                step_seconds.append(time.perf_counter() - self.wall)
                cpu_seconds.append(time.process_time() - self.cpu)

    model.fit(
        ids, labels, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[Clock()]
    )
    step = statistics.median(step_seconds)
    return {
        "ms_per_batch": 1000 * step,
        "cpu_ms_per_batch": 1000 * statistics.median(cpu_seconds),
        "ms_per_review": 1000 * step / batch,
        "deviation": deviation,
    }


def _padded(tokens: list[Any], length: int, side: str) -> Any:
    import numpy as np

    out = np.zeros((len(tokens), length), dtype=np.int32)
    for row, seq in enumerate(tokens):
        if side == "left":
            out[row, length - len(seq) :] = seq
        else:
            out[row, : len(seq)] = seq
    return out


def _variant_model(settings: dict[str, Any], reference: Any) -> Any:
    """The model variant ``settings`` asks for; ``reference`` (lstm-tune's) when none."""
    kind = settings.get("kind", "default")
    if kind == "hoisted":
        return _hoisted_model()
    if kind in ("masked", "fused"):
        return _other_lstm_model(kind)
    if settings.get("jit_compile"):
        import keras

        from lstm_tune.tasks.text_classification.task import build_classifier as build_model

        model = build_model(SEED_PARAMS, VOCAB)
        model.compile(
            optimizer=keras.optimizers.Adam(float(SEED_PARAMS["learning_rate"])),
            loss="binary_crossentropy",
            metrics=["accuracy"],
            jit_compile=True,
        )
        return model
    return reference


def _hoisted_model() -> Any:
    """lstm-tune's model whose LSTMs project all steps' inputs at once."""
    from unittest import mock

    import keras
    from keras import ops

    from lstm_tune.tasks.text_classification.task import build_classifier as build_model

    class HoistedLSTM(keras.layers.LSTM):  # type: ignore[misc]
        def inner_loop(self, sequences: Any, initial_state: Any, mask: Any, training: Any = False):
            cell = self.cell
            projected = ops.matmul(sequences, cell.kernel) + cell.bias

            def step(projected_t: Any, states: Any) -> Any:
                h, c = states
                z = projected_t + ops.matmul(h, cell.recurrent_kernel)
                i, f, g, o = ops.split(z, 4, axis=-1)  # Keras's gate order
                c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
                h = ops.sigmoid(o) * ops.tanh(c)
                return h, [h, c]

            mask = mask[0] if isinstance(mask, (list, tuple)) else mask
            return keras.src.backend.rnn(
                step,
                projected,
                initial_state,
                mask=mask,
                return_all_outputs=self.return_sequences,
            )

    # build_model looks keras.layers.LSTM up when it runs, so the model is otherwise its own.
    with mock.patch.object(keras.layers, "LSTM", HoistedLSTM):
        return build_model(SEED_PARAMS, VOCAB)


def _other_lstm_model(kind: str) -> Any:
    """The seed model with ``masked`` Keras LSTMs (left-padded ids) or ``fused`` ones."""
    import keras
    import tensorflow as tf

    from lstm_tune.tasks.text_classification.task import last_real_step

    hidden = int(SEED_PARAMS["hidden_size"])

    class FusedLSTM(keras.layers.Layer):  # type: ignore[misc]
        """Keras LSTM weights (gate order i, f, c, o, as BlockLSTMV2's), one fused op."""

        def build(self, input_shape: Any) -> None:
            self.kernel = self.add_weight(shape=(input_shape[-1], 4 * hidden), name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(hidden, 4 * hidden), name="recurrent")
            self.bias = self.add_weight(shape=(4 * hidden,), initializer="zeros", name="bias")

        def call(self, sequence: Any) -> Any:
            time_major = tf.transpose(sequence, [1, 0, 2])
            zeros = tf.zeros([tf.shape(sequence)[0], hidden])
            no_peephole = tf.zeros([hidden])
            outputs = tf.raw_ops.BlockLSTMV2(
                seq_len_max=tf.cast(tf.shape(sequence)[1], tf.int64),
                x=time_major,
                cs_prev=zeros,
                h_prev=zeros,
                w=tf.concat([self.kernel, self.recurrent_kernel], axis=0),
                wci=no_peephole,
                wcf=no_peephole,
                wco=no_peephole,
                b=self.bias,
                cell_clip=0.0,
                use_peephole=False,
            )
            return tf.transpose(outputs[6], [1, 0, 2])  # h for every step

    ids = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, hidden, mask_zero=kind == "masked")(ids)
    layers = int(SEED_PARAMS["num_layers"])
    for index in range(layers):
        if kind == "fused":
            lstm = FusedLSTM()
        else:  # masked: the last LSTM returns the last unmasked step itself
            lstm = keras.layers.LSTM(hidden, return_sequences=index < layers - 1)
        x = keras.layers.Dropout(float(SEED_PARAMS["dropout_rate"]))(lstm(x))
    if kind == "fused":
        x = last_real_step(x, ids)
    model = keras.Model(ids, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile(
        optimizer=keras.optimizers.Adam(float(SEED_PARAMS["learning_rate"])),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--length", type=int, default=218, help="tokens per review")
    parser.add_argument("--batches", type=int, default=12, help="timed steps per variant")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated; must include default"
    )
    parser.add_argument("--section", default="train_step", help="the BENCHMARKS.md section")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.length, args.batches)))
        return
    names = [name.strip() for name in args.variants.split(",")]
    if "default" not in names or not set(names) <= set(VARIANTS):
        raise SystemExit(
            f"--variants: got {names}; expected names from {list(VARIANTS)}, default among them"
        )

    from _common import git_revision, machine_line, publish

    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        for name in names:
            command = [sys.executable, __file__, "--variant", name]
            command += ["--length", str(args.length), "--batches", str(args.batches)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]))
            print(f"round {round_index + 1} {name}: {results[name][-1]}", flush=True)
    base = statistics.median(r["ms_per_review"] for r in results["default"])
    rows = [
        "| variant | ms per batch | CPU ms per batch | ms per review | time per review vs default "
        "| max abs. difference in predicted probability |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        label, runs = VARIANTS[name][0], results[name]
        per_review = statistics.median(r["ms_per_review"] for r in runs)
        deviation = runs[0]["deviation"]
        rows.append(
            f"| {label} | {statistics.median(r['ms_per_batch'] for r in runs):.0f} | "
            f"{statistics.median(r['cpu_ms_per_batch'] for r in runs):.0f} | {per_review:.2f} | "
            f"{per_review / base:.2f} | {'-' if deviation is None else f'{deviation:.1e}'} |"
        )
    command = f"python benchmarks/train_step.py --rounds {args.rounds}"
    if names != list(VARIANTS):
        command += f" --variants {','.join(names)}"
    if args.section != "train_step":
        command += f" --section {args.section}"
    body = "\n".join(
        [
            f"## {args.section}",
            "",
            f"Command: `{command}` (commit {git_revision()})",
            f"Machine: {machine_line()}. {args.rounds} rounds, variants interleaved, each in a "
            "fresh process; the median over rounds of each process's median step is shown.",
            "",
            f"Seed config (hidden 128, 2 layers), batches of {args.length}-token reviews, "
            f"{args.batches} timed training steps per process after 2 warm-up steps. Batch 64 "
            "unless the variant says otherwise. The last column compares the variant's "
            "predictions with lstm-tune's model (same weights, right-padded) on 128 "
            "reviews of different lengths.",
            "",
            *rows,
        ]
    )
    publish(args.section, body, write=not args.no_write)


if __name__ == "__main__":
    main()
