"""Study files: parse and validate YAML into an immutable :class:`StudySpec`.

A study file describes a search (``space``); an exported best-config file describes one
configuration (``params`` plus ``result``). Both go through :func:`load_spec`, so whatever
export writes, this module reads back under the same rules.

Precedence, stated once: command-line flag > environment variable > YAML > default here.
The CLI applies the first two with :func:`dataclasses.replace`; nothing below it does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from lstm_tune.errors import ConfigError

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
SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc")
PRUNERS = ("median", "percentile", "successive_halving", "hyperband", "threshold", "none")
TASKS = ("binary_sentiment",)
DATA_SOURCES = ("keras", "csv")


@dataclass(frozen=True)
class IntRange:
    """An integer range; ``step`` and ``log`` mean what they mean in ``suggest_int``."""

    low: int
    high: int
    step: int = 1
    log: bool = False


@dataclass(frozen=True)
class FloatRange:
    """A float range; ``log`` samples uniformly in log space."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Choice:
    """A categorical choice among ``choices``."""

    choices: tuple[int | float, ...]


@dataclass(frozen=True)
class Fixed:
    """A value that is not searched."""

    value: int | float


ParamSpec = IntRange | FloatRange | Choice | Fixed


@dataclass(frozen=True)
class DataSpec:
    """Where the reviews come from and how much of them a study uses."""

    source: str = "keras"
    path: str | None = None
    max_features: int = 10000
    validation_split: float = 0.2
    train_limit: int | None = None
    test_limit: int | None = None
    cache_dir: str | None = None


@dataclass(frozen=True)
class TrainingSpec:
    """Settings every trial shares.

    ``report_every`` (reviews) makes a trial report validation accuracy to the pruner every
    that many training reviews, measured on a fixed sample of ``report_sample`` validation
    reviews, instead of once per epoch: with long epochs, hopeless trials stop early.
    """

    epochs: int = 5
    report_every: int | None = None
    report_sample: int = 1000


@dataclass(frozen=True)
class SamplerSpec:
    """Which Optuna sampler and its keyword arguments."""

    name: str = "tpe"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PrunerSpec:
    """Which Optuna pruner and its keyword arguments."""

    name: str = "median"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchSpec:
    """The search's budget and strategy; the objective is validation accuracy, maximised."""

    n_trials: int = 20
    timeout: float | None = None
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    direction: str = "maximize"
    metric: str = "val_accuracy"
    # Configs run first when the study is created (e.g. the baseline users already have).
    enqueue: tuple[dict[str, int | float], ...] = ()


@dataclass(frozen=True)
class ResultSpec:
    """What an exported file records about the trial it came from."""

    value: float
    best_epoch: int
    study_name: str
    trial_number: int
    versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StudySpec:
    """A whole study file, validated."""

    name: str
    source_path: str
    task: str = "binary_sentiment"
    seed: int = 42
    data: DataSpec = field(default_factory=DataSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    search: SearchSpec = field(default_factory=SearchSpec)
    space: dict[str, ParamSpec] = field(default_factory=dict)
    result: ResultSpec | None = None

    def fixed_params(self) -> dict[str, int | float]:
        """Return the six hyperparameters when every one of them is fixed (a config to train)."""
        loose = [name for name in PARAM_NAMES if not isinstance(self.space[name], Fixed)]
        if loose:
            raise ConfigError(
                f"{self.source_path}: params: {', '.join(loose)} must have a single value to "
                f"train one model, but they are search ranges; export a best config with "
                f"`lstm-tune export-best` or give each a value under `params:`"
            )
        return {name: self.space[name].value for name in PARAM_NAMES}  # type: ignore[union-attr]


class _Reader:
    """Checks one mapping of a YAML file, naming the file and dotted field in every error."""

    def __init__(self, file: str, where: str, raw: Any) -> None:
        self.file = file
        self.where = where
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.fail(where, raw, "a mapping of keys to values")
        self.raw: dict[str, Any] = raw

    def field_name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, name: str, value: Any, allowed: str) -> None:
        raise ConfigError(
            f"{self.file}: {name or '<top level>'}: got {value!r}; expected {allowed}"
        )

    def check_keys(self, allowed: tuple[str, ...]) -> None:
        for key in self.raw:
            if key not in allowed:
                self.fail(self.field_name(str(key)), key, f"one of the keys {', '.join(allowed)}")

    def child(self, key: str) -> _Reader:
        return _Reader(self.file, self.field_name(key), self.raw.get(key))

    def get_int(self, key: str, default: int | None, *, minimum: int | None = None) -> int | None:
        value = self.raw.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(self.field_name(key), value, "an integer")
        if minimum is not None and value < minimum:
            self.fail(self.field_name(key), value, f"an integer >= {minimum}")
        return int(value)

    def need_int(self, key: str, default: int, *, minimum: int | None = None) -> int:
        value = self.get_int(key, default, minimum=minimum)
        if value is None:
            self.fail(self.field_name(key), value, "an integer")
        return int(value)  # type: ignore[arg-type]

    def get_float(
        self,
        key: str,
        default: float | None,
        *,
        low: float | None = None,
        high: float | None = None,
    ) -> float | None:
        value = self.raw.get(key, default)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            self.fail(self.field_name(key), value, "a finite number")
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(self.field_name(key), value, f"a number in [{low}, {high}]")
        return float(value)

    def get_str(
        self, key: str, default: str | None, allowed: tuple[str, ...] | None = None
    ) -> str:
        value = self.raw.get(key, default)
        if not isinstance(value, str) or not value:
            self.fail(self.field_name(key), value, "a non-empty string")
        if allowed is not None and value not in allowed:
            self.fail(self.field_name(key), value, f"one of {', '.join(allowed)}")
        return str(value)

    def get_bool(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            self.fail(self.field_name(key), value, "true or false")
        return bool(value)

    def get_options(self, key: str) -> dict[str, Any]:
        value = self.raw.get(key, {})
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            self.fail(self.field_name(key), value, "a mapping of option names to values")
        return dict(value)


TOP_KEYS = ("name", "task", "seed", "data", "training", "search", "space", "params", "result")


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study or exported-config YAML file."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file; give the path of a study YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{file}: invalid YAML: {where}{problem}") from None
    spec = parse_spec(raw, file)
    if spec.data.path is not None and not Path(spec.data.path).is_absolute():
        # A relative data path in a study file means relative to that file, not to the cwd.
        resolved = str((Path(path).parent / spec.data.path).resolve())
        spec = replace(spec, data=replace(spec.data, path=resolved))
    return spec


def parse_spec(raw: Any, file: str = "<study>") -> StudySpec:
    """Validate an already-parsed YAML document; ``file`` names it in errors."""
    top = _Reader(file, "", raw)
    top.check_keys(TOP_KEYS)
    name = top.get_str("name", None)
    space = _parse_space(top)
    result_raw = top.raw.get("result")
    return StudySpec(
        name=name,
        source_path=file,
        task=top.get_str("task", "binary_sentiment", TASKS),
        seed=top.need_int("seed", 42, minimum=0),
        data=_parse_data(top.child("data")),
        training=_parse_training(top.child("training")),
        search=_parse_search(top.child("search")),
        space=space,
        result=None if result_raw is None else _parse_result(top.child("result")),
    )


def _parse_data(r: _Reader) -> DataSpec:
    r.check_keys(
        (
            "source",
            "path",
            "max_features",
            "validation_split",
            "train_limit",
            "test_limit",
            "cache_dir",
        )
    )
    path = r.raw.get("path")
    if path is not None and (not isinstance(path, str) or not path):
        r.fail(r.field_name("path"), path, "a file path (CSV, optionally .gz)")
    source = r.get_str("source", "csv" if path else "keras", DATA_SOURCES)
    cache_dir = r.raw.get("cache_dir")
    if cache_dir is not None and not isinstance(cache_dir, str):
        r.fail(r.field_name("cache_dir"), cache_dir, "a directory path")
    split = r.get_float("validation_split", 0.2, low=0.0, high=0.9)
    if split is None or split <= 0.0:
        r.fail(r.field_name("validation_split"), split, "a number in (0, 0.9]")
    # 2 ids are reserved (padding, out-of-vocabulary) so fewer than 3 leaves no words.
    return DataSpec(
        source=source,
        path=path,
        max_features=r.need_int("max_features", 10000, minimum=3),
        validation_split=float(split),  # type: ignore[arg-type]
        train_limit=r.get_int("train_limit", None, minimum=10),
        test_limit=r.get_int("test_limit", None, minimum=10),
        cache_dir=cache_dir,
    )


def _parse_training(r: _Reader) -> TrainingSpec:
    r.check_keys(("epochs", "report_every", "report_sample"))
    return TrainingSpec(
        epochs=r.need_int("epochs", 5, minimum=1),
        report_every=r.get_int("report_every", None, minimum=1),
        report_sample=r.need_int("report_sample", 1000, minimum=2),
    )


def _parse_search(r: _Reader) -> SearchSpec:
    r.check_keys(("n_trials", "timeout", "sampler", "pruner", "direction", "metric", "enqueue"))
    sampler = r.child("sampler")
    sampler.check_keys(("name", "options"))
    pruner = r.child("pruner")
    pruner.check_keys(("name", "options"))
    timeout = r.get_float("timeout", None, low=1.0)
    return SearchSpec(
        n_trials=r.need_int("n_trials", 20, minimum=1),
        timeout=timeout,
        sampler=SamplerSpec(
            sampler.get_str("name", "tpe", SAMPLERS), sampler.get_options("options")
        ),
        pruner=PrunerSpec(
            pruner.get_str("name", "median", PRUNERS), pruner.get_options("options")
        ),
        direction=r.get_str("direction", "maximize", ("maximize",)),
        metric=r.get_str("metric", "val_accuracy", ("val_accuracy",)),
        enqueue=_parse_enqueue(r),
    )


def _parse_enqueue(r: _Reader) -> tuple[dict[str, int | float], ...]:
    raw = r.raw.get("enqueue", [])
    if not isinstance(raw, list):
        r.fail(r.field_name("enqueue"), raw, "a list of configs (mappings of param to value)")
    configs = []
    for index, item in enumerate(raw):
        entry = _Reader(r.file, f"{r.field_name('enqueue')}[{index}]", item)
        entry.check_keys(PARAM_NAMES)
        config: dict[str, int | float] = {}
        for name, value in entry.raw.items():
            if isinstance(value, dict):
                entry.fail(entry.field_name(name), value, "a single value")
            config[name] = _parse_param(entry, name, value).value  # type: ignore[union-attr]
        configs.append(config)
    return tuple(configs)


def _parse_result(r: _Reader) -> ResultSpec:
    r.check_keys(("value", "best_epoch", "study_name", "trial_number", "versions"))
    value = r.get_float("value", None, low=0.0, high=1.0)
    if value is None:
        r.fail(r.field_name("value"), value, "the trial's validation accuracy in [0, 1]")
    versions = r.get_options("versions")
    return ResultSpec(
        value=float(value),  # type: ignore[arg-type]
        best_epoch=r.need_int("best_epoch", 0, minimum=1),
        study_name=r.get_str("study_name", None),
        trial_number=r.need_int("trial_number", 0, minimum=0),
        versions={str(k): str(v) for k, v in versions.items()},
    )


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


def _parse_space(top: _Reader) -> dict[str, ParamSpec]:
    has_space = "space" in top.raw
    has_params = "params" in top.raw
    if has_space == has_params:
        top.fail(
            "space/params",
            sorted(k for k in ("space", "params") if k in top.raw),
            "exactly one of `space:` (a search) or `params:` (one config)",
        )
    key = "space" if has_space else "params"
    r = top.child(key)
    r.check_keys(PARAM_NAMES)
    missing = [name for name in PARAM_NAMES if name not in r.raw]
    if missing:
        r.fail(r.field_name(missing[0]), None, f"a value or range (missing: {', '.join(missing)})")
    space: dict[str, ParamSpec] = {}
    for name in PARAM_NAMES:
        value = r.raw[name]
        if has_params and isinstance(value, dict):
            r.fail(
                r.field_name(name), value, "a single value under `params:` (ranges go in space)"
            )
        space[name] = _parse_param(r, name, value)
    return space


def _parse_param(r: _Reader, name: str, value: Any) -> ParamSpec:
    kind = PARAM_KINDS[name]
    lo, hi = PARAM_LIMITS[name]
    field_name = r.field_name(name)
    what = "an integer" if kind is int else "a number"
    allowed = f"{what} in [{lo:g}, {hi:g}]"

    def checked(v: Any, sub: str = "") -> int | float:
        ok_type = isinstance(v, int) if kind is int else isinstance(v, int | float)
        if isinstance(v, bool) or not ok_type or not (lo <= v <= hi):
            r.fail(field_name + sub, v, allowed)
        return kind(v)  # type: ignore[no-any-return]

    if not isinstance(value, dict):
        return Fixed(checked(value))
    p = _Reader(r.file, field_name, value)
    if "choices" in value:
        p.check_keys(("choices",))
        choices = value["choices"]
        if not isinstance(choices, list) or not choices:
            p.fail(field_name + ".choices", choices, f"a non-empty list of {what}s")
        return Choice(tuple(checked(c, ".choices") for c in choices))
    p.check_keys(("low", "high", "step", "log"))
    for bound in ("low", "high"):
        if bound not in value:
            p.fail(f"{field_name}.{bound}", None, f"{what} (ranges need low and high)")
    low, high = checked(value["low"], ".low"), checked(value["high"], ".high")
    if low > high:
        p.fail(field_name, {"low": low, "high": high}, "`low <= high`")
    log = p.get_bool("log", False)
    if log and low <= 0:
        p.fail(field_name + ".low", low, "a value > 0 when log: true")
    if kind is float:
        if "step" in value:
            p.fail(field_name + ".step", value["step"], "no step for a float range")
        return FloatRange(float(low), float(high), log)
    step = p.need_int("step", 1, minimum=1)
    if log and step != 1:
        p.fail(field_name + ".step", step, "step 1 when log: true (Optuna's rule)")
    return IntRange(int(low), int(high), step, log)


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
    data = spec.data
    doc: dict[str, Any] = {
        "name": spec.name,
        "task": spec.task,
        "seed": spec.seed,
        "data": {
            "source": data.source,
            **({"path": data.path} if data.path is not None else {}),
            "max_features": data.max_features,
            "validation_split": data.validation_split,
            **({"train_limit": data.train_limit} if data.train_limit is not None else {}),
            **({"test_limit": data.test_limit} if data.test_limit is not None else {}),
        },
        "training": {
            "epochs": spec.training.epochs,
            **(
                {
                    "report_every": spec.training.report_every,
                    "report_sample": spec.training.report_sample,
                }
                if spec.training.report_every is not None
                else {}
            ),
        },
        "search": {
            "n_trials": spec.search.n_trials,
            **({"timeout": spec.search.timeout} if spec.search.timeout is not None else {}),
            "sampler": {"name": spec.search.sampler.name, "options": spec.search.sampler.options},
            "pruner": {"name": spec.search.pruner.name, "options": spec.search.pruner.options},
            "direction": spec.search.direction,
            "metric": spec.search.metric,
            **({"enqueue": [dict(c) for c in spec.search.enqueue]} if spec.search.enqueue else {}),
        },
    }
    if params is not None:
        doc["params"] = {name: params[name] for name in PARAM_NAMES}
    else:
        doc["space"] = {name: _param_to_yaml(spec.space[name]) for name in PARAM_NAMES}
    if spec.result is not None:
        r = spec.result
        doc["result"] = {
            "value": r.value,
            "best_epoch": r.best_epoch,
            "study_name": r.study_name,
            "trial_number": r.trial_number,
            "versions": dict(r.versions),
        }
    return doc
