"""Search-space ranges → ``trial.suggest_*``; the only module that calls them."""

from __future__ import annotations

import optuna

from lstm_tune.config import Choice, FloatRange, IntRange, ParamSpec, param_names, value_inside

Params = dict[str, int | float | bool | str]


def suggest(trial: optuna.trial.BaseTrial, space: dict[str, ParamSpec]) -> Params:
    """Sample the six hyperparameters and the knobs ``space`` names for ``trial``; fixed ones
    keep their value. A true/false or named knob is a categorical choice (the dashboard's
    importances and parallel coordinates show it like the six)."""
    params: Params = {}
    for name in param_names(space):
        spec = space[name]
        if isinstance(spec, IntRange):
            params[name] = trial.suggest_int(
                name, spec.low, spec.high, step=spec.step, log=spec.log
            )
        elif isinstance(spec, FloatRange):
            params[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log)
        elif isinstance(spec, Choice):
            params[name] = trial.suggest_categorical(name, list(spec.choices))  # type: ignore[assignment]  # never None
        else:
            # A one-choice categorical records the fixed value in the trial's params, so
            # every trial shows all its names (in the dashboard, the export, the logs).
            params[name] = trial.suggest_categorical(name, [spec.value])  # type: ignore[assignment]
    return params


def contains(space: dict[str, ParamSpec], params: Params) -> bool:
    """Return whether every value of ``params`` lies inside ``space``."""
    return all(value_inside(space[name], params[name]) for name in param_names(space))
