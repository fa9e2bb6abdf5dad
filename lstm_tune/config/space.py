"""The search space of a study file: the six hyperparameters, the kind and limits of each, and
what a file may give for one (a value, ``{low, high[, step, log]}`` or ``{choices: [...]}``).

Checked by hand rather than by pydantic models: one value may be a scalar, a range or a choice
list, and each problem must be worded with the exact field (``space.hidden_size.low``) and rule,
which a union of pydantic models reports only as a list of every member's failure. The JSON
Schema of the same rules is written out here beside the checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from lstm_tune.config.wording import FieldProblem

__all__ = [
    "PARAM_DEFAULTS",
    "PARAM_KINDS",
    "PARAM_LIMITS",
    "PARAM_NAMES",
    "Choice",
    "FloatRange",
    "Fixed",
    "Frozen",
    "IntRange",
    "ParamSpec",
    "param_to_yaml",
    "parse_param",
    "parse_space",
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
# config with these. The six are in every study, so none has a default.
PARAM_DEFAULTS: dict[str, Any] = {}
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

    choices: tuple[int | float, ...]


@dataclass(frozen=True)
class Fixed:
    """A value that is not searched."""

    value: int | float


ParamSpec = IntRange | FloatRange | Choice | Fixed


def param_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of hyperparameter ``name``: a value, a range or choices."""
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


def space_schema(*, fixed: bool) -> dict[str, Any]:
    """The JSON Schema of a whole space (``fixed``: one value each, as under ``params:``)."""
    properties = {
        name: (
            {k: v for k, v in param_schema(name)["anyOf"][0].items()}
            if fixed
            else param_schema(name)
        )
        for name in PARAM_NAMES
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(PARAM_NAMES),
        "additionalProperties": False,
    }


def parse_param(field: str, name: str, value: Any) -> ParamSpec:
    """Hyperparameter ``name`` as the file gives it at ``field``, checked."""
    kind = PARAM_KINDS[name]
    lo, hi = PARAM_LIMITS[name]
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


def parse_space(key: str, raw: Any) -> dict[str, ParamSpec]:
    """The six hyperparameters under ``key`` (``space`` or ``params``), each checked."""
    if not isinstance(raw, dict):
        raise FieldProblem(key, raw, "a mapping of the six hyperparameters to values or ranges")
    for name in raw:
        if name not in PARAM_NAMES:
            raise FieldProblem(f"{key}.{name}", name, f"one of the keys {', '.join(PARAM_NAMES)}")
    missing = [name for name in PARAM_NAMES if name not in raw]
    if missing:
        raise FieldProblem(
            f"{key}.{missing[0]}", None, f"a value or range (missing: {', '.join(missing)})"
        )
    space: dict[str, ParamSpec] = {}
    for name in PARAM_NAMES:
        value = raw[name]
        if key == "params" and isinstance(value, dict):
            raise FieldProblem(
                f"{key}.{name}", value, "a single value under `params:` (ranges go in space)"
            )
        space[name] = parse_param(f"{key}.{name}", name, value)
    return space


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
