"""The one table of sampler and pruner names (config) and the factory built from it
(lstm_tune.tuning.sampler_and_pruner): every name a study file may give builds, and no other
does."""

from __future__ import annotations

import optuna
import pytest

from lstm_tune.config import PRUNER_CLASSES, SAMPLER_CLASSES, StudySpec, json_schema, parse_spec
from lstm_tune.errors import ConfigError
from lstm_tune.tuning.sampler_and_pruner import TrialSeededSampler, build_strategy, sized_for_data

SPACE = {
    "hidden_size": {"low": 4, "high": 8},
    "num_layers": 1,
    "learning_rate": 0.01,
    "dropout_rate": 0.0,
    "sequence_length": 20,
    "batch_size": 8,
}
# Options a pruner cannot be built without.
REQUIRED_PRUNER_OPTIONS = {"percentile": {"percentile": 25.0}, "threshold": {"lower": 0.5}}


def _spec(search: dict[str, object]) -> StudySpec:
    return parse_spec({"name": "s", "search": search, "space": SPACE}, "s.yaml")


@pytest.mark.parametrize("name", list(SAMPLER_CLASSES))
def test_every_sampler_a_file_may_name_builds_its_optuna_class(name: str) -> None:
    strategy = build_strategy(_spec({"sampler": {"name": name}}))
    assert isinstance(strategy.sampler, TrialSeededSampler)
    inner = strategy.sampler.factory(1)
    assert type(inner).__name__ == SAMPLER_CLASSES[name]
    assert isinstance(inner, optuna.samplers.BaseSampler)


@pytest.mark.parametrize("name", list(PRUNER_CLASSES))
def test_every_pruner_a_file_may_name_builds_its_optuna_class(name: str) -> None:
    options = REQUIRED_PRUNER_OPTIONS.get(name, {})
    strategy = build_strategy(_spec({"pruner": {"name": name, "options": options}}))
    assert type(strategy.pruner).__name__ == PRUNER_CLASSES[name]
    assert isinstance(strategy.pruner, optuna.pruners.BasePruner)


@pytest.mark.parametrize(("kind", "name"), [("sampler", "bayes"), ("pruner", "patience")])
def test_a_name_outside_the_table_is_refused_with_the_table(kind: str, name: str) -> None:
    table = SAMPLER_CLASSES if kind == "sampler" else PRUNER_CLASSES
    with pytest.raises(ConfigError) as refused:
        _spec({kind: {"name": name}})
    assert f"search.{kind}.name: got {name!r}; expected one of {', '.join(table)}" in str(
        refused.value
    )


def test_the_schema_lists_the_tables_names() -> None:
    definitions = json_schema()["$defs"]
    assert definitions["SamplerSpec"]["properties"]["name"]["enum"] == list(SAMPLER_CLASSES)
    assert definitions["PrunerSpec"]["properties"]["name"]["enum"] == list(PRUNER_CLASSES)


def _hyperband(training: dict[str, object], options: dict[str, object] | None = None) -> StudySpec:
    pruner = {"name": "hyperband", "options": options or {}}
    return parse_spec(
        {"name": "s", "training": training, "search": {"pruner": pruner}, "space": SPACE}, "s.yaml"
    )


def test_hyperband_max_resource_follows_the_maximum_epochs_with_early_stopping() -> None:
    stopping = {"patience": 2}
    by_epochs = _hyperband({"epochs": 12, "early_stopping": stopping})
    assert build_strategy(by_epochs).pruner._max_resource == 12  # type: ignore[attr-defined]
    # Counting checkpoints: 12 epochs of 300 examples, one checkpoint every 100.
    by_checkpoints = _hyperband({"epochs": 12, "report_every": 100, "early_stopping": stopping})
    strategy = build_strategy(by_checkpoints, fit_size=300)
    assert strategy.pruner._max_resource == 36  # type: ignore[attr-defined]
    # The file's own max_resource wins.
    given = _hyperband({"epochs": 12, "early_stopping": stopping}, {"max_resource": 5})
    assert build_strategy(given).pruner._max_resource == 5  # type: ignore[attr-defined]
    # Without early stopping every trial runs the maximum: Optuna's "auto", as before.
    plain = _hyperband({"epochs": 12})
    assert build_strategy(plain).pruner._max_resource == "auto"  # type: ignore[attr-defined]


def test_hyperband_counting_checkpoints_is_sized_once_the_data_is_read() -> None:
    spec = _hyperband({"epochs": 4, "report_every": 50, "early_stopping": {"patience": 2}})
    before = build_strategy(spec)
    assert before.pruner._max_resource == "auto"  # type: ignore[attr-defined]
    after = sized_for_data(before, spec, fit_size=300)
    assert after.pruner._max_resource == 24  # type: ignore[attr-defined]
    assert after.sampler is before.sampler
    # Counting epochs, the maximum needed no data: the strategy is kept as built.
    by_epochs = _hyperband({"epochs": 4, "early_stopping": {"patience": 2}})
    strategy = build_strategy(by_epochs)
    assert sized_for_data(strategy, by_epochs, fit_size=300) is strategy
