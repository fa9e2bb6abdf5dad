"""The pre-flight estimate: exact weight counts, growth with shape, refusal with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from lstm_tune.model import build_model
from lstm_tune.preflight import (
    ConfigTooLarge,
    available_memory_bytes,
    check_fits,
    estimate_memory,
    parameter_count,
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
    assert parameter_count(params, 300) == build_model(params, 300).count_params()


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
        check_fits(huge, 10000, available=8 * 2**30)
    assert check_fits(SMALL, 1000, available=8 * 2**30).total < 8 * 2**30
    assert check_fits(huge, 10000, available=None).total > 8 * 2**30  # unknown: no refusal


def test_available_memory_is_read_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       1000 kB\nMemAvailable:     512 kB\n")
    assert available_memory_bytes(meminfo) == 512 * 1024
    assert available_memory_bytes(tmp_path / "missing") is None
    real = available_memory_bytes()
    assert real is None or real > 0
