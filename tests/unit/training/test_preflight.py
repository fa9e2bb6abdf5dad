"""The pre-flight estimate: exact weight counts, growth with shape, refusal with a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lstm_tune.tasks.text_classification.task import build_classifier, parameter_count
from lstm_tune.training.preflight import (
    ConfigTooLarge,
    available_memory_bytes,
    check_fits,
    estimate_epoch_seconds,
    forward_lengths,
    lstm_steps,
    time_warning,
)
from lstm_tune.training.preflight import estimate_memory as _estimate_memory
from lstm_tune.types import MemoryEstimate


def estimate_memory(params: dict, vocab_size: int) -> MemoryEstimate:  # type: ignore[type-arg]
    """The text classifier's estimate, as the task makes it."""
    return _estimate_memory(
        params, weights=parameter_count(params, vocab_size), input_width=params["hidden_size"]
    )


SMALL = {
    "hidden_size": 16,
    "num_layers": 2,
    "learning_rate": 1e-3,
    "dropout_rate": 0.1,
    "sequence_length": 100,
    "batch_size": 32,
}


@pytest.mark.parametrize("hidden, layers", [(16, 1), (16, 2), (40, 3)])
def test_parameter_count_matches_the_built_model(hidden: int, layers: int) -> None:
    params = {**SMALL, "hidden_size": hidden, "num_layers": layers}
    assert parameter_count(params, 300) == build_classifier(params, 300).count_params()


def test_estimate_grows_with_every_dimension_of_the_shape() -> None:
    base = estimate_memory(SMALL, 1000).total
    for name, bigger in [
        ("hidden_size", 32),
        ("num_layers", 3),
        ("sequence_length", 200),
        ("batch_size", 64),
    ]:
        assert estimate_memory({**SMALL, name: bigger}, 1000).total > base, name
    double = estimate_memory({**SMALL, "batch_size": 64}, 1000)
    single = estimate_memory(SMALL, 1000)
    assert double.activations == 2 * single.activations


def test_a_config_too_large_for_the_memory_available_is_refused_with_its_shape() -> None:
    huge = {
        **SMALL,
        "hidden_size": 2048,
        "num_layers": 3,
        "sequence_length": 2000,
        "batch_size": 512,
    }
    with pytest.raises(
        ConfigTooLarge,
        match=r"estimated peak memory .* GiB \(hidden_size=2048, "
        r"num_layers=3, sequence_length=2000, batch_size=512\) exceeds 80% of "
        r"the 8\.0 GiB available",
    ):
        check_fits(estimate_memory(huge, 10000), huge, available=8 * 2**30)
    assert check_fits(estimate_memory(SMALL, 1000), SMALL, available=8 * 2**30).total < 8 * 2**30
    assert (
        check_fits(estimate_memory(huge, 10000), huge, available=None).total > 8 * 2**30
    )  # unknown: no refusal


def test_available_memory_is_read_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       1000 kB\nMemAvailable:     512 kB\n")
    assert available_memory_bytes(meminfo) == 512 * 1024
    assert available_memory_bytes(tmp_path / "missing") is None
    real = available_memory_bytes()
    assert real is None or real > 0


def test_lstm_steps_sum_the_longest_review_of_each_length_sorted_batch() -> None:
    lengths = np.array([5, 1, 9, 3, 7])
    # sorted 1 3 | 5 7 | 9 -> 3 + 7 + 9
    assert lstm_steps(lengths, 2) == 19
    assert lstm_steps(lengths, 5) == 9
    assert lstm_steps(lengths, 1) == 25
    assert lstm_steps(np.array([], dtype=int), 4) == 0


def test_forward_lengths_add_one_sample_per_checkpoint() -> None:
    val = np.arange(1, 11)
    assert list(forward_lengths(val, 100, None, 3)) == list(val)
    with_checkpoints = forward_lengths(val, 100, 40, 3)  # 2 checkpoints of 3 reviews
    assert list(with_checkpoints) == [*val, 1, 2, 3, 1, 2, 3]


def test_epoch_estimate_grows_with_every_dimension_of_the_work() -> None:
    rng = np.random.default_rng(0)
    train, forward = rng.integers(10, 600, 2000), rng.integers(10, 600, 500)
    base = {**SMALL, "hidden_size": 64, "sequence_length": 300}
    seconds = estimate_epoch_seconds(base, train, forward)
    assert seconds > 0
    for key, bigger in (("hidden_size", 256), ("num_layers", 3), ("sequence_length", 500)):
        assert estimate_epoch_seconds({**base, key: bigger}, train, forward) > seconds, key
    # Larger batches mean fewer steps, each doing more work: cheaper per review when the
    # per-step overhead dominates (small hidden sizes), as measured.
    assert estimate_epoch_seconds({**base, "batch_size": 128}, train, forward) < seconds
    # Twice the reviews, about twice the time (a little less: with more reviews to sort,
    # each batch's reviews are closer in length, so less padding).
    doubled = estimate_epoch_seconds(base, np.tile(train, 2), np.tile(forward, 2))
    assert 1.9 * seconds < doubled <= 2 * seconds


def test_a_trial_longer_than_the_timeout_is_warned_about() -> None:
    assert time_warning(60.0, 5, None) is None
    assert time_warning(60.0, 5, 301.0) is None
    warning = time_warning(60.0, 5, 120.0)
    assert warning is not None and "5 min" in warning and "2 min" in warning
