"""Study files: the shipped ones load; every kind of mistake is one clear ConfigError."""

from __future__ import annotations

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

STUDIES = Path(__file__).resolve().parents[1] / "studies"


@pytest.mark.parametrize("name", ["imdb.yaml", "imdb_smoke.yaml", "seed_config.yaml"])
def test_shipped_study_files_load_and_round_trip(name: str) -> None:
    spec = load_spec(STUDIES / name)
    assert set(spec.space) == set(PARAM_NAMES)
    assert parse_spec(spec_to_dict(spec), "again") == spec.__class__(
        **{**spec.__dict__, "source_path": "again"}
    )


def test_imdb_study_searches_around_the_seed() -> None:
    spec = load_spec(STUDIES / "imdb.yaml")
    assert spec.data.max_features == 10000
    assert spec.training.epochs == 5
    assert spec.data.validation_split == 0.2
    assert spec.space["learning_rate"] == FloatRange(1e-4, 1e-2, log=True)
    assert spec.space["num_layers"] == IntRange(1, 3)
    assert spec.space["batch_size"] == Choice((32, 64, 128))
    seed = {
        "hidden_size": 128,
        "num_layers": 2,
        "learning_rate": 1e-3,
        "dropout_rate": 0.3,
        "sequence_length": 500,
        "batch_size": 64,
    }
    assert spec.search.enqueue == (seed,)


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
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


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
            r"training\.epochs: got 0; expected an integer >= 1",
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
    from lstm_tune.strategy import build_sampler

    with pytest.raises(ConfigError, match=r"search\.sampler\.options: \{'n_startup': 3\}"):
        build_sampler(SamplerSpec("tpe", {"n_startup": 3}), seed=1)


def test_relative_data_path_is_relative_to_the_study_file(tmp_path: Path) -> None:
    doc = _smoke()
    doc["data"] = {"path": "reviews.csv.gz"}
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
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
