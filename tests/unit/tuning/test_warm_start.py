"""Warm start: a new study queues the earlier study's best configs that fit its space, once."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from lstm_tune.cli import main
from lstm_tune.config import FloatRange, IntRange, StudySpec, parse_spec
from lstm_tune.tuning.studies import open_study
from lstm_tune.tuning.warm_start import WARM_START_ATTR, completed_config
from tests.helpers.studies import StudyFile

SIX = {
    "hidden_size": 8,
    "num_layers": 1,
    "learning_rate": 0.01,
    "dropout_rate": 0.0,
    "sequence_length": 40,
    "batch_size": 16,
}
# The earlier study's space.
EARLIER = {
    "hidden_size": IntDistribution(4, 128),
    "num_layers": IntDistribution(1, 3),
    "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
    "dropout_rate": FloatDistribution(0.0, 0.5),
    "sequence_length": IntDistribution(20, 100),
    "batch_size": IntDistribution(8, 64),
}
# This study's space: hidden_size up to 32 only.
SPACE = {
    **SIX,
    "hidden_size": {"low": 4, "high": 32},
    "learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
}


def _earlier(storage: str) -> dict[str, int]:
    """An earlier study minimising val_loss: its complete trials by value, a pruned one with
    the best value of all, a failed one and a repeat of the best config. Returns the trial
    numbers by name."""
    study = optuna.create_study(storage=storage, study_name="old", direction="minimize")
    trials = {
        "second": ({**SIX, "hidden_size": 16}, 0.30, TrialState.COMPLETE),
        "outside": ({**SIX, "hidden_size": 64}, 0.20, TrialState.COMPLETE),
        "best": ({**SIX, "learning_rate": 0.003}, 0.10, TrialState.COMPLETE),
        "pruned": ({**SIX, "hidden_size": 12}, 0.05, TrialState.PRUNED),
        "repeat": ({**SIX, "learning_rate": 0.003}, 0.11, TrialState.COMPLETE),
        "fourth": ({**SIX, "hidden_size": 24}, 0.40, TrialState.COMPLETE),
        "last": ({**SIX, "hidden_size": 28}, 0.50, TrialState.COMPLETE),
    }
    numbers = {}
    for name, (params, value, state) in trials.items():
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=EARLIER,
                value=value if state == TrialState.COMPLETE else None,
                intermediate_values={0: value},
                state=state,
            )
        )
        numbers[name] = len(study.trials) - 1
    return numbers


def _spec(warm: dict[str, Any]) -> StudySpec:
    return parse_spec({"name": "new", "search": {"warm_start": warm}, "space": SPACE}, "new.yaml")


def test_a_warm_start_queues_the_earlier_top_configs_that_fit_and_skips_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    numbers = _earlier(storage)
    with caplog.at_level(logging.WARNING, logger="lstm_tune.tuning.warm_start"):
        study = open_study(
            _spec({"study": "old", "top": 4}), storage_url=storage, study_name="new"
        )
    # The four best distinct complete configs, best (lowest) first: best, outside, second,
    # fourth. The one outside this space is skipped with one line.
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs[WARM_START_ATTR] for t in waiting] == [
        f"old trial {numbers[name]}" for name in ("best", "second", "fourth")
    ]
    assert [t.params if t.params else t.system_attrs["fixed_params"] for t in waiting] == [
        {**SIX, "learning_rate": 0.003},
        {**SIX, "hidden_size": 16},
        {**SIX, "hidden_size": 24},
    ]
    lines = [r.getMessage() for r in caplog.records if r.name == "lstm_tune.tuning.warm_start"]
    assert lines == [
        f"warm start: skipped old trial {numbers['outside']}: hidden_size=64 is outside "
        f"this study's space"
    ]
    # Opened again (another worker, a resume): nothing is queued twice.
    again = open_study(_spec({"study": "old", "top": 4}), storage_url=storage, study_name="new")
    assert len(again.get_trials(states=(TrialState.WAITING,))) == 3


def test_the_earlier_study_may_live_in_another_storage(tmp_path: Path) -> None:
    earlier = f"sqlite:///{tmp_path / 'old.db'}"
    _earlier(earlier)
    storage = f"sqlite:///{tmp_path / 'new.db'}"
    spec = _spec({"study": "old", "storage": earlier, "top": 1})
    study = open_study(spec, storage_url=storage, study_name="new")
    (queued,) = study.get_trials(states=(TrialState.WAITING,))
    assert queued.system_attrs["fixed_params"]["learning_rate"] == 0.003


def test_search_warm_start_from_names_the_study_in_the_same_storage(
    tmp_path: Path, study_file: StudyFile, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    _earlier(storage)
    path = study_file(name="new", space=SPACE)
    args = ["create-study", str(path), "--storage", storage, "--warm-start-from", "old"]
    assert main(args) == 0
    study = optuna.load_study(study_name="new", storage=storage)
    # top defaults to 5: the five best distinct configs less the one outside the space.
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 4
    assert main([*args[:-1], "missing"]) == 0  # the study exists: no warm start is read again
    assert (
        main(
            [
                "create-study",
                str(path),
                "--storage",
                storage,
                "--study-name",
                "other",
                "--warm-start-from",
                "missing",
            ]
        )
        == 2
    )
    assert "no study named 'missing'" in capsys.readouterr().err


def test_a_knob_the_earlier_study_lacked_takes_its_default_or_is_left_to_the_sampler() -> None:
    # Knobs added after the earlier study ran, as a later space may list them.
    space = {
        **_spec({"study": "old"}).space,
        "weight_decay": FloatRange(low=0.0, high=0.1),  # default 0.0, inside: filled
        "clipnorm": FloatRange(low=0.5, high=2.0),  # no default: sampled
        "embedding_size": IntRange(low=4, high=64),  # default hidden_size: filled
        "warmup": FloatRange(low=0.1, high=0.2),  # default 0.0, outside: sampled
    }
    defaults = {"weight_decay": 0.0, "embedding_size": lambda c: c["hidden_size"], "warmup": 0.0}
    config, why = completed_config(space, {**SIX, "hidden_size": 16}, defaults)
    assert why == "" and config == {
        **SIX,
        "hidden_size": 16,
        "weight_decay": 0.0,
        "embedding_size": 16,
    }
    # A knob the earlier config had and this study does not search: kept only at its default.
    kept, _ = completed_config(space, {**SIX, "pooling_id": 0}, {"pooling_id": 0})
    assert kept is not None and "pooling_id" not in kept
    skipped, why = completed_config(space, {**SIX, "pooling_id": 2}, {"pooling_id": 0})
    assert skipped is None and why == "pooling_id=2, and this study does not search pooling_id"


def test_a_six_knob_config_fills_the_wide_knobs_with_the_values_that_build_todays_model() -> None:
    space = parse_spec(
        {
            "name": "wide",
            "task": "binary_sentiment",
            "data": {"source": "keras"},
            "space": {
                **SPACE,
                "pooling": {"choices": ["max", "last"]},
                "bidirectional": {"choices": [True, False]},
                "embedding_size": {"low": 4, "high": 64},
                "lr_schedule": {"choices": ["constant", "cosine"]},
                "weight_decay": {"low": 0.0, "high": 0.1},
            },
        }
    ).space
    config, why = completed_config(space, {**SIX, "hidden_size": 16})
    assert why == ""
    assert config == {
        **SIX,
        "hidden_size": 16,
        "pooling": "last",
        "bidirectional": False,
        "embedding_size": 16,  # the hidden size, as the seed's embedding
        "lr_schedule": "constant",
        "weight_decay": 0.0,
    }
