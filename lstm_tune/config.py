"""Study files: parse and validate YAML into an immutable :class:`StudySpec` (pydantic v2).

A study file describes a search (``space``); an exported best-config file describes one
configuration (``params`` plus ``result``). Both go through :func:`load_spec`, so whatever
export writes, this module reads back under the same rules.

Structure, types, defaults and the JSON Schema (``lstm-tune schema``) come from pydantic;
the ``data:`` section is the model of the study's task (:mod:`lstm_tune.tasks`), chosen by
``task:`` as a discriminated union. Every error becomes one line naming the file, the dotted
field, the bad value and what is allowed.

Precedence, stated once: command-line flag > environment variable > YAML > default here.
The CLI applies the first two with ``model_copy``; nothing below it does.
"""

from __future__ import annotations

import itertools
import math
import reprlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema, WithJsonSchema

from lstm_tune.errors import ConfigError, UserFile
from lstm_tune.tasks import all_tasks, get_task, task_names

PARAM_NAMES = (
    "hidden_size",
    "num_layers",
    "learning_rate",
    "dropout_rate",
    "sequence_length",
    "batch_size",
)
# The kind each hyperparameter must have; the model cannot take a float layer count.
PARAM_KINDS: dict[str, type] = {
    "hidden_size": int,
    "num_layers": int,
    "learning_rate": float,
    "dropout_rate": float,
    "sequence_length": int,
    "batch_size": int,
}
# What each hyperparameter may be, whatever a file says: outside this, Keras fails or the
# search is meaningless (dropout 1.0 drops everything).
PARAM_LIMITS: dict[str, tuple[float, float]] = {
    "hidden_size": (1, 4096),
    "num_layers": (1, 8),
    "learning_rate": (1e-7, 1.0),
    "dropout_rate": (0.0, 0.95),
    "sequence_length": (1, 5000),
    "batch_size": (1, 4096),
}
DEFAULT_TASK = "text_classification"
# The samplers and pruners a study file may name, each with the class in ``optuna.samplers``
# or ``optuna.pruners`` that it stands for: the one table the study-file check below and the
# factory in lstm_tune.search.strategy both read (names only here: no Optuna import to check a
# file).
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
# Longest rendering of a bad value in an error line: a huge value (a YAML "billion laughs"
# alias bomb) must not turn into a huge message.
MAX_VALUE_CHARS = 80


class _ShortRepr(reprlib.Repr):
    """reprlib's bounded repr, keeping a mapping's keys in the order the file gave them."""

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        pieces = [
            f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
            for k, v in itertools.islice(x.items(), self.maxdict)
        ]
        return "{" + ", ".join(pieces + (["..."] if len(x) > self.maxdict else [])) + "}"


_REPR = _ShortRepr()  # keyword arguments need Python 3.12
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 3, 6, 6
_REPR.maxstring, _REPR.maxother = MAX_VALUE_CHARS, 40


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- search space


class IntRange(_Frozen):
    """An integer range; ``step`` and ``log`` mean what they mean in ``suggest_int``."""

    low: int
    high: int
    step: int = 1
    log: bool = False


class FloatRange(_Frozen):
    """A float range; ``log`` samples uniformly in log space."""

    low: float
    high: float
    log: bool = False


class Choice(_Frozen):
    """A categorical choice among ``choices``."""

    choices: tuple[int | float, ...]


@dataclass(frozen=True)
class Fixed:
    """A value that is not searched."""

    value: int | float


ParamSpec = IntRange | FloatRange | Choice | Fixed


class _FieldProblem(Exception):
    """A rule broken inside a hand-checked part (the space); not a ValueError, so pydantic
    lets it through unchanged and :func:`parse_spec` words it like every other error."""

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        super().__init__(field)
        self.field, self.value, self.allowed = field, value, allowed


def _param_schema(name: str) -> dict[str, Any]:
    kind = "integer" if PARAM_KINDS[name] is int else "number"
    lo, hi = PARAM_LIMITS[name]
    scalar = {"type": kind, "minimum": lo, "maximum": hi}
    ranged = {
        "type": "object",
        "properties": {
            "low": scalar,
            "high": scalar,
            "log": {"type": "boolean"},
            **({"step": {"type": "integer", "minimum": 1}} if kind == "integer" else {}),
        },
        "required": ["low", "high"],
        "additionalProperties": False,
    }
    choices = {
        "type": "object",
        "properties": {"choices": {"type": "array", "items": scalar, "minItems": 1}},
        "required": ["choices"],
        "additionalProperties": False,
    }
    return {"anyOf": [scalar, ranged, choices]}


def _space_schema(*, fixed: bool) -> dict[str, Any]:
    properties = {
        name: (
            {k: v for k, v in _param_schema(name)["anyOf"][0].items()}
            if fixed
            else _param_schema(name)
        )
        for name in PARAM_NAMES
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(PARAM_NAMES),
        "additionalProperties": False,
    }


def _parse_param(field: str, name: str, value: Any) -> ParamSpec:
    kind = PARAM_KINDS[name]
    lo, hi = PARAM_LIMITS[name]
    what = "an integer" if kind is int else "a number"
    allowed = f"{what} in [{lo:g}, {hi:g}]"

    def checked(v: Any, sub: str = "") -> int | float:
        ok_type = isinstance(v, int) if kind is int else isinstance(v, int | float)
        if isinstance(v, bool) or not ok_type or not math.isfinite(v) or not (lo <= v <= hi):
            raise _FieldProblem(field + sub, v, allowed)
        return kind(v)  # type: ignore[no-any-return]

    if not isinstance(value, dict):
        return Fixed(checked(value))
    if "choices" in value:
        extra = sorted(set(value) - {"choices"})
        if extra:
            raise _FieldProblem(f"{field}.{extra[0]}", extra[0], "only `choices:` beside choices")
        choices = value["choices"]
        if not isinstance(choices, list) or not choices:
            raise _FieldProblem(field + ".choices", choices, f"a non-empty list of {what}s")
        return Choice(choices=tuple(checked(c, ".choices") for c in choices))
    extra = sorted(set(value) - {"low", "high", "step", "log"})
    if extra:
        raise _FieldProblem(
            f"{field}.{extra[0]}", extra[0], "one of the keys low, high, step, log"
        )
    for bound in ("low", "high"):
        if bound not in value:
            raise _FieldProblem(f"{field}.{bound}", None, f"{what} (ranges need low and high)")
    low, high = checked(value["low"], ".low"), checked(value["high"], ".high")
    if low > high:
        raise _FieldProblem(field, {"low": low, "high": high}, "`low <= high`")
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise _FieldProblem(field + ".log", log, "true or false")
    if log and low <= 0:
        raise _FieldProblem(field + ".low", low, "a value > 0 when log: true")
    if kind is float:
        if "step" in value:
            raise _FieldProblem(field + ".step", value["step"], "no step for a float range")
        return FloatRange(low=float(low), high=float(high), log=log)
    step = value.get("step", 1)
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise _FieldProblem(field + ".step", step, "an integer >= 1")
    if log and step != 1:
        raise _FieldProblem(field + ".step", step, "step 1 when log: true (Optuna's rule)")
    return IntRange(low=int(low), high=int(high), step=step, log=log)


def _parse_space(key: str, raw: Any) -> dict[str, ParamSpec]:
    if not isinstance(raw, dict):
        raise _FieldProblem(key, raw, "a mapping of the six hyperparameters to values or ranges")
    for name in raw:
        if name not in PARAM_NAMES:
            raise _FieldProblem(f"{key}.{name}", name, f"one of the keys {', '.join(PARAM_NAMES)}")
    missing = [name for name in PARAM_NAMES if name not in raw]
    if missing:
        raise _FieldProblem(
            f"{key}.{missing[0]}", None, f"a value or range (missing: {', '.join(missing)})"
        )
    space: dict[str, ParamSpec] = {}
    for name in PARAM_NAMES:
        value = raw[name]
        if key == "params" and isinstance(value, dict):
            raise _FieldProblem(
                f"{key}.{name}", value, "a single value under `params:` (ranges go in space)"
            )
        space[name] = _parse_param(f"{key}.{name}", name, value)
    return space


# --------------------------------------------------------------------------- sections


class TrainingSpec(_Frozen):
    """Settings every trial shares.

    ``report_every`` (training examples) makes a trial report its validation metric to the
    pruner every that many examples, measured on a fixed sample of ``report_sample``
    validation examples, instead of once per epoch: with long epochs, hopeless trials stop
    early.
    """

    epochs: StrictInt = Field(5, ge=1, le=10000)
    report_every: StrictInt | None = Field(None, ge=1)
    report_sample: StrictInt = Field(1000, ge=2)


class SamplerSpec(_Frozen):
    """Which Optuna sampler and its keyword arguments."""

    name: SamplerName = "tpe"
    options: dict[str, Any] = Field(default_factory=dict)


class PrunerSpec(_Frozen):
    """Which Optuna pruner and its keyword arguments."""

    name: PrunerName = "median"
    options: dict[str, Any] = Field(default_factory=dict)


class SearchSpec(_Frozen):
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
        tuple[dict[str, int | float], ...],
        WithJsonSchema({"type": "array", "items": {**_space_schema(fixed=True), "required": []}}),
    ] = ()

    @field_validator("enqueue", mode="before")
    @classmethod
    def _check_enqueue(cls, raw: Any) -> Any:
        if raw is None:
            return ()
        if not isinstance(raw, list | tuple):
            raise _FieldProblem("search.enqueue", raw, "a list of configs (param: value)")
        configs = []
        for index, item in enumerate(raw):
            where = f"search.enqueue[{index}]"
            if not isinstance(item, dict):
                raise _FieldProblem(where, item, "a mapping of param to value")
            config: dict[str, int | float] = {}
            for name, value in item.items():
                if name not in PARAM_NAMES:
                    raise _FieldProblem(
                        f"{where}.{name}", name, f"one of the keys {', '.join(PARAM_NAMES)}"
                    )
                if isinstance(value, dict):
                    raise _FieldProblem(f"{where}.{name}", value, "a single value")
                config[name] = _parse_param(f"{where}.{name}", name, value).value  # type: ignore[union-attr]
            configs.append(config)
        return tuple(configs)


class ResultSpec(_Frozen):
    """What an exported file records about the trial it came from."""

    value: float = Field(allow_inf_nan=False, description="the trial's objective value")
    best_epoch: StrictInt = Field(ge=1)
    study_name: str = Field(min_length=1)
    trial_number: StrictInt = Field(ge=0)
    versions: dict[str, str] = Field(default_factory=dict)
    # Written by `lstm-tune finalize`: each finalist's re-validation (values, mean, std).
    finalists: tuple[dict[str, Any], ...] = ()


_SPACE_FIELD_SCHEMA = {"anyOf": [_space_schema(fixed=False)]}


class StudySpec(_Frozen):
    """A whole study file, validated. ``data`` is the task's own data model."""

    name: str = Field(min_length=1)
    task: str = DEFAULT_TASK
    seed: StrictInt = Field(42, ge=0, le=MAX_SEED)
    data: Any = None
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    space: Annotated[dict[str, Any], WithJsonSchema(_space_schema(fixed=False))] = Field(
        default_factory=dict,
        description="the search: each hyperparameter a value, {low, high[, step, log]} "
        "or {choices: [...]} (exactly one of space or params)",
    )
    params: SkipJsonSchema[None] = Field(None, exclude=True)
    result: ResultSpec | None = None
    source_path: SkipJsonSchema[str] = Field("<study>", exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _prepare(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise _FieldProblem("", raw, "a mapping of keys to values")
        raw = dict(raw)
        if raw.get("data") is None:
            raw["data"] = {}  # validated as the field `data`, so its errors say `data.`
        task_name = raw.setdefault("task", DEFAULT_TASK)
        if not isinstance(task_name, str) or task_name not in task_names():
            raise _FieldProblem("task", task_name, f"one of {', '.join(task_names())}")
        has_space, has_params = "space" in raw, "params" in raw
        if has_space == has_params:
            raise _FieldProblem(
                "space/params",
                sorted(k for k in ("space", "params") if k in raw),
                "exactly one of `space:` (a search) or `params:` (one config)",
            )
        key = "space" if has_space else "params"
        raw["space"] = _parse_space(key, raw.pop(key))
        task = get_task(task_name)
        search = raw.get("search")
        if search is None:
            search = {}
        if isinstance(search, dict):
            metric = search.get("metric")
            try:
                objective = task.objective(metric if isinstance(metric, str) else None)
            except ValueError:
                allowed = ", ".join(o.name for o in task.objectives)
                raise _FieldProblem(
                    "search.metric", metric, f"one of {allowed} (task {task_name})"
                ) from None
            if metric is not None and not isinstance(metric, str):
                raise _FieldProblem("search.metric", metric, "a metric name")
            direction = search.get("direction", objective.direction)
            if direction != objective.direction:
                raise _FieldProblem(
                    "search.direction",
                    direction,
                    f"{objective.direction} (the direction of {objective.name}), or leave it out",
                )
            raw["search"] = {**search, "metric": objective.name, "direction": direction}
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
            raise _FieldProblem("data", raw, "a mapping of keys to values")
        return raw

    def fixed_params(self) -> dict[str, int | float]:
        """Return the six hyperparameters when every one of them is fixed (a config to train)."""
        loose = [name for name in PARAM_NAMES if not isinstance(self.space[name], Fixed)]
        if loose:
            raise ConfigError(
                f"{self.source_path}: params: {', '.join(loose)} must have a single value to "
                f"train one model, but they are search ranges; export a best config with "
                f"`lstm-tune export-best` or give each a value under `params:`"
            )
        return {name: self.space[name].value for name in PARAM_NAMES}

    @property
    def objective(self) -> Any:
        """The task's :class:`~lstm_tune.tasks.base.Objective` this study optimises."""
        return get_task(self.task).objective(self.search.metric)


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


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (YAML says keys are
    unique; PyYAML would keep the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, str | int | float | bool) and key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping",
                    mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


STUDY_FILE = UserFile(
    ConfigError,
    missing="no such file; give the path of a study YAML file",
    directory="is a directory; give the path of a study YAML file",
    unreadable="cannot read",
)


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study or exported-config YAML file."""
    file = str(path)
    data = STUDY_FILE.read(file)
    if b"\x00" in data:
        raise ConfigError(f"{file}: binary file (NUL bytes); expected a YAML text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text at byte {exc.start}") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{file}: invalid YAML: {where}{problem}") from None
    spec = parse_spec(raw, file)
    data_path = getattr(spec.data, "path", None)
    if data_path is not None and not Path(data_path).is_absolute():
        # A relative data path in a study file means relative to that file, not to the cwd.
        resolved = str((Path(path).parent / data_path).resolve())
        spec = with_data(spec, path=resolved)
    return spec


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
        raise _config_error(file, "", raw, "a mapping of keys to values")
    if "task" not in raw:
        raw = {**raw, "task": DEFAULT_TASK}
    task_name = raw["task"]
    if not isinstance(task_name, str) or task_name not in task_names():
        raise _config_error(file, "task", task_name, f"one of {', '.join(task_names())}")
    try:
        spec = _study_adapter().validate_python(raw)
    except _FieldProblem as problem:
        raise _config_error(file, problem.field, problem.value, problem.allowed) from None
    except ValidationError as exc:
        raise _from_validation_error(file, exc, task_name) from None
    return spec.model_copy(update={"source_path": file})  # type: ignore[no-any-return]


def _short(value: Any) -> str:
    # reprlib stops early in deep or long values; plain repr of a YAML alias bomb would
    # build a string of gigabytes before it could be cut.
    text = _REPR.repr(value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 3] + "..."
    return text


def _config_error(file: str, field: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(
        f"{file}: {field or '<top level>'}: got {_short(value)}; expected {allowed}"
    )


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
        return _config_error(file, field, loc[-1], f"one of the keys {allowed}")
    if kind == "missing":
        return _config_error(file, field, None, "a value (this field is required)")
    if kind == "literal_error":
        message = message.replace("Input should be ", "").replace("'", "").replace(" or ", ", ")
        return _config_error(file, field, value, "one of " + message)
    for theirs, ours in _WORDING:
        if message.startswith(theirs):
            message = ours + message.removeprefix(theirs)
            break
    if kind.startswith(("int_", "float_")) and message.startswith((">", "<")):
        message = f"{'an integer' if kind.startswith('int') else 'a number'} {message}"
    return _config_error(file, field, value, message)


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


# --------------------------------------------------------------------------- round trip


def _param_to_yaml(spec: ParamSpec) -> Any:
    if isinstance(spec, Fixed):
        return spec.value
    if isinstance(spec, Choice):
        return {"choices": list(spec.choices)}
    out: dict[str, Any] = {"low": spec.low, "high": spec.high}
    if isinstance(spec, IntRange) and spec.step != 1:
        out["step"] = spec.step
    if spec.log:
        out["log"] = True
    return out


def spec_to_dict(
    spec: StudySpec, *, params: dict[str, int | float] | None = None
) -> dict[str, Any]:
    """Return the YAML document that :func:`parse_spec` reads back into ``spec``.

    With ``params`` the document describes that one configuration (``params:``) instead of
    the search space. ``data.cache_dir`` is left out: it belongs to a machine, not a study.
    """
    search = spec.search
    doc: dict[str, Any] = {
        "name": spec.name,
        "task": spec.task,
        "seed": spec.seed,
        "data": spec.data.model_dump(mode="json", exclude={"cache_dir"}, exclude_none=True),
        "training": spec.training.model_dump(mode="json", exclude_none=True),
        "search": {
            "n_trials": search.n_trials,
            **({"timeout": search.timeout} if search.timeout is not None else {}),
            "sampler": search.sampler.model_dump(mode="json"),
            "pruner": search.pruner.model_dump(mode="json"),
            "direction": search.direction,
            "metric": search.metric,
            **({"enqueue": [dict(c) for c in search.enqueue]} if search.enqueue else {}),
        },
    }
    if spec.training.report_every is None:
        doc["training"].pop("report_sample", None)
    if params is not None:
        doc["params"] = {name: params[name] for name in PARAM_NAMES}
    else:
        doc["space"] = {name: _param_to_yaml(spec.space[name]) for name in PARAM_NAMES}
    if spec.result is not None:
        doc["result"] = spec.result.model_dump(mode="json")
        if not spec.result.finalists:
            doc["result"].pop("finalists")
    return doc
