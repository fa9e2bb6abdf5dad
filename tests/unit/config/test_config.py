"""Study files: the shipped ones load; every kind of mistake is one clear ConfigError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lstm_tune.config import (
    PARAM_NAMES,
    Choice,
    Fixed,
    FloatRange,
    IntRange,
    load_spec,
    parse_spec,
    spec_to_dict,
)
from lstm_tune.errors import ConfigError
from tests.helpers import ROOT
from tests.helpers.studies import write_study

STUDIES = ROOT / "studies"


@pytest.mark.parametrize("name", sorted(p.name for p in STUDIES.glob("*.yaml")))
def test_shipped_study_files_load_and_round_trip(name: str) -> None:
    spec = load_spec(STUDIES / name)
    assert set(PARAM_NAMES) <= set(spec.space)  # the six, and maybe knobs beyond them
    assert parse_spec(spec_to_dict(spec), "again") == spec.model_copy(
        update={"source_path": "again"}
    )


def test_imdb_study_searches_around_the_seed() -> None:
    spec = load_spec(STUDIES / "imdb.yaml")
    assert spec.data.max_features == 10000
    assert spec.training.epochs == 5
    assert spec.data.validation_split == 0.2
    assert spec.space["learning_rate"] == FloatRange(low=1e-4, high=1e-2, log=True)
    assert spec.space["num_layers"] == IntRange(low=1, high=3)
    assert spec.space["batch_size"] == Choice(choices=(32, 64, 128))
    seed = {
        "hidden_size": 128,
        "num_layers": 2,
        "learning_rate": 1e-3,
        "dropout_rate": 0.3,
        "sequence_length": 500,
        "batch_size": 64,
    }
    small = {**seed, "hidden_size": spec.space["hidden_size"].low, "num_layers": 1}
    assert spec.search.enqueue == (small, seed)


def test_seed_config_is_one_trainable_config() -> None:
    params = load_spec(STUDIES / "seed_config.yaml").fixed_params()
    assert params == {
        "hidden_size": 128,
        "num_layers": 2,
        "learning_rate": 0.001,
        "dropout_rate": 0.3,
        "sequence_length": 500,
        "batch_size": 64,
    }


def test_search_space_cannot_be_trained_as_one_config() -> None:
    with pytest.raises(ConfigError, match="hidden_size.*search ranges"):
        load_spec(STUDIES / "imdb.yaml").fixed_params()


def _smoke() -> dict:
    return yaml.safe_load((STUDIES / "imdb_smoke.yaml").read_text())


def _broken(tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    doc = _smoke()
    change(doc)
    return write_study(tmp_path, filename="broken.yaml", **doc)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(colour="red"), r"colour: got 'colour'; expected one of the keys"),
        (
            lambda d: d["training"].update(epochs="five"),
            r"training\.epochs: got 'five'; expected an integer",
        ),
        (
            lambda d: d["training"].update(epochs=0),
            r"training\.epochs: got 0; expected >= 1",
        ),
        (
            lambda d: d["space"].update(hidden_size={"low": 64, "high": 16}),
            r"space\.hidden_size: got \{'low': 64, 'high': 16\}; expected `low <= high`",
        ),
        (
            lambda d: d["space"].update(num_layers={"low": 1.5, "high": 2}),
            r"space\.num_layers\.low: got 1\.5; expected an integer",
        ),
        (
            lambda d: d["space"].update(dropout_rate={"low": 0.0, "high": 1.5}),
            r"space\.dropout_rate\.high: got 1\.5; expected a number in \[0, 0\.95\]",
        ),
        (
            lambda d: d["space"].pop("batch_size"),
            r"space\.batch_size: got None; .*missing: batch_size",
        ),
        (
            lambda d: d["search"]["sampler"].update(name="bayes"),
            r"search\.sampler\.name: got 'bayes'; expected one of tpe, random",
        ),
        (
            lambda d: d["search"]["pruner"].update(name="aggressive"),
            r"search\.pruner\.name: got 'aggressive'; expected one of median",
        ),
        (
            lambda d: d["data"].update(source="s3"),
            r"data\.source: got 's3'; expected one of keras, csv",
        ),
        (lambda d: d["data"].update(validation_split=0), r"data\.validation_split: got 0"),
        (
            lambda d: d["data"].update(colour="red"),
            r"data\.colour: got 'colour'; expected one of the keys source, path, text_column",
        ),
        (lambda d: d.update(task="regression"), r"task: got 'regression'; expected one of"),
        (
            lambda d: d["search"].update(metric="val_mse"),
            r"search\.metric: got 'val_mse'; expected one of val_accuracy, val_loss",
        ),
        (
            lambda d: d["search"].update(direction="minimize"),
            r"search\.direction: got 'minimize'; expected maximize \(the direction of val_acc",
        ),
        (lambda d: d.update(seed=2**40), r"seed: got 1099511627776; expected <= 4294967295"),
        (lambda d: d["search"].update(timeout=float("nan")), r"search\.timeout: got nan"),
        (
            lambda d: d["space"].update(dropout_rate={"low": 0.0, "high": 0.1, "log": True}),
            r"space\.dropout_rate\.low: got 0\.0; expected a value > 0 when log: true",
        ),
        (lambda d: d.update(params={"hidden_size": 8}), r"space/params: .*exactly one of"),
    ],
)
def test_each_mistake_names_file_field_value_and_rule(
    tmp_path: Path, change, expected: str
) -> None:  # type: ignore[no-untyped-def]
    path = _broken(tmp_path, change)
    with pytest.raises(ConfigError, match=expected) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nspace: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"{path}: invalid YAML: line \d+, column \d+"):
        load_spec(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.yaml: no such file"):
        load_spec(tmp_path / "nope.yaml")


def test_unknown_sampler_option_is_rejected_when_building_the_sampler() -> None:
    from lstm_tune.config import SamplerSpec
    from lstm_tune.tuning.sampler_and_pruner import build_sampler

    with pytest.raises(ConfigError, match=r"search\.sampler\.options: \{'n_startup': 3\}"):
        build_sampler(SamplerSpec(name="tpe", options={"n_startup": 3}), seed=1)


def test_relative_data_path_is_relative_to_the_study_file(tmp_path: Path) -> None:
    doc = _smoke()
    doc["data"] = {"path": "reviews.csv.gz"}
    (tmp_path / "sub").mkdir()
    path = write_study(tmp_path / "sub", filename="s.yaml", **doc)
    spec = load_spec(path)
    assert spec.data.source == "csv"
    assert spec.data.path == str((tmp_path / "sub" / "reviews.csv.gz").resolve())


def test_params_file_holds_fixed_values() -> None:
    doc = _smoke()
    doc.pop("space")
    doc["params"] = {
        "hidden_size": 8,
        "num_layers": 1,
        "learning_rate": 0.01,
        "dropout_rate": 0.0,
        "sequence_length": 20,
        "batch_size": 4,
    }
    spec = parse_spec(doc, "p.yaml")
    assert spec.space["hidden_size"] == Fixed(8)
    assert spec.space["learning_rate"] == Fixed(0.01)


def test_a_huge_bad_value_is_cut_short_in_the_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec({**_smoke(), "name": ["x" * 100_000]}, "big.yaml")
    assert str(info.value).startswith("big.yaml: name: got ['xxx")
    assert len(str(info.value)) < 200


def test_an_exported_file_from_before_tasks_still_loads_and_trains_the_same(
    tmp_path: Path,
) -> None:
    # What `lstm-tune export-best` wrote before the task interface (commit a9eeb05).
    old = tmp_path / "best.yaml"
    old.write_text(
        "name: imdb_smoke\ntask: binary_sentiment\nseed: 42\n"
        "data: {source: csv, path: /data/imdb.csv.gz, max_features: 5000,"
        " validation_split: 0.2, train_limit: 5000, test_limit: 2000}\n"
        "training: {epochs: 3}\n"
        "search: {n_trials: 4, sampler: {name: tpe, options: {n_startup_trials: 2}},"
        " pruner: {name: median, options: {}}, direction: maximize, metric: val_accuracy}\n"
        "params: {hidden_size: 16, num_layers: 1, learning_rate: 0.002, dropout_rate: 0.1,"
        " sequence_length: 100, batch_size: 32}\n"
        "result: {value: 0.81, best_epoch: 2, study_name: imdb_smoke, trial_number: 3,"
        " versions: {keras: 3.11.0}}\n"
    )
    spec = load_spec(old)
    assert spec.task == "binary_sentiment" and spec.objective.name == "val_accuracy"
    assert (spec.data.text_column, spec.data.label_column) == ("review", "sentiment")
    assert spec.fixed_params()["hidden_size"] == 16 and spec.result is not None
    assert spec.result.best_epoch == 2


def test_json_schema_covers_every_task_and_its_data_section() -> None:
    from lstm_tune.config import json_schema
    from lstm_tune.tasks import all_tasks

    schema = json_schema()
    text = json.dumps(schema)
    for name in all_tasks():
        assert f'"{name}"' in text
    assert "text_column" in text and "hidden_size" in text
    assert schema.get("discriminator", {}).get("propertyName") == "task" or len(all_tasks()) == 1


def test_schema_command_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    from lstm_tune.cli import main

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "lstm-tune study file"


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: a\nseed: 1\nname: b\n")
    with pytest.raises(ConfigError, match=r"line 3, column 1: key 'name' appears twice"):
        load_spec(path)


def test_a_yaml_alias_bomb_is_refused_quickly_with_a_short_line(tmp_path: Path) -> None:
    import time

    levels = [f'l0: &l0 ["{"x" * 10}"]']
    levels += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join([*levels, "name: *l8", "params: *l8"]) + "\n")
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert time.perf_counter() - started < 10
    assert len(str(info.value)) < 300 and "\n" not in str(info.value)


@pytest.mark.parametrize("value", ["nan", "-5", "0", "inf", "soon"])
def test_search_timeout_flag_must_be_finite_seconds(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from lstm_tune.cli import main

    with pytest.raises(SystemExit) as info:
        main(["search", str(STUDIES / "imdb_smoke.yaml"), "--timeout", value])
    assert info.value.code == 2
    assert "--timeout" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["forecasting", "language_model"])
def test_a_task_whose_data_needs_a_path_names_data_path_when_it_is_missing(task: str) -> None:
    params = yaml.safe_load((STUDIES / "seed_config.yaml").read_text())["params"]
    with pytest.raises(ConfigError, match=r"^x\.yaml: data\.path: got None; expected a value"):
        parse_spec({"name": "x", "task": task, "params": params}, "x.yaml")


def test_tracking_and_tensorboard_are_in_the_schema_but_not_in_a_studys_stored_spec(
    tmp_path: Path,
) -> None:
    import optuna

    from lstm_tune.config import json_schema, load_spec
    from lstm_tune.storages import SPEC_ATTR
    from lstm_tune.tuning.studies import open_study

    text = json.dumps(json_schema())
    assert all(key in text for key in ('"tracking"', '"tracking_uri"', '"tensorboard"'))
    # A study created without them resumes with them (and the other way round): they say
    # where a trial is watched from, not what it means, and a URI may hold a password.
    storage = f"sqlite:///{tmp_path / 's.db'}"
    open_study(load_spec(write_study(tmp_path, name="s")), storage_url=storage, study_name="s")
    watched = write_study(
        tmp_path,
        name="s",
        training={"epochs": 1, "tensorboard": "tb"},
        tracking={"mlflow": {"tracking_uri": "http://u:pw@h:5000", "experiment": "e"}},
    )
    study = open_study(load_spec(watched), storage_url=storage, study_name="s")
    stored = optuna.load_study(study_name="s", storage=storage).user_attrs[SPEC_ATTR]
    assert "tracking" not in stored and "tensorboard" not in stored["training"]
    assert "pw" not in json.dumps(study.user_attrs)
