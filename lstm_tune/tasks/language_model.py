"""Language modelling: predict the next character or word of a text, judged by perplexity.

The text (a UTF-8 file, or a CSV column whose rows are joined by newlines) is cut into tokens
(``level: char`` or ``word``) and split contiguously, as nanoGPT does: the last
``validation_split`` of the tokens validates trials, an optional ``test_split`` before it is
the test split (without it, ``train`` reports on the validation split and says so), the rest
trains. The vocabulary is the ``max_features`` most frequent tokens of the training split;
id 0 stands for every other token (out of vocabulary).

The model reads windows of ``sequence_length`` tokens and predicts the next token at every
position: Embedding → the shared LSTM stack (``return_sequences``) → Dense(vocabulary) logits.
Training windows do not overlap; each epoch draws a new random offset and order. Validation
windows are fixed. The objective is ``val_perplexity`` (exp of the mean cross-entropy over
every predicted token, minimised) or ``val_loss`` (that cross-entropy, nats per token).

Test metrics: cross-entropy (nats per token), perplexity, bits per character (``char``), the
same for the unigram model of the training split's token frequencies (``baseline``), and a
few samples the trained model writes (temperature sampling, fixed seed).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lstm_tune.errors import DataError
from lstm_tune.figures import Figure, Report, Row, Sample, Samples, Section, Table, Text
from lstm_tune.tasks import register
from lstm_tune.tasks.base import (
    COMMON_KNOBS,
    Options,
    State,
    Task,
    baseline_warning,
    sample_index,
)
from lstm_tune.tasks.readers import read_text_lines
from lstm_tune.training import preflight
from lstm_tune.types import Estimate, MemoryEstimate, Objective, Params, Prepared

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

OOV_TOKEN = "<unk>"
# Words and punctuation marks are tokens; so is a line break (verse and speakers need it).
WORD_PATTERN = re.compile(r"\w+|[^\w\s]|\n")
# Every gradient is clipped to this global norm, as nanoGPT does (grad_clip 1.0): a
# character LSTM at a high learning rate otherwise diverges now and then.
GRADIENT_CLIP_NORM = 1.0
# Copies of the batch x sequence x vocabulary logits a training step holds: the logits, their
# softmax inside the loss, and the gradient of the logits (an estimate, not measured).
LOGIT_COPIES = 3
# Samples the report shows: how many, prompted by how many tokens of the test split,
# continued by how many tokens, at what temperature.
SAMPLE_COUNT = 3
SAMPLE_PROMPT_TOKENS = {"char": 40, "word": 10}
SAMPLE_TOKENS = {"char": 240, "word": 50}
SAMPLE_TEMPERATURE = 0.8
PREFETCH_BATCHES = 4


class LanguageModelData(BaseModel):
    """The ``data:`` section of a language-modelling study."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(
        min_length=1,
        description="a UTF-8 text file (optionally .gz), or a CSV with `text_column`; "
        "relative to the study file (--data-path overrides)",
    )
    text_column: str | None = Field(
        None,
        min_length=1,
        description="the file is a CSV and this column holds the text (rows joined by "
        "newlines); leave it out for a plain text file",
    )
    level: Literal["char", "word"] = Field(
        "char", description="`char`: one token per character; `word`: words and punctuation"
    )
    max_features: int = Field(
        10000,
        ge=2,
        description="vocabulary: this many most frequent tokens of the training split, plus "
        "one id for every other token",
    )
    validation_split: float = Field(
        0.1, gt=0.0, lt=0.5, description="the last share of the tokens, validating trials"
    )
    test_split: float | None = Field(
        None,
        gt=0.0,
        lt=0.5,
        description="the share just before the validation tokens, held out for `train`; "
        "without it `train` reports on the validation split",
    )

    @model_validator(mode="after")
    def _something_left_to_train_on(self) -> LanguageModelData:
        held_out = self.validation_split + (self.test_split or 0.0)
        if held_out > 0.8:
            raise ValueError(
                f"validation_split + test_split = {held_out:g} leaves under 20% to train on; "
                f"expected at most 0.8"
            )
        return self


class WindowTooLong(DataError, preflight.ConfigTooLarge):
    """A config's window does not fit a split. In a search it is a kind of
    :class:`~lstm_tune.training.preflight.ConfigTooLarge`: that trial fails with this reason and
    the search goes on with the next config (as forecasting's window check does); in ``train`` it
    is a :class:`DataError`: one line, exit 2."""


@dataclass(frozen=True)
class TokenSplit:
    """A contiguous run of token ids; ``sample`` = (windows, seed) keeps a fixed sample of
    that many of its windows (checkpoint scoring), else every window counts. Its size is its
    number of tokens (a window's count depends on ``sequence_length``)."""

    name: str
    ids: np.ndarray
    path: str
    sample: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.ids)


class LanguageModel(Task):
    """Text → next-token probabilities; see the module docstring."""

    name = "language_model"
    data_model = LanguageModelData
    objectives = (Objective("val_perplexity", "minimize"), Objective("val_loss", "minimize"))
    example_noun = "windows"
    knobs = (*COMMON_KNOBS, "embedding_size")

    # -- data ------------------------------------------------------------------------------

    def load(self, data: Any, seed: int) -> Prepared:
        """Tokenized, contiguously split text and the training split's vocabulary."""
        return prepare(data, seed)

    def batches(
        self, split: TokenSplit, params: Params, *, shuffle_seed: int | None
    ) -> tf.data.Dataset:
        """(window, next tokens) batches; with a seed, a new offset and order every pass."""
        return window_dataset(
            split,
            int(params["sequence_length"]),
            int(params["batch_size"]),
            shuffle_seed=shuffle_seed,
        )

    def sample(self, split: TokenSplit, size: int, seed: int) -> TokenSplit:
        """``split`` marked to use a fixed sample of ``size`` of its windows."""
        return replace(split, sample=(size, seed))

    # -- model -----------------------------------------------------------------------------

    def build(self, params: Params, prepared: Prepared) -> keras.Model:
        """Embedding → LSTM stack returning sequences → Dense(vocabulary) logits; compiled."""
        check_windows_fit(params, prepared)
        return build_language_model(params, prepared.meta["vocab_size"])

    def score(self, model: keras.Model, split: TokenSplit, params: Params, metric: str) -> float:
        """``val_perplexity`` or ``val_loss`` of ``model`` over ``split``'s windows."""
        nats = cross_entropy(model, split, params)
        if metric == "val_perplexity":
            return math.exp(nats)
        if metric == "val_loss":
            return nats
        raise ValueError(f"language_model cannot score {metric!r}")

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(self, model: keras.Model, prepared: Prepared, params: Params) -> dict[str, Any]:
        """Test cross-entropy, perplexity, bits per character, the unigram baseline beside
        them, the same on the validation split, and samples written by the model."""
        meta = prepared.meta
        level, length = meta["level"], int(params["sequence_length"])
        metrics: dict[str, Any] = dict(
            per_token_scores(cross_entropy(model, prepared.test, params), level)
        )
        unigram = unigram_probabilities(prepared.fit.ids, meta["vocab_size"])
        metrics["baseline"] = {
            "name": "unigram",
            "predicts": f"training-split {level} frequencies",
            **per_token_scores(unigram_cross_entropy(unigram, prepared.test.ids, length), level),
        }
        metrics["beats_baseline"] = metrics["cross_entropy"] < metrics["baseline"]["cross_entropy"]
        metrics["validation"] = per_token_scores(
            cross_entropy(model, prepared.validation, params), level
        )
        metrics.update(
            level=level,
            vocab_size=meta["vocab_size"],
            test_is_validation=meta["test_is_validation"],
            predicted_tokens=predicted_count(len(prepared.test), length),
            samples=generate_samples(model, prepared, SAMPLE_COUNT, seed=meta["seed"]),
        )
        return metrics

    def report(self, metrics: Mapping[str, Any]) -> Report:
        """Scores beside the unigram baseline's and on validation, and the samples the model
        wrote; in the terminal, the same as lines."""
        samples = Samples(
            tuple(
                Sample(s["prompt"], s["text"], s["temperature"], s["seed"])
                for s in metrics["samples"]
            )
        )
        sections = (
            Section("test-metrics", "Test metrics", _test_metrics(metrics)),
            Section(
                "samples",
                "Samples",
                (samples,),
                caption="Text the trained model writes after a prompt from the test split "
                "(prompt in bold), sampled with a fixed seed.",
            ),
        )
        return Report(sections, (*_summary(metrics), samples))

    # -- pre-flight ------------------------------------------------------------------------

    def with_validation_in_fit(self, prepared: Prepared) -> Prepared:
        """The fit tokens followed by the validation tokens (the vocabulary stays the fit
        split's: ids the model was tuned with)."""
        fit, validation = prepared.fit, prepared.validation
        merged = replace(fit, ids=np.concatenate([fit.ids, validation.ids]))
        return replace(prepared, fit=merged)

    def inference_state(self, prepared: Prepared, data: Any) -> dict[str, Any]:
        """The vocabulary (id → token; id 0 out-of-vocabulary) and the level."""
        return {"vocabulary": list(prepared.meta["vocabulary"]), "level": prepared.meta["level"]}

    def read_inputs(self, state: State, path: Path) -> Iterator[str]:
        """Prompts: the non-empty lines of a UTF-8 text file."""
        return read_text_lines(path, "prompt")

    def check_input(self, state: State, params: Params, item: Any) -> str:
        """A prompt with at least one token to continue from."""
        prompt = str(item)
        if not tokenize(prompt, state["level"]):
            raise DataError(
                f"prompt {prompt[:40]!r} has no {state['level']} to continue from; give a "
                f"non-empty prompt"
            )
        return prompt

    def predict(
        self, model: keras.Model, state: State, params: Params, inputs: list[Any], options: Options
    ) -> list[dict[str, Any]]:
        """Each prompt continued by ``length`` tokens sampled at ``temperature`` (seeded)."""
        level, vocabulary = state["level"], state["vocabulary"]
        length = int(options.get("length", SAMPLE_TOKENS[level]))
        temperature = float(options.get("temperature", SAMPLE_TEMPERATURE))
        rng = np.random.default_rng(int(options.get("seed", 0)))
        rows = []
        for prompt in inputs:
            ids = encode(tokenize(str(prompt), level), vocabulary)
            written = continue_ids(model, ids, length, temperature, rng)
            text = detokenize([vocabulary[i] for i in written], level)
            rows.append({"prompt": str(prompt), "text": text, "temperature": temperature})
        return rows

    def estimate(
        self, params: Params, prepared: Prepared, checkpoints: int = 0, sample_size: int = 0
    ) -> Estimate:
        """Memory: embedding, LSTM stack and output weights, activations plus the logits'.
        Time: LSTM steps of the training windows, the validation windows and checkpoint
        samples. ``checkpoints`` is ``size(fit) // report_every``; ``size`` counts tokens
        while ``report_every`` counts windows, so the checkpoints an epoch passes are about
        ``checkpoints // sequence_length``."""
        check_windows_fit(params, prepared)
        vocab = prepared.meta["vocab_size"]
        stack = preflight.estimate_memory(
            params,
            weights=parameter_count(params, vocab),
            input_width=embedding_size(params),
        )
        length, batch = int(params["sequence_length"]), int(params["batch_size"])
        # The shared formula counts the LSTM's activations; a language model also holds
        # batch x sequence x vocabulary logits (and their softmax and gradient) per step.
        logits = 4 * LOGIT_COPIES * batch * length * vocab
        memory = MemoryEstimate(stack.base, stack.weights, stack.activations + logits)
        train = training_window_count(len(prepared.fit), length)
        val = window_count(len(prepared.validation), length)
        sample = min(sample_size, val)
        forward_batches = -(-val // batch) + (checkpoints // length) * -(-sample // batch)
        seconds = preflight.epoch_seconds(
            params, -(-train // batch) * length, forward_batches * length
        )
        return Estimate(memory, seconds)


# --------------------------------------------------------------------------- reading


def _problem(path: str, field: str, value: Any, allowed: str) -> DataError:
    return DataError(f"{path}: {field}: got {value}; expected {allowed}")


def read_text(data: LanguageModelData) -> str:
    """The text ``data`` names: a UTF-8 file (optionally .gz) or a CSV column joined by
    newlines. Raises :class:`DataError` for a missing, empty, binary or non-UTF-8 file."""
    path = data.path
    try:
        raw = Path(path).read_bytes()
        if path.endswith(".gz"):
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise _problem(path, "data.path", "no such file", "a UTF-8 text file") from None
    except (OSError, EOFError) as exc:
        raise _problem(path, "data.path", f"an unreadable file ({exc})", "a text file") from None
    if not raw.strip():
        raise _problem(path, "data.path", f"an empty file ({len(raw)} bytes)", "UTF-8 text")
    if b"\x00" in raw:
        at = raw.index(b"\x00")
        raise _problem(path, "data.path", f"a binary file (NUL byte at {at})", "UTF-8 text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start]
        raise _problem(
            path, "data.path", f"not UTF-8 text at byte {exc.start} (0x{bad:02x})", "UTF-8 text"
        ) from None
    return text if data.text_column is None else _csv_column(text, path, data.text_column)


def _csv_column(text: str, path: str, column: str) -> str:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    if column not in columns:
        raise _problem(
            path, "data.text_column", repr(column), f"one of the file's columns {columns}"
        )
    return "\n".join(row[column] or "" for row in reader)


def tokenize(text: str, level: str) -> list[str]:
    """Characters, or words, punctuation marks and line breaks."""
    return list(text) if level == "char" else WORD_PATTERN.findall(text)


def detokenize(tokens: Sequence[str], level: str) -> str:
    """Tokens back into text (words joined by spaces, no space around line breaks)."""
    if level == "char":
        return "".join(tokens)
    return " ".join(tokens).replace(" \n ", "\n").replace(" \n", "\n").replace("\n ", "\n")


# --------------------------------------------------------------------------- splitting


def split_bounds(
    n_tokens: int, validation_split: float, test_split: float | None
) -> tuple[int, int]:
    """Where the fit split ends and the validation split starts: [fit | test | validation]."""
    validation_start = n_tokens - round(n_tokens * validation_split)
    fit_end = validation_start - round(n_tokens * (test_split or 0.0))
    return fit_end, validation_start


def build_vocabulary(tokens: Sequence[str], max_features: int) -> list[str]:
    """Id → token: the out-of-vocabulary token, then the ``max_features`` most frequent
    ``tokens`` (ties by first appearance)."""
    return [OOV_TOKEN, *(token for token, _ in Counter(tokens).most_common(max_features))]


def encode(tokens: Sequence[str], vocabulary: Sequence[str]) -> np.ndarray:
    """Token ids (int32); a token outside ``vocabulary`` gets id 0."""
    index = {token: i for i, token in enumerate(vocabulary)}
    return np.fromiter((index.get(t, 0) for t in tokens), dtype=np.int32, count=len(tokens))


def prepare(data: LanguageModelData, seed: int = 0) -> Prepared:
    """Read, tokenize and split ``data``; the vocabulary comes from the fit split only.
    ``seed`` seeds the samples the evaluation writes."""
    text = read_text(data)
    path = data.path
    tokens = tokenize(text, data.level)
    fit_end, validation_start = split_bounds(len(tokens), data.validation_split, data.test_split)
    parts = {
        "fit": (tokens[:fit_end], "data.validation_split"),
        "validation": (tokens[validation_start:], "data.validation_split"),
        "test": (tokens[fit_end:validation_start], "data.test_split"),
    }
    for name, (part, field) in parts.items():
        if (name != "test" or data.test_split is not None) and len(part) < 2:
            raise _problem(
                path,
                field,
                f"a {name} split of {len(part)} {data.level}s (of {len(tokens)})",
                f"at least 2 {data.level}s in each split (a longer text or a larger share)",
            )
    vocabulary = build_vocabulary(parts["fit"][0], data.max_features)
    if len(vocabulary) < 3:
        seen = repr(vocabulary[1]) if len(vocabulary) > 1 else "none"
        raise _problem(
            path,
            "data.level",
            f"{data.level!r}, and the training split holds one distinct {data.level} ({seen})",
            "a text of at least 2 distinct tokens to predict among",
        )
    splits = {
        name: TokenSplit(name, encode(part, vocabulary), path) for name, (part, _) in parts.items()
    }
    test_is_validation = data.test_split is None
    return Prepared(
        fit=splits["fit"],
        validation=splits["validation"],
        test=splits["validation"] if test_is_validation else splits["test"],
        meta={
            "vocab_size": len(vocabulary),
            "vocabulary": vocabulary,
            "level": data.level,
            "test_is_validation": test_is_validation,
            "seed": seed,
        },
    )


# --------------------------------------------------------------------------- windows


def window_count(n_tokens: int, length: int) -> int:
    """Non-overlapping windows of ``length`` inputs (plus the next token) in a split."""
    return max(0, (n_tokens - 1) // length)


def training_window_count(n_tokens: int, length: int) -> int:
    """Windows per training epoch: one fewer than fit at offset 0, so every epoch can start
    at a random offset in [0, length] and still hold the same number."""
    count = window_count(n_tokens, length)
    return count - 1 if count >= 2 else count


def predicted_count(n_tokens: int, length: int) -> int:
    """Tokens a pass over a split's fixed windows predicts."""
    return window_count(n_tokens, length) * length


def check_windows_fit(params: Params, prepared: Prepared) -> None:
    """Raise :class:`WindowTooLong` when a split is too short for one window of the config."""
    length = int(params["sequence_length"])
    for split in (prepared.fit, prepared.validation, prepared.test):
        if window_count(len(split), length) < 1:
            raise WindowTooLong(
                f"{split.path}: sequence_length: got {length}; expected at most "
                f"{len(split) - 1}: the {split.name} split holds {len(split)} "
                f"{prepared.meta['level']}s and a window needs sequence_length + 1"
            )


def window_starts(split: TokenSplit, length: int) -> np.ndarray:
    """Start of each fixed window of ``split`` (its seeded sample when it has one)."""
    starts = np.arange(window_count(len(split), length)) * length
    if split.sample is not None:
        size, seed = split.sample
        starts = starts[sample_index(len(starts), size, seed)]
    return starts


def windows(ids: np.ndarray, starts: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of shape (windows, length): targets are the inputs shifted by one."""
    index = starts[:, None] + np.arange(length)[None, :]
    return ids[index], ids[index + 1]


def epoch_starts(n_tokens: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """One training epoch's window starts: a random offset, then the windows in random order."""
    count = training_window_count(n_tokens, length)
    offset = int(rng.integers(0, n_tokens - 1 - count * length + 1))
    return offset + rng.permutation(count) * length


def window_dataset(
    split: TokenSplit, length: int, batch_size: int, *, shuffle_seed: int | None
) -> tf.data.Dataset:
    """A ``tf.data`` pipeline of (inputs, targets) int32 batches of shape (batch, length)."""
    import tensorflow as tf

    rng = np.random.default_rng(shuffle_seed)
    fixed = window_starts(split, length)
    count = training_window_count(len(split), length) if shuffle_seed is not None else len(fixed)

    def generate() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        starts = epoch_starts(len(split), length, rng) if shuffle_seed is not None else fixed
        for first in range(0, len(starts), batch_size):
            yield windows(split.ids, starts[first : first + batch_size], length)

    spec = tf.TensorSpec(shape=(None, length), dtype=tf.int32)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=(spec, spec))
    return dataset.apply(
        tf.data.experimental.assert_cardinality(-(-count // batch_size))
    ).prefetch(PREFETCH_BATCHES)


# --------------------------------------------------------------------------- model


@cache
def perplexity_class() -> type:
    """The Keras metric ``perplexity``: exp of the mean cross-entropy over every predicted
    token since the last reset. Defined on first use (Keras loads lazily) and registered, so
    a saved model loads back with it."""
    import keras

    @keras.saving.register_keras_serializable(package="lstm_tune")
    class Perplexity(keras.metrics.Metric):  # type: ignore[misc]
        """exp(mean sparse categorical cross-entropy) over all tokens seen."""

        def __init__(
            self, name: str = "perplexity", from_logits: bool = True, **kwargs: Any
        ) -> None:
            super().__init__(name=name, **kwargs)
            self.from_logits = from_logits
            self.total = self.add_variable(shape=(), initializer="zeros", name="total")
            self.count = self.add_variable(shape=(), initializer="zeros", name="count")

        def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
            nats = keras.losses.sparse_categorical_crossentropy(
                y_true, y_pred, from_logits=self.from_logits
            )
            self.total.assign_add(keras.ops.sum(keras.ops.cast(nats, "float32")))
            self.count.assign_add(keras.ops.cast(keras.ops.size(nats), "float32"))

        def result(self) -> Any:
            return keras.ops.exp(self.total / keras.ops.maximum(self.count, 1.0))

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "from_logits": self.from_logits}

    return Perplexity


def __getattr__(name: str) -> Any:
    # ``from lstm_tune.tasks.language_model import Perplexity`` defines (and registers) it.
    if name == "Perplexity":
        return perplexity_class()
    raise AttributeError(name)


def embedding_size(params: Params) -> int:
    """The embedding's width: the config's ``embedding_size``, else ``hidden_size``."""
    return int(params.get("embedding_size", params["hidden_size"]))


def build_language_model(params: Params, vocab_size: int) -> keras.Model:
    """Embedding (width ``embedding_size``, default ``hidden_size``) → LSTM stack → Dense
    logits; compiled with sparse cross-entropy from logits, the ``perplexity`` metric and Adam
    with gradients clipped to a global norm of ``clipnorm`` (default 1.0)."""
    import keras

    from lstm_tune.training.lstm_stack import JIT_COMPILE, lstm_stack, optimizer

    layers: list[keras.layers.Layer] = [
        keras.Input(shape=(None,), dtype="int32"),
        keras.layers.Embedding(vocab_size, embedding_size(params)),
        *lstm_stack(params, return_sequences=True),
        keras.layers.Dense(vocab_size),
    ]
    model = keras.Sequential(layers, name="lstm_language_model")
    model.compile(
        optimizer=optimizer(params, clipnorm=GRADIENT_CLIP_NORM),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[perplexity_class()()],
        jit_compile=JIT_COMPILE,
    )
    return model


def parameter_count(params: Params, vocab_size: int) -> int:
    """Weights of :func:`build_language_model`: embedding, LSTM stack, output layer."""
    hidden, width = int(params["hidden_size"]), embedding_size(params)
    return (
        vocab_size * width
        + preflight.lstm_parameter_count(params, input_width=width)
        + hidden * vocab_size
        + vocab_size
    )


# --------------------------------------------------------------------------- metrics


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log of the softmax over the last axis, in float64."""
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropy(model: keras.Model, split: TokenSplit, params: Params) -> float:
    """Mean cross-entropy (nats per token) of ``model`` over every token ``split``'s windows
    predict: what Keras's ``val_loss`` and ``log(val_perplexity)`` average."""
    length, batch = int(params["sequence_length"]), int(params["batch_size"])
    starts = window_starts(split, length)
    total, count = 0.0, 0
    for first in range(0, len(starts), batch):
        inputs, targets = windows(split.ids, starts[first : first + batch], length)
        logp = log_softmax(np.asarray(model.predict_on_batch(inputs)))
        total -= float(np.take_along_axis(logp, targets[..., None], axis=-1).sum())
        count += targets.size
    return total / count


def per_token_scores(nats: float, level: str) -> dict[str, float]:
    """Cross-entropy (nats per token), perplexity and, for characters, bits per character."""
    scores = {"cross_entropy": nats, "perplexity": math.exp(nats)}
    if level == "char":
        scores["bits_per_char"] = nats / math.log(2)
    return scores


def unigram_probabilities(fit_ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Each token's frequency in the training split, add-one smoothed (the out-of-vocabulary
    id, and any token the training split lacks, keep a non-zero probability)."""
    counts = np.bincount(fit_ids, minlength=vocab_size).astype(np.float64)
    return (counts + 1.0) / (counts.sum() + vocab_size)


def unigram_cross_entropy(probabilities: np.ndarray, ids: np.ndarray, length: int) -> float:
    """Mean cross-entropy of the unigram model over the tokens the model's windows predict."""
    targets = ids[1 : 1 + predicted_count(len(ids), length)]
    return float(-np.log(probabilities[targets]).mean())


# --------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class _Weights:
    embedding: np.ndarray
    lstms: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    dense: tuple[np.ndarray, np.ndarray]


def _weights(model: keras.Model) -> _Weights:
    import keras

    embedding = next(x for x in model.layers if isinstance(x, keras.layers.Embedding))
    lstms = [x for x in model.layers if isinstance(x, keras.layers.LSTM)]
    dense = next(x for x in model.layers if isinstance(x, keras.layers.Dense))
    return _Weights(
        embedding.get_weights()[0],
        [tuple(layer.get_weights()) for layer in lstms],  # type: ignore[misc]
        tuple(dense.get_weights()),  # type: ignore[arg-type]
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class StepModel:
    """The trained model run one token at a time in numpy (Keras's LSTM equations, gates in
    the order input, forget, cell, output), so sampling costs one step per token instead of
    a pass over the whole context."""

    def __init__(self, model: keras.Model, batch: int) -> None:
        self.weights = _weights(model)
        hidden = self.weights.lstms[0][1].shape[0]
        self.state = [
            (np.zeros((batch, hidden)), np.zeros((batch, hidden))) for _ in self.weights.lstms
        ]

    def step(self, ids: np.ndarray) -> np.ndarray:
        """Feed one token per row; return the logits of the next token, shape (batch, vocab)."""
        x = self.weights.embedding[ids].astype(np.float64)
        for index, (kernel, recurrent, bias) in enumerate(self.weights.lstms):
            h, c = self.state[index]
            z = x @ kernel + h @ recurrent + bias
            i, f, g, o = np.split(z, 4, axis=-1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            self.state[index] = (h, c)
            x = h
        kernel, bias = self.weights.dense
        return np.asarray(x @ kernel + bias)


def generate_samples(
    model: keras.Model, prepared: Prepared, count: int, *, seed: int
) -> list[dict[str, Any]]:
    """``count`` continuations of prompts drawn (seeded) from the test split, sampled at
    :data:`SAMPLE_TEMPERATURE` among the vocabulary's tokens (never the out-of-vocabulary
    id); JSON-ready dicts of prompt, text, temperature and seed."""
    level, vocabulary = prepared.meta["level"], prepared.meta["vocabulary"]
    ids = prepared.test.ids
    prompt_length = min(SAMPLE_PROMPT_TOKENS[level], len(ids))
    rng = np.random.default_rng(seed)
    firsts = rng.integers(0, len(ids) - prompt_length + 1, size=count)
    prompts = np.stack([ids[f : f + prompt_length] for f in firsts])
    stepper = StepModel(model, count)
    for position in range(prompt_length):
        logits = stepper.step(prompts[:, position])
    written: list[list[int]] = [[] for _ in range(count)]
    for _ in range(SAMPLE_TOKENS[level]):
        logits[:, 0] = -np.inf  # the out-of-vocabulary id stands for no text to show
        probabilities = np.exp(log_softmax(logits / SAMPLE_TEMPERATURE))
        chosen = np.array([rng.choice(len(p), p=p / p.sum()) for p in probabilities])
        for row, token in enumerate(chosen):
            written[row].append(int(token))
        logits = stepper.step(chosen)
    separator = "" if level == "char" else " "
    return [
        {
            "prompt": detokenize([vocabulary[i] for i in prompt], level) + separator,
            "text": detokenize([vocabulary[i] for i in tokens], level),
            "temperature": SAMPLE_TEMPERATURE,
            "seed": seed,
        }
        for prompt, tokens in zip(prompts, written, strict=True)
    ]


def continue_ids(
    model: keras.Model,
    prompt: np.ndarray,
    length: int,
    temperature: float,
    rng: np.random.Generator,
) -> list[int]:
    """``length`` token ids sampled after ``prompt`` at ``temperature`` (never the
    out-of-vocabulary id, which stands for no text)."""
    stepper = StepModel(model, 1)
    for token in prompt:
        logits = stepper.step(np.array([token]))
    written: list[int] = []
    for _ in range(length):
        logits[:, 0] = -np.inf
        probabilities = np.exp(log_softmax(logits / temperature))[0]
        token = int(rng.choice(len(probabilities), p=probabilities / probabilities.sum()))
        written.append(token)
        logits = stepper.step(np.array([token]))
    return written


# --------------------------------------------------------------------------- report


def _test_metrics(metrics: Mapping[str, Any]) -> tuple[Figure, ...]:
    """The scores table (test, unigram baseline, validation), the counts, a warning."""
    baseline, validation, unit = metrics["baseline"], metrics["validation"], metrics["level"]
    test = "validation split (no test_split)" if metrics["test_is_validation"] else "test split"
    rows = [(f"cross-entropy (nats per {unit})", "cross_entropy"), ("perplexity", "perplexity")]
    if "bits_per_char" in metrics:
        rows.append(("bits per character", "bits_per_char"))
    columns = (
        f"model, {test}",
        f"baseline: {baseline['name']} ({baseline['predicts']})",
        "model, validation split",
    )
    return (
        Table(
            columns,
            tuple(Row(label, (metrics[k], baseline[k], validation[k])) for label, k in rows),
        ),
        Text(
            "{} {}s predicted; vocabulary {} (one id for every token outside it).",
            (metrics["predicted_tokens"], unit, metrics["vocab_size"]),
        ),
        *baseline_warning(metrics, "unigram baseline", "cross-entropy"),
    )


def _summary(metrics: Mapping[str, Any]) -> tuple[Text, ...]:
    """The test, baseline and validation scores as lines."""
    unit = metrics["level"]
    where = "validation split (no test_split)" if metrics["test_is_validation"] else "split"
    counts = (metrics["predicted_tokens"], unit, metrics["vocab_size"], metrics.get("epochs"))
    return (
        _joined(
            Text("Test {}: ", (where,)),
            _scores(metrics, unit),
            Text("   ({} {}s predicted, vocabulary {}, {} epochs)", counts),
        ),
        _joined(
            Text("Unigram baseline ({}): ", (metrics["baseline"]["predicts"],)),
            _scores(metrics["baseline"], unit),
        ),
        _joined(Text("Validation: "), _scores(metrics["validation"], unit)),
    )


def _scores(scores: Mapping[str, Any], unit: str) -> Text:
    """Cross-entropy, perplexity and (characters) bits per character, on one line."""
    text = Text(
        "cross-entropy {} nats/{}   perplexity {:.3f}",
        (scores["cross_entropy"], unit, scores["perplexity"]),
    )
    if "bits_per_char" in scores:
        text = _joined(text, Text("   bits/char {}", (scores["bits_per_char"],)))
    return text


def _joined(*texts: Text) -> Text:
    """One sentence of ``texts`` one after the other."""
    return Text("".join(t.template for t in texts), tuple(v for t in texts for v in t.values))


register(LanguageModel())
