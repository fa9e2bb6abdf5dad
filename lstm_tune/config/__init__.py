"""Study files: parse and validate YAML into an immutable :class:`StudySpec` (pydantic v2).

A study file describes a search (``space``); an exported best-config file describes one
configuration (``params`` plus ``result``). Both go through :func:`load_spec`, so whatever
export writes, this package reads back under the same rules.

Modules, each importing only those below it (``lint-imports`` checks it): ``files`` (reading a
YAML file), ``spec`` (the sections, the task's data model, the JSON Schema, the round trip),
``space`` (the six hyperparameters, the optional knobs, and their ranges), ``wording``
(one-line errors).

Precedence, stated once: command-line flag > environment variable > YAML > default here.
The CLI applies the first two with ``model_copy``; nothing below it does.
"""

from lstm_tune.config.files import load_spec
from lstm_tune.config.space import (
    KNOBS,
    PARAM_DEFAULTS,
    PARAM_KINDS,
    PARAM_LIMITS,
    PARAM_NAMES,
    Choice,
    Fixed,
    FloatRange,
    IntRange,
    Knob,
    ParamSpec,
    largest_value,
    param_names,
    value_inside,
)
from lstm_tune.config.spec import (
    DEFAULT_TASK,
    PRUNER_CLASSES,
    SAMPLER_CLASSES,
    EarlyStoppingSpec,
    MlflowSpec,
    PrunerSpec,
    ResultSpec,
    SamplerSpec,
    SearchSpec,
    StudySpec,
    TrackingSpec,
    TrainingSpec,
    WarmStartSpec,
    json_schema,
    parse_spec,
    spec_to_dict,
    with_data,
    with_data_path,
)

__all__ = [
    "DEFAULT_TASK",
    "KNOBS",
    "PARAM_DEFAULTS",
    "PARAM_KINDS",
    "PARAM_LIMITS",
    "PARAM_NAMES",
    "PRUNER_CLASSES",
    "SAMPLER_CLASSES",
    "Choice",
    "EarlyStoppingSpec",
    "FloatRange",
    "Fixed",
    "IntRange",
    "Knob",
    "MlflowSpec",
    "ParamSpec",
    "PrunerSpec",
    "ResultSpec",
    "SamplerSpec",
    "SearchSpec",
    "StudySpec",
    "TrackingSpec",
    "TrainingSpec",
    "WarmStartSpec",
    "json_schema",
    "largest_value",
    "load_spec",
    "param_names",
    "parse_spec",
    "spec_to_dict",
    "value_inside",
    "with_data",
    "with_data_path",
]
