"""The study file as an immutable :class:`StudySpec` (pydantic v2): its sections, the sampler
and pruner tables, the task's data model chosen by ``task:``, the JSON Schema, and the round
trip back to the YAML document an exported file holds.

Structure, types, defaults and the JSON Schema (``lstm-tune schema``) come from pydantic;
the ``data:`` section is the model of the study's task (:mod:`lstm_tune.tasks`), chosen by
``task:`` as a discriminated union. Every error becomes one line naming the file, the dotted
field, the bad value and what is allowed (:mod:`lstm_tune.config.wording`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema, WithJsonSchema

from lstm_tune.config.space import (
    KNOBS,
    PARAM_NAMES,
    Choice,
    Fixed,
    Frozen,
    ParamSpec,
    knob_refused,
    largest_value,
    param_names,
    param_to_yaml,
    parse_param,
    parse_space,
    space_schema,
    value_inside,
)
from lstm_tune.config.wording import FieldProblem, config_error
from lstm_tune.errors import ConfigError
from lstm_tune.tasks import all_tasks, get_task, task_names

__all__ = [
    "DEFAULT_TASK",
    "MAX_SEED",
    "EarlyStoppingSpec",
    "PRUNER_CLASSES",
    "MlflowSpec",
    "SAMPLER_CLASSES",
    "PrunerSpec",
    "ResultSpec",
    "SamplerSpec",
    "SearchSpec",
    "StudySpec",
    "TrackingSpec",
    "TrainingSpec",
    "WarmStartSpec",
    "json_schema",
    "parse_spec",
    "spec_to_dict",
    "with_data",
    "with_data_path",
]

DEFAULT_TASK = "text_classification"
# The samplers and pruners a study file may name, each with the class in ``optuna.samplers``
# or ``optuna.pruners`` that it stands for: the one table the study-file check below and the
# factory in lstm_tune.tuning.sampler_and_pruner both read (names only here: no Optuna import
# to check a file).
SAMPLER_CLASSES: dict[str, str] = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "gp": "GPSampler",
    "cmaes": "CmaEsSampler",
    "qmc": "QMCSampler",
}
PRUNER_CLASSES: dict[str, str] = {
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
    "threshold": "ThresholdPruner",
    "none": "NopPruner",
}
if TYPE_CHECKING:  # a Literal built from a table is beyond a type checker: a str to mypy
    SamplerName = str
    PrunerName = str
else:  # pydantic checks the name and lists the table in the JSON Schema as an enum
    SamplerName = Literal[tuple(SAMPLER_CLASSES)]
    PrunerName = Literal[tuple(PRUNER_CLASSES)]
# numpy and TensorFlow seeds are unsigned 32-bit.
MAX_SEED = 2**32 - 1


class EarlyStoppingSpec(Frozen):
    """Stop a trial once the study's metric has not improved for ``patience`` checks.

    A check is an epoch end, or a checkpoint when ``training.report_every`` is set; an
    improvement beats the best value so far by more than ``min_delta``, in the study's
    direction (Keras's ``EarlyStopping`` rule).
    """

    patience: StrictInt = Field(ge=1, le=10000, description="non-improving checks to stop after")
    min_delta: float = Field(
        0.0, ge=0.0, allow_inf_nan=False, description="the least change that counts as better"
    )


class TrainingSpec(Frozen):
    """Settings every trial shares.

    ``epochs`` is the most a trial trains: with ``early_stopping`` a trial stops sooner once
    it stops improving. ``report_every`` (training examples) makes a trial report its
    validation metric to the pruner every that many examples, measured on a fixed sample of
    ``report_sample`` validation examples, instead of once per epoch: with long epochs,
    hopeless trials stop early.
    """

    epochs: StrictInt = Field(5, ge=1, le=10000)
    report_every: StrictInt | None = Field(None, ge=1)
    report_sample: StrictInt = Field(1000, ge=2)
    early_stopping: EarlyStoppingSpec | None = None
    tensorboard: str | None = Field(
        None,
        min_length=1,
        description="directory of TensorBoard logs: each trial writes <dir>/<study>/trial-<n> "
        "(relative to the study file); a machine's setting, not part of the study's spec",
    )


class MlflowSpec(Frozen):
    """Where each trial's MLflow run goes: a tracking URI and an experiment name."""

    tracking_uri: str = Field(
        min_length=1, description="e.g. http://mlflow:5000 or sqlite:///x.db"
    )
    experiment: str | None = Field(
        None, min_length=1, description="the MLflow experiment (default: the study name)"
    )


class TrackingSpec(Frozen):
    """Tracking servers each trial also reports to (opt-in; none by default)."""

    mlflow: MlflowSpec | None = None


class SamplerSpec(Frozen):
    """Which Optuna sampler and its keyword arguments."""

    name: SamplerName = "tpe"
    options: dict[str, Any] = Field(default_factory=dict)


class PrunerSpec(Frozen):
    """Which Optuna pruner and its keyword arguments."""

    name: PrunerName = "median"
    options: dict[str, Any] = Field(default_factory=dict)


class WarmStartSpec(Frozen):
    """An earlier study whose best ``top`` complete configs run first in this one."""

    study: str = Field(min_length=1, description="the earlier study's name")
    storage: str | None = Field(
        None, min_length=1, description="its storage URL (default: this study's storage)"
    )
    top: StrictInt = Field(5, ge=1, le=1000, description="how many of its best configs")


class SearchSpec(Frozen):
    """The search's budget, strategy and objective (the task's metric and its direction)."""

    n_trials: StrictInt = Field(20, ge=1)
    timeout: float | None = Field(None, ge=1.0, allow_inf_nan=False)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    # Filled from the task when the file leaves them out (its default objective).
    direction: Literal["maximize", "minimize"] = "maximize"
    metric: str = "val_accuracy"
    # Configs run first when the study is created (e.g. the baseline users already have).
    enqueue: Annotated[
        tuple[dict[str, int | float | bool | str], ...],
        WithJsonSchema({"type": "array", "items": {**space_schema(fixed=True), "required": []}}),
    ] = ()
    # An earlier study whose best configs are queued when this study is created.
    warm_start: WarmStartSpec | None = None

    @field_validator("enqueue", mode="before")
    @classmethod
    def _check_enqueue(cls, raw: Any) -> Any:
        if raw is None:
            return ()
        if not isinstance(raw, list | tuple):
            raise FieldProblem("search.enqueue", raw, "a list of configs (param: value)")
        configs = []
        for index, item in enumerate(raw):
            where = f"search.enqueue[{index}]"
            if not isinstance(item, dict):
                raise FieldProblem(where, item, "a mapping of param to value")
            config: dict[str, int | float | bool | str] = {}
            for name, value in item.items():
                if name not in PARAM_NAMES and name not in KNOBS:
                    raise FieldProblem(
                        f"{where}.{name}",
                        name,
                        f"one of the keys {', '.join((*PARAM_NAMES, *KNOBS))}",
                    )
                if isinstance(value, dict):
                    raise FieldProblem(f"{where}.{name}", value, "a single value")
                config[name] = parse_param(f"{where}.{name}", name, value).value  # type: ignore[union-attr]
            configs.append(config)
        return tuple(configs)


class ResultSpec(Frozen):
    """What an exported file records about the trial it came from."""

    value: float = Field(allow_inf_nan=False, description="the trial's objective value")
    best_epoch: StrictInt = Field(ge=1)
    study_name: str = Field(min_length=1)
    trial_number: StrictInt = Field(ge=0)
    versions: dict[str, str] = Field(default_factory=dict)
    # Written by `lstm-tune finalize`: each finalist's re-validation (values, mean, std).
    finalists: tuple[dict[str, Any], ...] = ()


_SPACE_DESCRIPTION = (
    "the search: each hyperparameter a value, {low, high[, step, log]} or {choices: [...]}; "
    "the six are required, the task's knobs optional (exactly one of space or params)"
)


class StudySpec(Frozen):
    """A whole study file, validated. ``data`` is the task's own data model."""

    name: str = Field(min_length=1)
    task: str = DEFAULT_TASK
    seed: StrictInt = Field(42, ge=0, le=MAX_SEED)
    data: Any = None
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    space: Annotated[dict[str, Any], WithJsonSchema(space_schema(fixed=False))] = Field(
        default_factory=dict, description=_SPACE_DESCRIPTION
    )
    params: SkipJsonSchema[None] = Field(None, exclude=True)
    result: ResultSpec | None = None
    source_path: SkipJsonSchema[str] = Field("<study>", exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _prepare(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise FieldProblem("", raw, "a mapping of keys to values")
        raw = dict(raw)
        if raw.get("data") is None:
            raw["data"] = {}  # validated as the field `data`, so its errors say `data.`
        task_name = raw.setdefault("task", DEFAULT_TASK)
        if not isinstance(task_name, str) or task_name not in task_names():
            raise FieldProblem("task", task_name, f"one of {', '.join(task_names())}")
        has_space, has_params = "space" in raw, "params" in raw
        if has_space == has_params:
            raise FieldProblem(
                "space/params",
                sorted(k for k in ("space", "params") if k in raw),
                "exactly one of `space:` (a search) or `params:` (one config)",
            )
        key = "space" if has_space else "params"
        task = get_task(task_name)
        raw["space"] = parse_space(key, raw.pop(key), knobs=task.knobs, task=task.name)
        _data_at_largest_knobs(raw, task.data_knobs)
        search = raw.get("search")
        if search is None:
            search = {}
        if isinstance(search, dict):
            metric = search.get("metric")
            try:
                objective = task.objective(metric if isinstance(metric, str) else None)
            except ValueError:
                allowed = ", ".join(o.name for o in task.objectives)
                raise FieldProblem(
                    "search.metric", metric, f"one of {allowed} (task {task_name})"
                ) from None
            if metric is not None and not isinstance(metric, str):
                raise FieldProblem("search.metric", metric, "a metric name")
            direction = search.get("direction", objective.direction)
            if direction != objective.direction:
                raise FieldProblem(
                    "search.direction",
                    direction,
                    f"{objective.direction} (the direction of {objective.name}), or leave it out",
                )
            raw["search"] = {**search, "metric": objective.name, "direction": direction}
            # A config file (params:) keeps its search's queue, which it never runs.
            space = raw["space"] if key == "space" else {}
            _enqueued_configs_fit(search.get("enqueue"), space, task.knobs, task.name)
        return raw

    def __init__(self, /, **fields: Any) -> None:
        """Build a spec in code, with the keys of a study file: ``StudySpec(name="s",
        data={"path": "x.csv"}, space={...})``. It is checked as a file is (the task's data
        model, the same one-line :class:`ConfigError`, naming ``source_path``, default
        ``<study>``)."""
        if type(self) is StudySpec:  # the task's subclasses are what parse_spec builds
            checked = parse_spec(fields, str(fields.get("source_path", "<study>")))
            fields = {**fields, "data": checked.data}
        super().__init__(**fields)

    @field_validator("data", mode="before")
    @classmethod
    def _data_is_a_mapping(cls, raw: Any) -> Any:
        if raw is None:
            return {}
        if isinstance(raw, BaseModel):  # already the task's data model (see __init__)
            return raw
        if not isinstance(raw, dict):
            raise FieldProblem("data", raw, "a mapping of keys to values")
        return raw

    def fixed_params(self) -> dict[str, int | float | bool | str]:
        """Return the six hyperparameters and the knobs the file names when every one of them
        is fixed (a config to train)."""
        names = param_names(self.space)
        loose = [name for name in names if not isinstance(self.space[name], Fixed)]
        if loose:
            raise ConfigError(
                f"{self.source_path}: params: {', '.join(loose)} must have a single value to "
                f"train one model, but they are search ranges; export a best config with "
                f"`lstm-tune export-best` or give each a value under `params:`"
            )
        return {name: self.space[name].value for name in names}  # type: ignore[union-attr]

    @property
    def objective(self) -> Any:
        """The task's :class:`~lstm_tune.tasks.base.Objective` this study optimises."""
        return get_task(self.task).objective(self.search.metric)


def _enqueued_configs_fit(
    enqueue: Any, space: dict[str, ParamSpec], knobs: tuple[str, ...], task: str
) -> None:
    """A queued config may name only knobs the study's task accepts, and a name the space
    gives as choices (or one value) only one of them: Optuna refuses any other with a
    traceback when the trial starts. (A number outside a range it takes, with a warning.)"""
    for index, config in enumerate(enqueue if isinstance(enqueue, list) else []):
        for name, value in config.items() if isinstance(config, dict) else ():
            if name in KNOBS and name not in knobs:
                raise knob_refused(f"search.enqueue[{index}].{name}", name, knobs, task)
            spec = space.get(name)
            if isinstance(spec, Choice | Fixed) and not value_inside(spec, value):
                allowed = spec.choices if isinstance(spec, Choice) else (spec.value,)
                raise FieldProblem(
                    f"search.enqueue[{index}].{name}",
                    value,
                    f"one of space.{name}'s values: {', '.join(map(str, allowed))}",
                )


def _data_at_largest_knobs(raw: dict[str, Any], data_knobs: tuple[str, ...]) -> None:
    """A data knob the space names replaces its data field, at its largest value: the data
    is loaded once for every value (the largest vocabulary; predict_change's column check
    when it may be true), and the task cuts it to each config's (``Task.for_params``)."""
    largest = {
        name: largest_value(raw["space"][name]) for name in data_knobs if name in raw["space"]
    }
    if not largest:
        return
    data = raw["data"]
    if isinstance(data, dict):
        raw["data"] = {**data, **largest}
    elif isinstance(data, BaseModel):  # already the task's data model (see StudySpec.__init__)
        raw["data"] = data.model_copy(update=largest)


@cache
def _study_adapter() -> TypeAdapter[Any]:
    """A discriminated union of one StudySpec subclass per task, keyed by ``task``."""
    members = []
    for task in all_tasks().values():
        names = (task.name, *task.aliases)
        member = create_model(  # type: ignore[call-overload]
            f"{''.join(p.title() for p in task.name.split('_'))}Study",
            __base__=StudySpec,
            __doc__=f"A study of task {task.name}.",
            task=(Literal[names], task.name),  # type: ignore[valid-type,arg-type]
            data=(task.data_model, Field(default_factory=task.data_model)),
            space=(
                Annotated[
                    dict[str, Any], WithJsonSchema(space_schema(fixed=False, knobs=task.knobs))
                ],
                Field(default_factory=dict, description=_SPACE_DESCRIPTION),
            ),
        )
        members.append(member)
    if len(members) == 1:
        return TypeAdapter(members[0])
    union = Union[tuple(members)]  # type: ignore[valid-type]  # noqa: UP007
    return TypeAdapter(Annotated[union, Field(discriminator="task")])  # type: ignore[arg-type]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of study files (every task), for editors and ``lstm-tune schema``."""
    schema = _study_adapter().json_schema(mode="validation")
    schema["title"] = "lstm-tune study file"
    return schema


def with_data(spec: StudySpec, **changes: Any) -> StudySpec:
    """``spec`` with ``changes`` to its data section (re-validated by the task's model)."""
    data = type(spec.data).model_validate({**spec.data.model_dump(), **changes})
    return spec.model_copy(update={"data": data})


def with_data_path(spec: StudySpec, data_path: str | Path) -> StudySpec:
    """``spec`` reading the local file ``data_path`` (made absolute) instead of its own data
    file or its task's download: what ``--data-path`` does."""
    changes: dict[str, object] = {"path": str(Path(data_path).resolve())}
    if "source" in type(spec.data).model_fields:  # a local file instead of the download
        changes["source"] = "csv"
    return with_data(spec, **changes)


def parse_spec(raw: Any, file: str = "<study>") -> StudySpec:
    """Validate an already-parsed YAML document; ``file`` names it in errors."""
    if not isinstance(raw, dict):
        raise config_error(file, "", raw, "a mapping of keys to values")
    if "task" not in raw:
        raw = {**raw, "task": DEFAULT_TASK}
    task_name = raw["task"]
    if not isinstance(task_name, str) or task_name not in task_names():
        raise config_error(file, "task", task_name, f"one of {', '.join(task_names())}")
    try:
        spec = _study_adapter().validate_python(raw)
    except FieldProblem as problem:
        raise config_error(file, problem.field, problem.value, problem.allowed) from None
    except ValidationError as exc:
        raise _from_validation_error(file, exc, task_name) from None
    return spec.model_copy(update={"source_path": file})  # type: ignore[no-any-return]


# How pydantic words a rule, and how our one-line errors word it.
_WORDING = (
    ("Input should be a valid integer", "an integer"),
    ("Input should be a valid number", "a number"),
    ("Input should be a valid string", "a string"),
    ("Input should be a valid boolean", "true or false"),
    ("Input should be a valid dictionary", "a mapping of keys to values"),
    ("Input should be greater than or equal to ", ">= "),
    ("Input should be greater than ", "> "),
    ("Input should be less than or equal to ", "<= "),
    ("Input should be less than ", "< "),
    ("Input should be ", ""),
    ("Value error, ", ""),
    ("String should have at least 1 character", "a non-empty string"),
)


def _from_validation_error(file: str, exc: ValidationError, task_name: str) -> ConfigError:
    error = exc.errors(include_url=False)[0]
    raw_loc = tuple(error["loc"])
    if raw_loc and raw_loc[0] == task_name:
        raw_loc = raw_loc[1:]  # the discriminated union's tag: the task, not a field
    loc = [str(p) for p in raw_loc]
    field = ".".join(loc)
    kind, message = error["type"], error["msg"]
    value = error.get("input")
    if kind == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(raw_loc[:-1], task_name))
        return config_error(file, field, loc[-1], f"one of the keys {allowed}")
    if kind == "missing":
        return config_error(file, field, None, "a value (this field is required)")
    if kind == "literal_error":
        message = message.replace("Input should be ", "").replace("'", "").replace(" or ", ", ")
        return config_error(file, field, value, "one of " + message)
    for theirs, ours in _WORDING:
        if message.startswith(theirs):
            message = ours + message.removeprefix(theirs)
            break
    if kind.startswith(("int_", "float_")) and message.startswith((">", "<")):
        message = f"{'an integer' if kind.startswith('int') else 'a number'} {message}"
    return config_error(file, field, value, message)


def _allowed_keys(section: tuple[Any, ...], task_name: str) -> list[str]:
    """The keys the section at ``section`` allows, found by walking the models along it."""
    model: Any = StudySpec
    for part in section:
        if model is StudySpec and part == "data":
            model = get_task(task_name).data_model
            continue
        is_model = isinstance(model, type) and issubclass(model, BaseModel)
        fields = model.model_fields if is_model else {}
        annotation = fields[part].annotation if part in fields else None
        model = annotation if isinstance(annotation, type) else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    names = [n for n, f in model.model_fields.items() if not f.exclude]
    if model is StudySpec:
        names.append("params")
    return names


# What belongs to a machine, not to a study: left out of the study's stored spec and of
# exported files, unless asked for (a pool's workers started from a written spec need them).
# A tracking URI may hold a password, and the stored spec is shown on the dashboard.
LOCAL_DATA_FIELDS = frozenset({"cache_dir"})
LOCAL_TRAINING_FIELDS = frozenset({"tensorboard"})


def spec_to_dict(
    spec: StudySpec, *, params: Mapping[str, Any] | None = None, local: bool = False
) -> dict[str, Any]:
    """Return the YAML document that :func:`parse_spec` reads back into ``spec``.

    With ``params`` the document describes that one configuration (``params:``) instead of
    the search space. What belongs to a machine (``data.cache_dir``, ``training.tensorboard``,
    ``tracking``) is left out unless ``local``.
    """
    search = spec.search
    data_local = set() if local else set(LOCAL_DATA_FIELDS)
    training_local = set() if local else set(LOCAL_TRAINING_FIELDS)
    doc: dict[str, Any] = {
        "name": spec.name,
        "task": spec.task,
        "seed": spec.seed,
        "data": spec.data.model_dump(mode="json", exclude=data_local, exclude_none=True),
        "training": spec.training.model_dump(
            mode="json", exclude=training_local, exclude_none=True
        ),
        "search": {
            "n_trials": search.n_trials,
            **({"timeout": search.timeout} if search.timeout is not None else {}),
            "sampler": search.sampler.model_dump(mode="json"),
            "pruner": search.pruner.model_dump(mode="json"),
            "direction": search.direction,
            "metric": search.metric,
            **({"enqueue": [dict(c) for c in search.enqueue]} if search.enqueue else {}),
            **(
                {"warm_start": search.warm_start.model_dump(mode="json", exclude_none=True)}
                if search.warm_start is not None
                else {}
            ),
        },
    }
    if spec.training.report_every is None:
        doc["training"].pop("report_sample", None)
    # One config writes the knobs it has (a trial sampled before a knob joined the space has
    # none of it); a search writes its space's.
    names = param_names(params if params is not None else spec.space)
    for name in get_task(spec.task).data_knobs:
        if name in names:  # the knob replaces the data field (see _data_at_largest_knobs)
            doc["data"].pop(name, None)
    if params is not None:
        doc["params"] = {name: params[name] for name in names}
    else:
        doc["space"] = {name: param_to_yaml(spec.space[name]) for name in names}
    if local and spec.tracking.mlflow is not None:
        doc["tracking"] = spec.tracking.model_dump(mode="json", exclude_none=True)
    if spec.result is not None:
        doc["result"] = spec.result.model_dump(mode="json")
        if not spec.result.finalists:
            doc["result"].pop("finalists")
    return doc
