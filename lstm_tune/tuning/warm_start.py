"""Warm start: the best configs of an earlier study queued first in a new one.

``search.warm_start: {study: NAME, storage: URL, top: K}`` (or ``search --warm-start-from
NAME``) takes the earlier study's ``K`` best complete trials with distinct params, best first
by that study's direction, and queues each in this study with ``enqueue_trial`` when this
study is created (:func:`lstm_tune.tuning.studies.open_study` reads them when the study has
no spec yet and queues them once, under the set-up lock, beside ``search.enqueue``). What
this study searches decides what is queued:

* a knob the earlier config has keeps its value; outside this study's space, the config is
  **skipped**, said in one line;
* a knob this study's space lists and the earlier config lacks (a knob added since) takes
  this study's value when the space fixes it, else the knob's default (the value that builds
  today's model, :data:`lstm_tune.config.PARAM_DEFAULTS`; a default may be a function of the
  config, as ``embedding_size`` defaults to ``hidden_size``) when the space allows it; a
  searched knob with no default, or whose default the space excludes, is left to the sampler,
  as Optuna does for a param an enqueued trial does not give;
* a knob the earlier config has and this space does not list is kept only at its default
  (what this study builds without it), else the config is skipped.

No TensorFlow here: ``create-study`` imports this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from lstm_tune.config import (
    PARAM_DEFAULTS,
    Fixed,
    ParamSpec,
    StudySpec,
    WarmStartSpec,
    value_inside,
)
from lstm_tune.errors import StorageError
from lstm_tune.storages import open_storage, redact_url
from lstm_tune.tuning.finalize import top_trials

__all__ = ["WARM_START_ATTR", "WarmStart", "completed_config", "read_warm_start"]

# Trial user attribute of a queued config: where it came from ("<study> trial <number>").
WARM_START_ATTR = "lstm_tune_warm_start"
_log = logging.getLogger("lstm_tune.tuning.warm_start")

Params = dict[str, Any]


_NO_DEFAULT = object()


def _default(name: str, params: Params, defaults: dict[str, Any]) -> Any:
    """Knob ``name``'s default for a config of ``params`` (``_NO_DEFAULT`` if it has none)."""
    if name not in defaults:
        return _NO_DEFAULT
    default = defaults[name]
    return default(params) if callable(default) else default


def completed_config(
    space: dict[str, ParamSpec], params: Params, defaults: dict[str, Any] = PARAM_DEFAULTS
) -> tuple[Params | None, str]:
    """``params`` of an earlier trial as a config of ``space`` (see the module doc), or None
    and why it is outside ``space``."""
    config: Params = {}
    for name, value in params.items():
        if name in space:
            if not value_inside(space[name], value):
                return None, f"{name}={value!r} is outside this study's space"
            config[name] = value
        elif _default(name, params, defaults) != value:
            return None, f"{name}={value!r}, and this study does not search {name}"
    for name, spec in space.items():
        if name in config:
            continue
        if isinstance(spec, Fixed):
            config[name] = spec.value
            continue
        default = _default(name, {**params, **config}, defaults)
        if default is not _NO_DEFAULT and value_inside(spec, default):
            config[name] = default
        # else: left to the sampler (no default, or one the space excludes)
    return config, ""


@dataclass(frozen=True)
class WarmStart:
    """What a warm start queues (each config with its origin, best first) and the lines saying
    which earlier configs it skips."""

    configs: tuple[tuple[Params, str], ...]
    skipped: tuple[str, ...]

    def queue(self, study: optuna.study.Study, say: Callable[[str], None] = _log.warning) -> None:
        """Queue the configs in ``study`` (each once) and ``say`` the skips, one line each."""
        for line in self.skipped:
            say(line)
        for config, origin in self.configs:
            study.enqueue_trial(config, user_attrs={WARM_START_ATTR: origin}, skip_if_exists=True)


def read_warm_start(
    spec: StudySpec, warm: WarmStartSpec, *, storage_url: str, storage: Any
) -> WarmStart:
    """The earlier study's best configs that fit ``spec``'s space. ``storage`` is this study's
    (opened from ``storage_url``), reused when the earlier study lives there too. Read before
    this study's set-up lock is taken: opening another SQLite file in the same directory takes
    that directory's lock too."""
    url = warm.storage or storage_url
    source = storage if url == storage_url else open_storage(url, must_exist=True)
    try:
        earlier = optuna.load_study(study_name=warm.study, storage=source)
    except KeyError:
        raise StorageError(
            f"search.warm_start.study: no study named {warm.study!r} in {redact_url(url)}; "
            f"see the names with `optuna studies --storage URL`"
        ) from None
    configs: list[tuple[Params, str]] = []
    skipped: list[str] = []
    for trial in top_trials(earlier, warm.top):
        config, why = completed_config(spec.space, trial.params)
        origin = f"{warm.study} trial {trial.number}"
        if config is None:
            skipped.append(f"warm start: skipped {origin}: {why}")
        else:
            configs.append((config, origin))
    return WarmStart(tuple(configs), tuple(skipped))
