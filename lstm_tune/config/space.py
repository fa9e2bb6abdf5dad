"""The search space of a study file: the six hyperparameters every study names, the optional
knobs a task may accept (:data:`KNOBS`), the kind and limits of each, and what a file may give
for one (a value, ``{low, high[, step, log]}`` or ``{choices: [...]}``; a true/false or named
knob takes a value or ``{choices: [...]}`` only).

Checked by hand rather than by pydantic models: one value may be a scalar, a range or a choice
list, and each problem must be worded with the exact field (``space.hidden_size.low``) and rule,
which a union of pydantic models reports only as a list of every member's failure. The JSON
Schema of the same rules is written out here beside the checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from lstm_tune.config.wording import FieldProblem

__all__ = [
    "KNOBS",
    "PARAM_DEFAULTS",
    "PARAM_KINDS",
    "PARAM_LIMITS",
    "PARAM_NAMES",
    "Choice",
    "FloatRange",
    "Fixed",
    "Frozen",
    "IntRange",
    "Knob",
    "ParamSpec",
    "knob_refused",
    "largest_value",
    "param_names",
    "param_to_yaml",
    "parse_param",
    "parse_space",
    "value_inside",
    "space_schema",
]

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
# Knobs a study may leave out of its space, each with the value that builds today's model (a
# knob added to the space later: what a study without it trains), or a function of the other
# params giving it (embedding_size: the hidden_size). Warm starts fill an earlier study's
# config with these. The six are in every study, so none has a default; nor have the knobs
# whose default depends on the task or the data (clipnorm: none, or the language model's 1.0;
# max_features and predict_change: the data section's), which a warm start leaves to the
# sampler. Each value here is what KNOBS' `default` says in words.
PARAM_DEFAULTS: dict[str, Any] = {
    "weight_decay": 0.0,
    "lr_schedule": "constant",
    "lr_warmup": 0.0,
    "embedding_size": lambda params: params["hidden_size"],
    "bidirectional": False,
    "pooling": "last",
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


@dataclass(frozen=True)
class Knob:
    """An optional hyperparameter beyond the six: its kind, what it may be, the default a
    study that leaves it out gets (today's model), and why a user would search it.

    ``limits`` bound a number; ``values`` list a named knob's (``str``) allowed values; a
    ``bool`` knob is true or false. Which tasks accept it is each task's ``knobs``.
    """

    kind: type
    default: str
    why: str
    limits: tuple[float, float] | None = None
    values: tuple[str, ...] = ()


# Every optional knob, in the order a space, an exported file and a trial list them. Defaults
# are today's behaviour, so a study that names none builds exactly the model it built before.
KNOBS: dict[str, Knob] = {
    "weight_decay": Knob(
        float,
        "0 (Adam)",
        "AdamW's decoupled weight decay when > 0: regularises large models that overfit",
        limits=(0.0, 1.0),
    ),
    "clipnorm": Knob(
        float,
        "none (language model: 1.0)",
        "clips the gradients' global norm to this (0: no clipping): steadies high learning "
        "rates and long sequences",
        limits=(0.0, 1000.0),
    ),
    "lr_schedule": Knob(
        str,
        "constant",
        "`cosine` decays the learning rate to 0 over the trial's planned steps: often a better "
        "model in the same epochs",
        values=("constant", "cosine"),
    ),
    "lr_warmup": Knob(
        float,
        "0",
        "share of the planned steps over which the learning rate rises linearly from 0 (with "
        "either schedule): steadies the first steps of large models and high rates",
        limits=(0.0, 0.9),
    ),
    "embedding_size": Knob(
        int,
        "hidden_size",
        "width of the token embedding: a small one saves weights, a large one holds more "
        "meaning per word",
        limits=(1, 4096),
    ),
    "bidirectional": Knob(
        bool,
        "false",
        "a second LSTM reads each sequence backwards (text classification: each text; "
        "forecasting: the encoder's window), doubling the LSTM's weights",
    ),
    "pooling": Knob(
        str,
        "last",
        "how the LSTM's outputs over a text become one vector: the last real token's, the "
        "max or the mean over the real tokens, or a learned attention over them",
        values=("last", "max", "mean", "attention"),
    ),
    "max_features": Knob(
        int,
        "data.max_features",
        "the vocabulary size (the most frequent words of the training split); replaces "
        "data.max_features, and the corpus is tokenized once at the largest size searched",
        limits=(3, 10_000_000),
    ),
    "predict_change": Knob(
        bool,
        "data.predict_change",
        "forecast the change from the window's last value (as NLinear) instead of the "
        "values; replaces data.predict_change",
    ),
}


def param_names(space: Mapping[str, Any]) -> tuple[str, ...]:
    """The six, then the knobs ``space`` (or a config) names, in :data:`KNOBS` order."""
    return (*PARAM_NAMES, *(name for name in KNOBS if name in space))


def _kind(name: str) -> type:
    return PARAM_KINDS[name] if name in PARAM_KINDS else KNOBS[name].kind


def _limits(name: str) -> tuple[float, float] | None:
    return PARAM_LIMITS[name] if name in PARAM_LIMITS else KNOBS[name].limits


class Frozen(BaseModel):
    """A model that refuses unknown keys and never changes once made."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class IntRange(Frozen):
    """An integer range; ``step`` and ``log`` mean what they mean in ``suggest_int``."""

    low: int
    high: int
    step: int = 1
    log: bool = False


class FloatRange(Frozen):
    """A float range; ``log`` samples uniformly in log space."""

    low: float
    high: float
    log: bool = False


class Choice(Frozen):
    """A categorical choice among ``choices``."""

    # bool first: pydantic's smart union keeps true as true, not as the integer 1.
    choices: tuple[bool | int | float | str, ...]


@dataclass(frozen=True)
class Fixed:
    """A value that is not searched."""

    value: int | float | bool | str


ParamSpec = IntRange | FloatRange | Choice | Fixed


def _scalar_schema(name: str) -> dict[str, Any]:
    kind = _kind(name)
    if kind is bool:
        return {"type": "boolean"}
    if kind is str:
        return {"type": "string", "enum": list(KNOBS[name].values)}
    lo, hi = _limits(name) or (None, None)
    return {"type": "integer" if kind is int else "number", "minimum": lo, "maximum": hi}


def param_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of hyperparameter or knob ``name``: a value, a range or choices."""
    scalar = _scalar_schema(name)
    choices = {
        "type": "object",
        "properties": {"choices": {"type": "array", "items": scalar, "minItems": 1}},
        "required": ["choices"],
        "additionalProperties": False,
    }
    if _kind(name) in (bool, str):
        return {"anyOf": [scalar, choices], **_description(name)}
    kind = scalar["type"]
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
    return {"anyOf": [scalar, ranged, choices], **_description(name)}


def space_schema(*, fixed: bool, knobs: Sequence[str] = tuple(KNOBS)) -> dict[str, Any]:
    """The JSON Schema of a whole space (``fixed``: one value each, as under ``params:``):
    the six, required, and the optional ``knobs`` (a task's; by default every one)."""
    properties = {
        name: (
            {**param_schema(name)["anyOf"][0], **_description(name)}
            if fixed
            else param_schema(name)
        )
        for name in (*PARAM_NAMES, *knobs)
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(PARAM_NAMES),
        "additionalProperties": False,
    }


def _description(name: str) -> dict[str, str]:
    if name not in KNOBS:
        return {}
    return {"description": f"default {KNOBS[name].default}: {KNOBS[name].why}"}


def parse_param(field: str, name: str, value: Any) -> ParamSpec:
    """Hyperparameter or knob ``name`` as the file gives it at ``field``, checked."""
    kind = _kind(name)
    if kind in (bool, str):
        return _parse_choice_only(field, name, value)
    lo, hi = _limits(name) or (-math.inf, math.inf)
    what = "an integer" if kind is int else "a number"
    allowed = f"{what} in [{lo:g}, {hi:g}]"

    def checked(v: Any, sub: str = "") -> int | float:
        ok_type = isinstance(v, int) if kind is int else isinstance(v, int | float)
        if isinstance(v, bool) or not ok_type or not math.isfinite(v) or not (lo <= v <= hi):
            raise FieldProblem(field + sub, v, allowed)
        return kind(v)  # type: ignore[no-any-return]

    if not isinstance(value, dict):
        return Fixed(checked(value))
    if "choices" in value:
        extra = sorted(set(value) - {"choices"})
        if extra:
            raise FieldProblem(f"{field}.{extra[0]}", extra[0], "only `choices:` beside choices")
        choices = value["choices"]
        if not isinstance(choices, list) or not choices:
            raise FieldProblem(field + ".choices", choices, f"a non-empty list of {what}s")
        return Choice(choices=tuple(checked(c, ".choices") for c in choices))
    extra = sorted(set(value) - {"low", "high", "step", "log"})
    if extra:
        raise FieldProblem(f"{field}.{extra[0]}", extra[0], "one of the keys low, high, step, log")
    for bound in ("low", "high"):
        if bound not in value:
            raise FieldProblem(f"{field}.{bound}", None, f"{what} (ranges need low and high)")
    low, high = checked(value["low"], ".low"), checked(value["high"], ".high")
    if low > high:
        raise FieldProblem(field, {"low": low, "high": high}, "`low <= high`")
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise FieldProblem(field + ".log", log, "true or false")
    if log and low <= 0:
        raise FieldProblem(field + ".low", low, "a value > 0 when log: true")
    if kind is float:
        if "step" in value:
            raise FieldProblem(field + ".step", value["step"], "no step for a float range")
        return FloatRange(low=float(low), high=float(high), log=log)
    step = value.get("step", 1)
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise FieldProblem(field + ".step", step, "an integer >= 1")
    if log and step != 1:
        raise FieldProblem(field + ".step", step, "step 1 when log: true (Optuna's rule)")
    return IntRange(low=int(low), high=int(high), step=step, log=log)


def _parse_choice_only(field: str, name: str, value: Any) -> ParamSpec:
    """A true/false or named knob: one value, or ``{choices: [...]}`` (no ranges)."""
    knob = KNOBS[name]
    allowed = "true or false" if knob.kind is bool else f"one of {', '.join(knob.values)}"

    def checked(v: Any, sub: str = "") -> bool | str:
        ok = isinstance(v, bool) if knob.kind is bool else isinstance(v, str) and v in knob.values
        if not ok:
            raise FieldProblem(field + sub, v, allowed)
        return v  # type: ignore[no-any-return]

    if not isinstance(value, dict):
        return Fixed(checked(value))
    if set(value) != {"choices"}:
        extra = sorted(set(value) - {"choices"}) or ["choices"]
        raise FieldProblem(
            f"{field}.{extra[0]}", extra[0], f"`choices: [...]` ({allowed}) or a single value"
        )
    choices = value["choices"]
    if not isinstance(choices, list) or not choices:
        raise FieldProblem(field + ".choices", choices, f"a non-empty list, each {allowed}")
    return Choice(choices=tuple(checked(c, ".choices") for c in choices))


def knob_refused(field: str, name: str, knobs: Sequence[str], task: str) -> FieldProblem:
    """The problem of knob ``name`` at ``field`` that ``task`` (accepting ``knobs``) lacks."""
    return FieldProblem(field, name, f"a knob task {task} accepts: {', '.join(knobs) or 'none'}")


def parse_space(
    key: str, raw: Any, *, knobs: Sequence[str] = tuple(KNOBS), task: str = ""
) -> dict[str, ParamSpec]:
    """The six hyperparameters under ``key`` (``space`` or ``params``), each checked, and the
    optional ``knobs`` (those ``task`` accepts) the file names; any other knob is refused in
    one line naming the task, the knob and the knobs it accepts."""
    if not isinstance(raw, dict):
        raise FieldProblem(key, raw, "a mapping of the six hyperparameters to values or ranges")
    for name in raw:
        if name in KNOBS and name not in knobs:
            raise knob_refused(f"{key}.{name}", name, knobs, task)
        if name not in PARAM_NAMES and name not in knobs:
            raise FieldProblem(
                f"{key}.{name}", name, f"one of the keys {', '.join((*PARAM_NAMES, *knobs))}"
            )
    missing = [name for name in PARAM_NAMES if name not in raw]
    if missing:
        raise FieldProblem(
            f"{key}.{missing[0]}", None, f"a value or range (missing: {', '.join(missing)})"
        )
    space: dict[str, ParamSpec] = {}
    for name in param_names(raw):
        value = raw[name]
        if key == "params" and isinstance(value, dict):
            raise FieldProblem(
                f"{key}.{name}", value, "a single value under `params:` (ranges go in space)"
            )
        space[name] = parse_param(f"{key}.{name}", name, value)
    return space


def largest_value(spec: ParamSpec) -> int | float | bool | str:
    """The largest value ``spec`` can produce (a range's top on its step grid, a choice's
    max: true for a true/false knob that may be true)."""
    if isinstance(spec, IntRange):
        return spec.low + (spec.high - spec.low) // spec.step * spec.step
    if isinstance(spec, FloatRange):
        return spec.high
    if isinstance(spec, Choice):
        return max(spec.choices)  # type: ignore[type-var]  # one kind per knob
    return spec.value


def param_to_yaml(spec: ParamSpec) -> Any:
    """What a file writes for ``spec`` (the inverse of :func:`parse_param`)."""
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


def value_inside(spec: ParamSpec, value: object) -> bool:
    """Return whether ``value`` is one that ``spec`` can produce (on a range's step grid)."""
    if isinstance(spec, IntRange | FloatRange):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not spec.low <= value <= spec.high:
            return False
        if isinstance(spec, IntRange):
            return float(value).is_integer() and (int(value) - spec.low) % spec.step == 0
        return True
    # True == 1 in Python: a true/false value matches only a true/false choice, and back.
    if isinstance(spec, Choice):
        return any(_same(value, choice) for choice in spec.choices)
    return _same(value, spec.value)


def _same(value: object, choice: object) -> bool:
    return isinstance(value, bool) == isinstance(choice, bool) and bool(value == choice)
