"""A study's largest config and the worker memory `lstm-tune estimate` derives from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lstm_tune.cli import main
from lstm_tune.config import Choice, Fixed, FloatRange, IntRange, load_spec, parse_spec
from lstm_tune.runtime.sizing import ROUND_MIB, largest_configs, largest_value, study_size
from lstm_tune.tasks import get_task
from lstm_tune.training.preflight import MAX_SHARE_OF_AVAILABLE
from tests.helpers import TINY_SPACE
from tests.helpers.studies import StudyFile


def test_largest_value_of_each_kind_of_range() -> None:
    assert largest_value(IntRange(low=100, high=500, step=50)) == 500
    assert largest_value(IntRange(low=40, high=70, step=20)) == 60  # the top of the step grid
    assert largest_value(IntRange(low=32, high=512, log=True)) == 512
    assert largest_value(FloatRange(low=0.0, high=0.5)) == 0.5
    assert largest_value(Choice(choices=(64, 128, 32))) == 128
    assert largest_value(Fixed(value=3)) == 3


def test_enqueued_configs_are_sized_too() -> None:
    spec = parse_spec(
        {
            "name": "s",
            "space": {**TINY_SPACE, "sequence_length": {"low": 40, "high": 70, "step": 20}},
            "search": {"enqueue": [{"sequence_length": 400}, {"hidden_size": 4}]},
        }
    )
    corner, bigger, smaller = largest_configs(spec)
    assert corner == {
        "hidden_size": 8, "num_layers": 1, "learning_rate": 1e-2, "dropout_rate": 0.2,
        "sequence_length": 60, "batch_size": 16,
    }  # fmt: skip
    assert bigger == {**corner, "sequence_length": 400}
    assert smaller == {**corner, "hidden_size": 4}


def test_estimate_command_prints_the_largest_configs_memory(
    imdb_slice: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], study_file: StudyFile
) -> None:
    study = study_file(
        name="s",
        data={"path": str(imdb_slice), "max_features": 1000, "cache_dir": str(tmp_path / "cache")},
        search={"enqueue": [{"hidden_size": 64, "batch_size": 32}]},
        # A queued value must be one of a choice's values; a range's it may leave.
        space={**TINY_SPACE, "batch_size": {"choices": [16, 32]}},
    )
    assert main(["estimate", str(study)]) == 0
    out = capsys.readouterr().out
    spec = load_spec(study)
    size = study_size(spec, get_task(spec.task).load(spec.data, spec.seed))
    # The queued config (hidden 64, outside the range) outweighs the space's corner (hidden 8).
    assert dict(size.params)["hidden_size"] == 64 and dict(size.params)["batch_size"] == 32
    assert "largest config: hidden_size=64 num_layers=1" in out
    assert f"estimated peak memory: {size.estimate_mib:,.0f} MiB" in out
    assert f"request {size.request_mib}Mi, limit {size.limit_mib}Mi" in out
    assert size.request_mib % ROUND_MIB == 0 and size.request_mib >= size.estimate_mib
    assert size.limit_mib * MAX_SHARE_OF_AVAILABLE >= size.estimate_mib
    assert size.limit_mib - ROUND_MIB < size.estimate_mib / MAX_SHARE_OF_AVAILABLE


def test_estimate_command_names_a_bad_study_file(
    capsys: pytest.CaptureFixture[str], study_file: StudyFile
) -> None:
    study = study_file(name="bad", space={**TINY_SPACE, "hidden_size": {"low": 64, "high": 16}})
    assert main(["estimate", str(study)]) == 2
    assert "bad.yaml: space" in capsys.readouterr().err
