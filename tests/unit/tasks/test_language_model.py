"""Language modelling on real text: slices of Tiny Shakespeare.

The split and vocabulary, the unigram baseline by hand, the metric Keras logs against the
task's own scoring, the sampler against Keras, a saved model loading back, bad input (one
line, exit 2, nothing written), and the whole path a user takes: search (with a pruned trial,
minimising) → export-best → train → report.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from lstm_tune.cli import main
from lstm_tune.config import load_spec
from lstm_tune.errors import DataError
from lstm_tune.tasks import get_task
from lstm_tune.tasks.language_model import (
    WORD_PATTERN,
    LanguageModelData,
    StepModel,
    TokenSplit,
)
from lstm_tune.training.fit import fit
from lstm_tune.types import Prepared
from tests.helpers import ROOT, require_or_skip
from tests.helpers.studies import StudyFile, write_study

SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
TASK = get_task("language_model")
TINY = {
    "hidden_size": 16,
    "num_layers": 1,
    "learning_rate": 0.01,
    "dropout_rate": 0.0,
    "sequence_length": 32,
    "batch_size": 32,
}


@pytest.fixture(scope="module")
def shakespeare() -> str:
    """The whole of Tiny Shakespeare."""
    if not SHAKESPEARE.exists():
        require_or_skip(f"Tiny Shakespeare is not at {SHAKESPEARE}")
    return SHAKESPEARE.read_text(encoding="utf-8")


def _write(tmp: Path, text: str, name: str = "slice.txt") -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def _load(path: Path, **data: Any) -> Prepared:
    return TASK.load(LanguageModelData(path=str(path), **data), 5)


def _decode(split: TokenSplit, prepared: Prepared) -> list[str]:
    return [prepared.meta["vocabulary"][i] for i in split.ids]


# --------------------------------------------------------------------------- split, vocabulary


def test_char_split_is_contiguous_and_the_vocabulary_comes_from_training_text_only(
    shakespeare: str, tmp_path: Path
) -> None:
    # '@', '#' and '~' never occur in Tiny Shakespeare: put '#' in the test split's share and
    # '@~' at the end (the validation split); neither may enter the vocabulary.
    text = shakespeare[:9000] + "#" + shakespeare[9000:10000] + "@~" + shakespeare[10000:11000]
    prepared = _load(_write(tmp_path, text), test_split=0.2)
    n = len(text)
    n_val, n_test = round(0.1 * n), round(0.2 * n)
    assert (len(prepared.fit), len(prepared.test), len(prepared.validation)) == (
        n - n_val - n_test,
        n_test,
        n_val,
    )
    assert prepared.meta["test_is_validation"] is False
    vocabulary = prepared.meta["vocabulary"]
    fit_text = text[: n - n_val - n_test]
    assert vocabulary[0] == "<unk>" and set(vocabulary[1:]) == set(fit_text)
    assert not {"#", "@", "~"} & set(vocabulary)
    # Concatenated in order, the splits are the text: nothing skipped, nothing overlapping.
    decoded = "".join(
        "".join(_decode(split, prepared))
        for split in (prepared.fit, prepared.test, prepared.validation)
    )
    assert decoded == "".join(c if c in fit_text else "<unk>" for c in text)
    assert "".join(_decode(prepared.validation, prepared)).endswith(shakespeare[10500:11000])


def test_without_test_split_the_last_tenth_validates_and_train_reports_on_it(
    shakespeare: str, tmp_path: Path
) -> None:
    prepared = _load(_write(tmp_path, shakespeare[:5000]))
    assert (len(prepared.fit), len(prepared.validation)) == (4500, 500)
    assert prepared.test is prepared.validation and prepared.meta["test_is_validation"]


def test_word_vocabulary_is_the_most_frequent_training_words_and_the_rest_is_one_token(
    shakespeare: str, tmp_path: Path
) -> None:
    text = shakespeare[:20000] + " zyzzyva " + shakespeare[20000:21000]
    prepared = _load(_write(tmp_path, text), level="word", max_features=50)
    tokens = WORD_PATTERN.findall(text)
    n_val = round(0.1 * len(tokens))
    counts = Counter(tokens[: len(tokens) - n_val])
    vocabulary = prepared.meta["vocabulary"]
    assert len(vocabulary) == 51 and prepared.meta["vocab_size"] == 51
    kept = set(vocabulary[1:])
    assert min(counts[w] for w in kept) >= max(c for w, c in counts.items() if w not in kept)
    assert "\n" in kept  # line breaks are tokens
    assert "zyzzyva" in tokens[len(tokens) - n_val :] and "zyzzyva" not in vocabulary
    expected = [vocabulary.index(t) if t in kept else 0 for t in tokens[len(tokens) - n_val :]]
    assert prepared.validation.ids.tolist() == expected
    assert 0 in prepared.fit.ids.tolist()  # rarer training words share the OOV id

    model = TASK.build({**TINY, "sequence_length": 8}, prepared)
    metrics = TASK.evaluate(model, prepared, {**TINY, "sequence_length": 8})
    assert "bits_per_char" not in metrics and metrics["level"] == "word"
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["cross_entropy"]))
    assert len(metrics["samples"]) == 3 and all(s["text"] for s in metrics["samples"])


# --------------------------------------------------------------------------- a trained model


@pytest.fixture(scope="module")
def trained(shakespeare: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny character model trained 2 epochs on 20,000 characters, and its recorder."""
    path = _write(tmp_path_factory.mktemp("lm"), shakespeare[:20000])
    prepared = _load(path, test_split=0.1)
    keras.utils.set_random_seed(1)
    model = TASK.build(TINY, prepared)
    recorder = fit(
        model,
        TASK.batches(prepared.fit, TINY, shuffle_seed=1),
        TASK.batches(prepared.validation, TINY, shuffle_seed=None),
        objective=TASK.objective("val_perplexity"),
        epochs=2,
    )
    return {
        "text": shakespeare[:20000],
        "prepared": prepared,
        "model": model,
        "recorder": recorder,
        "metrics": TASK.evaluate(model, prepared, TINY),
    }


@pytest.mark.slow
def test_score_equals_what_keras_logs_at_epoch_end(trained: dict[str, Any]) -> None:
    history, model = trained["recorder"].history, trained["model"]
    validation = trained["prepared"].validation
    assert set(history) == {"loss", "perplexity", "val_loss", "val_perplexity"}
    logged_ppl, logged_loss = history["val_perplexity"][-1], history["val_loss"][-1]
    assert TASK.score(model, validation, TINY, "val_perplexity") == pytest.approx(
        logged_ppl, rel=1e-4
    )
    assert TASK.score(model, validation, TINY, "val_loss") == pytest.approx(logged_loss, rel=1e-4)
    # The metric is the exponential of the very loss Keras averages.
    assert logged_ppl == pytest.approx(math.exp(logged_loss), rel=1e-4)
    assert history["val_perplexity"][-1] < history["val_perplexity"][0]  # it learns


@pytest.mark.slow
def test_a_checkpoint_sample_is_a_fixed_subset_of_windows(trained: dict[str, Any]) -> None:
    model, validation = trained["model"], trained["prepared"].validation
    sample = TASK.sample(validation, 10, seed=3)
    again = TASK.score(model, TASK.sample(validation, 10, seed=3), TINY, "val_loss")
    assert TASK.score(model, sample, TINY, "val_loss") == again
    whole = TASK.score(model, validation, TINY, "val_loss")
    assert TASK.score(model, TASK.sample(validation, 10**6, seed=3), TINY, "val_loss") == whole


@pytest.mark.slow
def test_unigram_baseline_equals_a_hand_computation(trained: dict[str, Any]) -> None:
    text, prepared = trained["text"], trained["prepared"]
    fit_text = text[: len(prepared.fit)]
    test_text = text[len(prepared.fit) : len(prepared.fit) + len(prepared.test)]
    vocabulary = prepared.meta["vocabulary"]
    counts = Counter(fit_text)
    total, size = len(fit_text), len(vocabulary)
    # Windows of 32 characters predict characters 1 .. 32 x (number of windows).
    windows = (len(test_text) - 1) // 32
    predicted = test_text[1 : 1 + 32 * windows]
    nats = -sum(math.log((counts[c] + 1) / (total + size)) for c in predicted) / len(predicted)
    baseline = trained["metrics"]["baseline"]
    assert baseline["name"] == "unigram"
    assert baseline["cross_entropy"] == pytest.approx(nats, rel=1e-9)
    assert baseline["perplexity"] == pytest.approx(math.exp(nats), rel=1e-9)
    assert trained["metrics"]["predicted_tokens"] == len(predicted)


@pytest.mark.slow
def test_bits_per_char_is_nats_over_ln_2_and_the_model_beats_the_baseline(
    trained: dict[str, Any],
) -> None:
    metrics = trained["metrics"]
    for scores in (metrics, metrics["baseline"], metrics["validation"]):
        assert scores["bits_per_char"] == pytest.approx(scores["cross_entropy"] / math.log(2))
        assert scores["perplexity"] == pytest.approx(math.exp(scores["cross_entropy"]))
    assert metrics["beats_baseline"] is (
        metrics["cross_entropy"] < metrics["baseline"]["cross_entropy"]
    )
    assert metrics["beats_baseline"]
    assert metrics["validation"]["perplexity"] == pytest.approx(
        trained["recorder"].history["val_perplexity"][-1], rel=1e-4
    )
    json.dumps(metrics)  # JSON-ready


@pytest.mark.slow
def test_samples_follow_the_model_and_repeat_with_the_seed(trained: dict[str, Any]) -> None:
    model, prepared = trained["model"], trained["prepared"]
    prompt = prepared.test.ids[:20]
    stepper = StepModel(model, 1)
    for token in prompt:
        logits = stepper.step(np.array([token]))
    keras_logits = np.asarray(model.predict_on_batch(prompt[None, :]))[0, -1]
    np.testing.assert_allclose(logits[0], keras_logits, atol=1e-4)

    samples = trained["metrics"]["samples"]
    assert len(samples) == 3
    for sample in samples:
        assert len(sample["text"]) == 240 and len(sample["prompt"]) == 40
        assert sample["prompt"] in trained["text"]
        assert sample["temperature"] == 0.8 and sample["seed"] == 5
    assert TASK.evaluate(model, prepared, TINY)["samples"] == samples


@pytest.mark.slow
def test_a_saved_model_loads_back_with_its_perplexity_metric(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    model, validation = trained["model"], trained["prepared"].validation
    model.save(tmp_path / "lm.keras")
    loaded = keras.models.load_model(tmp_path / "lm.keras")
    batches = TASK.batches(validation, TINY, shuffle_seed=None)
    scores = loaded.evaluate(batches, return_dict=True, verbose=0)
    assert scores["perplexity"] == pytest.approx(
        trained["recorder"].history["val_perplexity"][-1], rel=1e-4
    )


@pytest.mark.slow
def test_training_windows_change_offset_and_order_each_epoch(trained: dict[str, Any]) -> None:
    split = trained["prepared"].fit
    batches = TASK.batches(split, TINY, shuffle_seed=1)
    first, second = (np.concatenate([x for x, _ in batches]) for _ in range(2))
    assert first.shape == second.shape and not np.array_equal(first, second)
    for inputs, targets in batches.take(2):
        np.testing.assert_array_equal(inputs.numpy()[:, 1:], targets.numpy()[:, :-1])
    fixed = TASK.batches(trained["prepared"].validation, TINY, shuffle_seed=None)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            (x for x, _ in fixed.as_numpy_iterator()),
            (x for x, _ in fixed.as_numpy_iterator()),
            strict=True,
        )
    )


@pytest.mark.slow
def test_estimates_count_the_logits_and_the_windows(trained: dict[str, Any]) -> None:
    prepared = trained["prepared"]
    small = TASK.estimate(TINY, prepared).memory
    wide = TASK.estimate({**TINY, "batch_size": 64}, prepared).memory
    vocab = prepared.meta["vocab_size"]
    # Doubling the batch doubles the activations, the logits' 3 copies among them.
    assert wide.activations == 2 * small.activations
    assert small.activations > 3 * 4 * 32 * 32 * vocab
    assert TASK.estimate({**TINY, "hidden_size": 64}, prepared, 0, 10).epoch_seconds > (
        TASK.estimate(TINY, prepared, 0, 10).epoch_seconds
    )


# --------------------------------------------------------------------------- bad input


def _study(
    tmp: Path, data: Path, *, space: dict[str, Any] | None = None, **data_keys: Any
) -> Path:
    return write_study(
        tmp,
        name="lm",
        task="language_model",
        seed=5,
        data={"path": str(data), **data_keys},
        training={"epochs": 2},
        search={
            "n_trials": 3,
            "sampler": {"name": "tpe", "options": {"n_startup_trials": 2}},
            "pruner": {"name": "median", "options": {"n_startup_trials": 1, "n_warmup_steps": 0}},
        },
        space=space
        or {
            "hidden_size": {"low": 16, "high": 24},
            "num_layers": 1,
            "learning_rate": {"low": 1e-7, "high": 2e-2, "log": True},
            "dropout_rate": 0.0,
            "sequence_length": {"choices": [32, 64]},
            "batch_size": 32,
        },
    )


@pytest.mark.parametrize(
    ("content", "data_keys", "expected"),
    [
        (b"", {}, r"data\.path: got an empty file \(0 bytes\)"),
        (b"\n  \n", {}, r"data\.path: got an empty file \(4 bytes\)"),
        (b"PK\x03\x04\x00\x00binary", {}, r"data\.path: got a binary file \(NUL byte at 4\)"),
        ("First Citizen:\n".encode("latin-1") + b"caf\xe9\n" * 20, {}, r"not UTF-8 .* byte 18"),
        (b"a" * 500, {}, r"data\.level: got 'char', .* one distinct char \('a'\)"),
        (
            b"the " * 200,
            {"level": "word"},
            r"one distinct word \('the'\); expected a text of at least 2",
        ),
        (b"abc" * 2, {}, r"data\.validation_split: got a validation split of 1 chars"),
        (b"line,other\nsome text,1\n", {"text_column": "text"}, r"data\.text_column: got 'text'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_no_storage(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    data_keys: dict[str, Any],
    expected: str,
) -> None:
    data = tmp_path / "bad.txt"
    data.write_bytes(content)
    db = tmp_path / "bad.db"
    study = _study(tmp_path, data, **data_keys)
    assert main(["search", str(study), "--storage", f"sqlite:///{db}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(data) in lines[0], lines
    assert re.search(expected, lines[0]), lines[0]
    assert not db.exists(), "bad data must not create the study's storage"


@pytest.mark.slow
def test_a_window_longer_than_a_split_stops_train_in_one_line_and_fails_its_trial(
    shakespeare: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], study_file: StudyFile
) -> None:
    data = _write(tmp_path, shakespeare[:3000])  # validation: 300 characters
    params = {**TINY, "sequence_length": 400}
    doc = yaml.safe_load(_study(tmp_path, data).read_text())
    doc.pop("space")
    config = study_file(filename="one.yaml", **doc, params=params)
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert re.search(
        r"slice\.txt: sequence_length: got 400; expected at most 299: the validation split "
        r"holds 300 chars",
        lines[0],
    ), lines[0]
    assert not (tmp_path / "run" / "metrics.json").exists()
    # In a search the window is known only once a trial draws it: that trial fails with the
    # reason (a ConfigTooLarge, as in forecasting) and the search goes on with the next one.
    fitting = {**params, "sequence_length": 32}
    study = _study(tmp_path, data, space={**params, "sequence_length": {"choices": [32, 400]}})
    doc = yaml.safe_load(study.read_text())
    doc["search"] = {"n_trials": 2, "enqueue": [params, fitting, fitting]}
    study = study_file(**doc)
    storage = f"sqlite:///{tmp_path / 'w.db'}"
    assert main(["search", str(study), "--storage", storage]) == 0
    trials = optuna.load_study(study_name="lm", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert "sequence_length: got 400; expected at most 299" in trials[0].user_attrs["fail_reason"]


def test_the_data_section_is_checked_by_its_pydantic_model() -> None:
    with pytest.raises(ValueError, match="leaves under 20% to train on"):
        LanguageModelData(path="x.txt", validation_split=0.45, test_split=0.45)
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        LanguageModelData(path="x.txt", columns="text")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="path\n  Field required"):
        LanguageModelData()  # type: ignore[call-arg]
    with pytest.raises(DataError, match=r"nowhere\.txt: data\.path: got no such file"):
        TASK.load(LanguageModelData(path="nowhere.txt"), 0)


# --------------------------------------------------------------------------- end to end

GOOD = {**TINY, "hidden_size": 24, "learning_rate": 0.01, "sequence_length": 64}
# Learning rate 1e-7 leaves the model at its initial, near-uniform guess: its validation
# perplexity after one epoch is far above the good trial's, so the median pruner stops it.
HOPELESS = {**GOOD, "learning_rate": 1e-7}


@pytest.mark.slow
def test_search_export_train_report_on_a_slice_of_tiny_shakespeare(
    shakespeare: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write(tmp_path, shakespeare[:30000])
    study_file = _study(tmp_path, data, test_split=0.1)
    doc = yaml.safe_load(study_file.read_text())
    doc["search"]["enqueue"] = [GOOD, HOPELESS]
    study_file = write_study(tmp_path, **doc)
    storage = f"sqlite:///{tmp_path / 'lm.db'}"
    assert main(["search", str(study_file), "--storage", storage]) == 0
    study = optuna.load_study(study_name="lm", storage=storage)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.metric_names == ["val_perplexity"]
    states = [t.state for t in study.trials]
    assert len(states) == 3 and states[:2] == [TrialState.COMPLETE, TrialState.PRUNED]
    complete = study.trials[0]
    assert complete.value == min(complete.user_attrs["val_perplexity_per_epoch"])
    assert len(study.trials[1].intermediate_values) == 1  # stopped after its first epoch
    assert "best: trial" in capsys.readouterr().out

    best_yaml = tmp_path / "best.yaml"
    assert (
        main(["export-best", "--study-name", "lm", "--storage", storage, "-o", str(best_yaml)])
        == 0
    )
    exported = load_spec(best_yaml)
    assert exported.task == "language_model" and exported.data.test_split == 0.1
    assert exported.result is not None and exported.result.value == study.best_value

    out = tmp_path / "run"
    assert main(["train", str(best_yaml), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Unigram baseline" in printed and "bits/char" in printed and "--- sample" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "language_model" and metrics["metric"] == "val_perplexity"
    for scores in (metrics, metrics["baseline"], metrics["validation"]):
        for key in ("cross_entropy", "perplexity", "bits_per_char"):
            assert isinstance(scores[key], float), key
    assert metrics["beats_baseline"] == (
        metrics["cross_entropy"] < metrics["baseline"]["cross_entropy"]
    )
    assert metrics["epochs"] == exported.result.best_epoch
    assert metrics["train_size"] == 24000 and metrics["test_size"] == 3000
    assert metrics["validation"]["perplexity"] == pytest.approx(
        metrics["validation_per_epoch"][-1], rel=1e-4
    )
    assert len(metrics["samples"]) == 3
    assert keras.models.load_model(out / "model.keras").count_params() == metrics["param_count"]

    report = tmp_path / "report.html"
    args = ["report", "--study-name", "lm", "--storage", storage, "--metrics"]
    assert main([*args, str(out / "metrics.json"), "-o", str(report)]) == 0
    html = report.read_text()
    assert 'id="test-metrics"' in html and 'id="samples"' in html
    assert "baseline: unigram" in html and "val_perplexity" in html
    assert metrics["samples"][0]["text"][:20].replace("&", "&amp;").replace("'", "&#x27;") in html
