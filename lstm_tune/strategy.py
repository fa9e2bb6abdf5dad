"""Study-file sampler and pruner settings → Optuna sampler and pruner objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from lstm_tune.config import PrunerSpec, SamplerSpec
from lstm_tune.errors import ConfigError

_SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "gp": optuna.samplers.GPSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "qmc": optuna.samplers.QMCSampler,
}
_PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "threshold": optuna.pruners.ThresholdPruner,
    "none": optuna.pruners.NopPruner,
}


def _construct(
    kind: str, name: str, factory: Callable[..., Any], options: dict[str, Any], **defaults: Any
) -> Any:
    try:
        return factory(**{**defaults, **options})
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"search.{kind}.options: {options!r} are not valid for the {name!r} {kind} ({exc})"
        ) from None


def build_sampler(spec: SamplerSpec, seed: int) -> optuna.samplers.BaseSampler:
    """Return the sampler ``spec`` names, seeded with ``seed`` unless its options give one."""
    return _construct(  # type: ignore[no-any-return]
        "sampler", spec.name, _SAMPLERS[spec.name], dict(spec.options), seed=seed
    )


def build_pruner(spec: PrunerSpec) -> optuna.pruners.BasePruner:
    """Return the pruner ``spec`` names with its options."""
    return _construct("pruner", spec.name, _PRUNERS[spec.name], dict(spec.options))  # type: ignore[no-any-return]
