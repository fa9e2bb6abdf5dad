"""Study-file sampler and pruner settings → Optuna sampler and pruner objects.

:func:`build_strategy` builds both once per process; building is also the check of their
options, so a run builds them before it touches the storage or reads the data
(:func:`sized_for_data` rebuilds Hyperband once the data's size gives its maximum in
checkpoints, with early stopping).
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from lstm_tune.config import PRUNER_CLASSES, SAMPLER_CLASSES, PrunerSpec, SamplerSpec, StudySpec
from lstm_tune.errors import ConfigError

# Built from config's table of names, so a name a study file may give always has a class.
_SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    name: getattr(optuna.samplers, cls) for name, cls in SAMPLER_CLASSES.items()
}
_PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    name: getattr(optuna.pruners, cls) for name, cls in PRUNER_CLASSES.items()
}


def _check_kinds(
    kind: str, name: str, factory: Callable[..., Any], options: dict[str, Any]
) -> None:
    """Each option must have a type its keyword is annotated with (Optuna takes
    ``n_startup_trials: x`` without a word and fails mid-search with a TypeError)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    for option, value in options.items():
        allowed = _simple_types(parameters[option].annotation) if option in parameters else None
        if allowed is None:
            continue  # callables, sequences, objects: Optuna checks them itself
        if float in allowed:
            allowed = (*allowed, int)
        if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
            names = " or ".join(
                sorted({"null" if t is type(None) else t.__name__ for t in allowed})
            )
            raise ConfigError(
                f"search.{kind}.options.{option}: got {value!r}; expected {names} "
                f"(the {name!r} {kind}'s option)"
            )


_PLAIN_TYPES: dict[str, type] = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "None": type(None),
}


def _simple_types(annotation: Any) -> tuple[type, ...] | None:
    """The plain types an annotation such as ``'bool | None'`` allows, or None when it names
    anything richer (Optuna's annotations are strings: ``from __future__ import annotations``,
    and their names are not importable at run time, so typing.get_type_hints cannot help)."""
    if isinstance(annotation, str):
        names = [part.strip() for part in annotation.split("|")]
        if not all(n in _PLAIN_TYPES for n in names):
            return None
        return tuple(_PLAIN_TYPES[n] for n in names)
    members = typing.get_args(annotation) if typing.get_origin(annotation) else (annotation,)
    plain = tuple(_PLAIN_TYPES.values())
    return tuple(members) if members and all(m in plain for m in members) else None


# Numeric options Optuna's constructors take without a check (Optuna 4/5: a negative
# ``sigma0``, ``n_startup_trials: -1``, ``n_ei_candidates: 0``, Hyperband's
# ``reduction_factor: 1``); they fail later, mid-search, or never run the intended algorithm.
# Option names mean the same in every sampler and pruner that has them. (Optuna checks its
# other numeric options itself, e.g. the median pruner's, and those errors pass through.)
# Each entry: the bound and whether the value may equal it.
_LOWER_BOUNDS: dict[str, tuple[float, bool]] = {
    "n_startup_trials": (0, True),
    "n_ei_candidates": (1, True),
    "prior_weight": (0, False),
    "sigma0": (0, False),
    "popsize": (1, True),
    "inc_popsize": (1, True),
    "min_resource": (1, True),
    "max_resource": (1, True),
    "reduction_factor": (2, True),
}


def _check_bounds(kind: str, name: str, options: dict[str, Any]) -> None:
    for option, value in options.items():
        bound = _LOWER_BOUNDS.get(option)
        if bound is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        lowest, inclusive = bound
        if value < lowest or (value == lowest and not inclusive):
            allowed = f">= {lowest:g}" if inclusive else f"> {lowest:g}"
            raise ConfigError(
                f"search.{kind}.options.{option}: got {value!r}; expected a number {allowed} "
                f"(the {name!r} {kind}'s option)"
            )


def _construct(
    kind: str, name: str, factory: Callable[..., Any], options: dict[str, Any], **defaults: Any
) -> Any:
    _check_kinds(kind, name, factory, options)
    _check_bounds(kind, name, options)
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


def build_pruner(spec: PrunerSpec, max_steps: int | None = None) -> optuna.pruners.BasePruner:
    """Return the pruner ``spec`` names with its options.

    ``max_steps`` (the most steps a trial may report) becomes Hyperband's ``max_resource``
    unless the options give one. Hyperband's default, ``"auto"``, takes the steps of the first
    complete trial, which with early stopping may be one that stopped short of the maximum.
    """
    defaults: dict[str, Any] = {}
    if spec.name == "hyperband" and max_steps is not None:
        defaults["max_resource"] = max_steps
    return _construct("pruner", spec.name, _PRUNERS[spec.name], dict(spec.options), **defaults)  # type: ignore[no-any-return]


def max_trial_steps(spec: StudySpec, fit_size: int | None) -> int | None:
    """The most steps a trial of ``spec`` may report to the pruner when it may stop early:
    ``training.epochs``, or with ``report_every`` the checkpoints in that many epochs of
    ``fit_size`` training examples (None while the data's size is unknown). None without
    early stopping: every trial then runs the maximum, and pruners keep today's defaults."""
    training = spec.training
    if training.early_stopping is None:
        return None
    if training.report_every is None:
        return training.epochs
    if fit_size is None:
        return None
    return max(1, training.epochs * (fit_size // training.report_every))


def trial_seed(study_seed: int, trial_number: int) -> int:
    """The seed of trial ``trial_number``'s sampling: a hash of the study seed and the number.

    Not ``study_seed + trial_number``: studies seeded 1 and 2 would then share all but one
    of their trials' seeds.
    """
    entropy = np.random.SeedSequence([study_seed & 0xFFFF_FFFF, trial_number])
    return int(entropy.generate_state(1)[0])


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """A sampler whose randomness comes from (study seed, trial number), not from the process.

    Every worker process builds its own sampler. Seeded once per process, as Optuna's
    samplers are, two workers on one study (``--workers``, compose replicas, machines) draw the
    same random numbers and propose the same configs, and a resumed study replays its first
    trials' configs. Trial numbers are unique in a study whichever worker runs the trial, so a
    fresh inner sampler seeded from the trial number gives each trial its own draws, and a
    single worker with a fixed seed still repeats the same study. (The same idea as Optuna's
    PR #967, kept outside Optuna by composition: the inner sampler is built by ``factory`` for
    each trial and every hook of that trial goes to it.) Samplers keep no state between trials
    that matters here: TPE and GP read the history from the study, CMA-ES keeps its state in
    trial attributes and QMC its position in a study attribute.
    """

    def __init__(self, factory: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self.factory = factory
        self.seed = seed
        self._by_trial: dict[int, optuna.samplers.BaseSampler] = {}
        self._lock = threading.Lock()

    def __str__(self) -> str:
        return f"TrialSeeded({self.factory(self.seed)})"

    def inner(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        """The sampler of ``trial``, built on first use from its number."""
        with self._lock:
            sampler = self._by_trial.get(trial.number)
            if sampler is None:
                sampler = self.factory(trial_seed(self.seed, trial.number))
                self._by_trial[trial.number] = sampler
            return sampler

    def before_trial(self, study: optuna.study.Study, trial: FrozenTrial) -> None:
        """Build the trial's own sampler and let it prepare the trial."""
        self.inner(trial).before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.study.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """The trial's sampler's relative search space."""
        return self.inner(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self,
        study: optuna.study.Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        """Sample with the trial's own sampler."""
        return self.inner(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.study.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """Sample with the trial's own sampler."""
        return self.inner(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.study.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        """Let the trial's sampler finish the trial, then forget it."""
        try:
            self.inner(trial).after_trial(study, trial, state, values)
        finally:
            with self._lock:
                self._by_trial.pop(trial.number, None)

    def reseed_rng(self) -> None:
        """Nothing to do: every trial's randomness is fixed by its number."""


def build_trial_seeded_sampler(spec: SamplerSpec, seed: int) -> TrialSeededSampler:
    """The sampler ``spec`` names, seeded per trial from ``seed`` (or the options' ``seed``).

    QMC is the exception inside: its scrambling seed must be the same for the whole study (its
    points are one sequence, and each trial takes the next index from the study), so only the
    random sampler it falls back to for the first trial is seeded per trial.
    """
    options = dict(spec.options)
    study_seed = int(options.pop("seed", seed))
    build_sampler(spec, study_seed)  # bad options fail now, with the study file's field name

    def factory(per_trial: int) -> optuna.samplers.BaseSampler:
        if spec.name == "qmc":
            fallback = optuna.samplers.RandomSampler(seed=per_trial)
            return _SAMPLERS["qmc"](**options, seed=study_seed, independent_sampler=fallback)
        return _SAMPLERS[spec.name](**options, seed=per_trial)

    return TrialSeededSampler(factory, study_seed)


@dataclass(frozen=True)
class Strategy:
    """A study's sampler (seeded per trial) and pruner, built once from its spec."""

    sampler: TrialSeededSampler
    pruner: optuna.pruners.BasePruner


def build_strategy(spec: StudySpec, *, fit_size: int | None = None) -> Strategy:
    """The sampler and pruner ``spec`` names; a bad option raises :class:`ConfigError` naming
    its field (``search.sampler.options.X``), the value and what is allowed. ``fit_size``
    (training examples, once the data is loaded) sizes Hyperband's maximum in checkpoints
    (:func:`max_trial_steps`)."""
    return Strategy(
        sampler=build_trial_seeded_sampler(spec.search.sampler, spec.seed),
        pruner=build_pruner(spec.search.pruner, max_trial_steps(spec, fit_size)),
    )


def sized_for_data(strategy: Strategy, spec: StudySpec, fit_size: int) -> Strategy:
    """``strategy`` (built before the data was read) with its pruner rebuilt when its maximum
    needs the data's size (Hyperband counting checkpoints, with early stopping); else as is."""
    if max_trial_steps(spec, None) is not None or max_trial_steps(spec, fit_size) is None:
        return strategy
    if spec.search.pruner.name != "hyperband":
        return strategy
    pruner = build_pruner(spec.search.pruner, max_trial_steps(spec, fit_size))
    return dataclasses.replace(strategy, pruner=pruner)
