"""The optional knobs of a study file: which task accepts which, how they parse, sample,
export and round-trip, the JSON Schema, and that a study naming none is what it was."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from lstm_tune.cli import main
from lstm_tune.config import KNOBS, PARAM_NAMES, Choice, Fixed, json_schema, load_spec, parse_spec
from lstm_tune.config.spec import spec_to_dict
from lstm_tune.errors import ConfigError
from lstm_tune.tasks import all_tasks, get_task
from lstm_tune.tasks.base import COMMON_KNOBS
from lstm_tune.tuning.space import suggest
from tests.helpers import ROOT, TINY_SPACE
from tests.helpers.studies import StudyFile

TEXT_KNOBS = {
    "weight_decay": {"low": 1e-5, "high": 1e-2, "log": True},
    "clipnorm": 1.0,
    "lr_schedule": {"choices": ["constant", "cosine"]},
    "lr_warmup": {"low": 0.0, "high": 0.2},
    "embedding_size": {"low": 8, "high": 64, "step": 8},
    "bidirectional": {"choices": [False, True]},
    "pooling": {"choices": ["last", "max", "mean", "attention"]},
    "max_features": {"choices": [2000, 5000]},
}


def _text_spec(**space: object) -> object:
    return parse_spec(
        {"name": "k", "data": {"path": "x.csv"}, "space": {**TINY_SPACE, **space}}, "k.yaml"
    )


def test_every_task_declares_known_knobs_and_the_common_ones() -> None:
    for task in all_tasks().values():
        assert set(task.knobs) <= set(KNOBS), task.name
        assert set(COMMON_KNOBS) <= set(task.knobs)
        assert set(task.data_knobs) <= set(task.knobs)
        assert set(task.data_knobs) <= set(task.data_model.model_fields)
    assert "pooling" in get_task("text_classification").knobs
    assert "pooling" not in get_task("forecasting").knobs
    assert get_task("language_model").knobs == (*COMMON_KNOBS, "embedding_size")


def test_a_study_without_knobs_reads_and_writes_only_the_six() -> None:
    spec = load_spec(ROOT / "studies" / "imdb.yaml")
    assert tuple(spec.space) == PARAM_NAMES
    doc = spec_to_dict(spec)
    assert tuple(doc["space"]) == PARAM_NAMES and "max_features" in doc["data"]
    seed = load_spec(ROOT / "studies" / "seed_config.yaml")
    assert tuple(seed.fixed_params()) == PARAM_NAMES


def test_knobs_parse_sample_as_optuna_params_and_round_trip() -> None:
    spec = _text_spec(**TEXT_KNOBS)
    assert spec.space["bidirectional"] == Choice(choices=(False, True))
    assert spec.space["clipnorm"] == Fixed(1.0)
    # The vocabulary is loaded at the largest size searched; the space replaces the field.
    assert spec.data.max_features == 5000
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    params = suggest(trial, spec.space)
    assert tuple(params) == (*PARAM_NAMES, *(k for k in KNOBS if k in TEXT_KNOBS))
    kinds = {name: type(d) for name, d in trial.distributions.items()}
    assert (
        kinds["weight_decay"] is FloatDistribution and kinds["embedding_size"] is IntDistribution
    )
    for name in ("bidirectional", "pooling", "lr_schedule", "max_features", "clipnorm"):
        assert kinds[name] is CategoricalDistribution, name
    assert (
        isinstance(params["bidirectional"], bool) and params["pooling"] in KNOBS["pooling"].values
    )
    # The search writes back to what it read; one config (export-best) keeps every knob.
    doc = spec_to_dict(spec)
    assert "max_features" not in doc["data"]
    assert parse_spec(doc, "again.yaml").space == spec.space
    exported = parse_spec(spec_to_dict(spec, params=params), "best.yaml")
    assert exported.fixed_params() == params
    assert exported.data.max_features == params["max_features"]


@pytest.mark.parametrize(
    ("space", "says"),
    [
        (
            {"pooling": "sum"},
            "space.pooling: got 'sum'; expected one of last, max, mean, attention",
        ),
        ({"bidirectional": 1}, "space.bidirectional: got 1; expected true or false"),
        (
            {"bidirectional": {"low": 0, "high": 1}},
            "space.bidirectional.high: got 'high'; expected `choices: [...]` (true or false)",
        ),
        ({"weight_decay": -0.1}, "space.weight_decay: got -0.1; expected a number in [0, 1]"),
        (
            {"lr_schedule": {"choices": ["cosine", "step"]}},
            "space.lr_schedule.choices: got 'step'",
        ),
        ({"max_features": 2}, "space.max_features: got 2; expected an integer in [3, 1e+07]"),
    ],
)
def test_a_bad_knob_value_is_one_line(space: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _text_spec(**space)
    assert str(caught.value).startswith(f"k.yaml: {says}")
    assert "\n" not in str(caught.value)


def test_a_knob_the_task_does_not_accept_is_one_line_exit_2_and_writes_nothing(
    study_file: StudyFile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = {
        "path": str(tmp_path / "series.csv"),
        "time_column": "t",
        "target_columns": ["y"],
        "horizon": 2,
    }
    path = study_file(task="forecasting", data=data, space={**TINY_SPACE, "pooling": "max"})
    storage = tmp_path / "knob.db"
    before = set(tmp_path.iterdir())
    code = main(["search", str(path), "--storage", f"sqlite:///{storage}"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert lines == [
        f"lstm-tune: error: {path}: space.pooling: got 'pooling'; expected a knob task "
        f"forecasting accepts: weight_decay, clipnorm, lr_schedule, lr_warmup, "
        f"predict_change, bidirectional"
    ]
    assert set(tmp_path.iterdir()) == before  # no storage, nothing else


def test_a_knob_no_task_has_lists_the_keys_this_task_accepts() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec(
            {
                "name": "k",
                "task": "language_model",
                "data": {"path": "t.txt"},
                "space": {**TINY_SPACE, "dropout": 0.1},
            },
            "k.yaml",
        )
    assert str(caught.value) == (
        "k.yaml: space.dropout: got 'dropout'; expected one of the keys hidden_size, "
        "num_layers, learning_rate, dropout_rate, sequence_length, batch_size, weight_decay, "
        "clipnorm, lr_schedule, lr_warmup, embedding_size"
    )


def test_predict_change_is_searchable_and_checked_when_it_may_be_true() -> None:
    data = {"path": "s.csv", "time_column": "t", "target_columns": ["y"], "horizon": 2}
    raw = {"name": "f", "task": "forecasting", "data": data}
    spec = parse_spec(
        {**raw, "space": {**TINY_SPACE, "predict_change": {"choices": [False, True]}}}
    )
    assert spec.data.predict_change is True  # checked as the largest value, true
    with pytest.raises(ConfigError, match="predict_change is true"):
        parse_spec(
            {
                **raw,
                "data": {**data, "input_columns": ["x"]},
                "space": {**TINY_SPACE, "predict_change": {"choices": [False, True]}},
            }
        )


def test_the_schema_lists_each_tasks_knobs_with_their_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    schema = json_schema()

    def space(study: str) -> dict[str, object]:
        return schema["$defs"][study]["properties"]["space"]["properties"]

    text, series = space("TextClassificationStudy"), space("ForecastingStudy")
    language = space("LanguageModelStudy")
    assert set(text) == {*PARAM_NAMES, *get_task("text_classification").knobs}
    assert "pooling" not in series and "predict_change" in series
    assert "bidirectional" not in language and "embedding_size" in language
    pooling = text["pooling"]
    assert pooling["anyOf"][0] == {"type": "string", "enum": list(KNOBS["pooling"].values)}
    assert pooling["description"].startswith("default last: ")
    assert main(["schema"]) == 0
    assert '"max_features"' in capsys.readouterr().out


def test_a_config_exported_from_a_study_with_a_queue_loads() -> None:
    # The queue is checked against a search's space; a config file keeps the queue unrun.
    study = parse_spec(
        {
            "name": "k",
            "data": {"path": "x.csv"},
            "search": {"enqueue": [{"pooling": "max", "batch_size": 16}]},
            "space": {**TINY_SPACE, "pooling": {"choices": ["max", "last"]}},
        },
        "k.yaml",
    )
    params = {
        "hidden_size": 4, "num_layers": 1, "learning_rate": 0.005, "dropout_rate": 0.1,
        "sequence_length": 40, "batch_size": 16, "pooling": "last",
    }  # fmt: skip
    config = parse_spec(spec_to_dict(study, params=params), "best.yaml")
    assert config.fixed_params()["pooling"] == "last"
    assert config.search.enqueue == ({"pooling": "max", "batch_size": 16},)
