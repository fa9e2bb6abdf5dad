"""Create or resume a study safely, and keep the spec each of its trials ran with.

* **One creator.** The study is created, its spec recorded and its ``search.enqueue`` configs
  and ``search.warm_start``'s (:mod:`lstm_tune.tuning.warm_start`) queued under the
  database's set-up lock, so workers starting together neither die nor queue the configs
  once each.
* **A study knows its spec.** The study's user attribute ``lstm_tune_spec`` is the spec its
  trials mean. Resuming with a study file that changes the search space or what a trial means
  stops with one line naming the changed fields (see :mod:`lstm_tune.tuning.specdiff` for what may
  change freely) unless the caller accepts the change, which then holds from the next trial.
* **Each trial knows its spec.** Every spec a run uses is stored once in the study
  (``lstm_tune_spec:<id>``, the id a hash of the document) and each trial records the id
  (``lstm_tune_spec_id``), so ``export-best`` writes what the best trial actually ran with,
  e.g. its data path rather than the first run's.

No TensorFlow here: ``create-study`` and the read-only commands import this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, check_distribution_compatibility
from optuna.trial import FrozenTrial

from lstm_tune.config import StudySpec, parse_spec, spec_to_dict
from lstm_tune.errors import ConfigError
from lstm_tune.storages import SPEC_ATTR, absolute_url, open_storage, redact_url
from lstm_tune.tuning.sampler_and_pruner import Strategy, build_strategy
from lstm_tune.tuning.space import suggest
from lstm_tune.tuning.specdiff import Change, meaningful_changes
from lstm_tune.tuning.warm_start import read_warm_start

__all__ = [
    "SPEC_ID_ATTR",
    "SPEC_PREFIX",
    "WORKER_ATTR",
    "open_study",
    "spec_id",
    "study_doc",
    "tag_trials",
    "trial_spec",
]

# Trial user attribute: the id of the spec the trial ran with.
SPEC_ID_ATTR = "lstm_tune_spec_id"
# Study user attributes holding each spec a run used, by id.
SPEC_PREFIX = "lstm_tune_spec:"
# Trial user attribute: which worker ran the trial (host name and process id), so a pool's
# trials can be traced to a machine or container.
WORKER_ATTR = "lstm_tune_worker"
_log = logging.getLogger("lstm_tune.tuning.studies")


def spec_id(doc: dict[str, Any]) -> str:
    """A short stable id of a study document (same document, same id, on every machine)."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def open_study(
    spec: StudySpec,
    *,
    storage_url: str,
    study_name: str,
    accept_changes: bool = False,
    strategy: Strategy | None = None,
) -> optuna.study.Study:
    """Create the study or resume it; stop if ``spec`` changes what the study's trials mean.

    ``strategy`` is the sampler and pruner already built from ``spec`` (by a caller that
    checked them before loading data); without it they are built here.

    Raises :class:`ConfigError` (one line: the changed fields and the ways on) when the stored
    spec differs in a field that is not free to change and ``accept_changes`` is false, or
    when Optuna cannot mix the old and new ranges in one study (e.g. log to linear).
    """
    # Sampler and pruner options are checked before the storage is touched: a bad option
    # leaves no new database file or study row behind.
    if strategy is None:
        strategy = build_strategy(spec)
    storage = open_storage(storage_url)
    doc = study_doc(spec)
    warm_start = None
    if spec.search.warm_start is not None and not _has_spec(storage, study_name):
        warm_start = read_warm_start(
            spec, spec.search.warm_start, storage_url=storage_url, storage=storage
        )
    # A grpc:// storage has no lock of its own: its proxy holds the one database connection
    # pool, and Optuna's load_if_exists settles two creators of one study.
    lock = getattr(storage, "setup_lock", contextlib.nullcontext)
    with lock():
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            direction=spec.search.direction,
            sampler=strategy.sampler,
            pruner=strategy.pruner,
            load_if_exists=True,
        )
        attrs = study.user_attrs
        if SPEC_ATTR not in attrs:
            # First open of this study: queue the configs to run first, then record what it
            # searches (last: a warm start that fails is tried again by the next open).
            for config in spec.search.enqueue:
                study.enqueue_trial(config, skip_if_exists=True)
            if warm_start is not None:
                warm_start.queue(study)
            study.set_user_attr(SPEC_ATTR, doc)
        else:
            changes = meaningful_changes(_as_written_now(attrs[SPEC_ATTR]), doc)
            if changes and not accept_changes:
                raise ConfigError(_changed_message(study_name, storage_url, changes))
            if changes:
                _require_compatible_space(study, spec, study_name)
                study.set_user_attr(SPEC_ATTR, doc)
                _log.warning(
                    "study %r: accepted changed %s from the next trial on",
                    study_name,
                    ", ".join(change.path for change in changes),
                )
        key = SPEC_PREFIX + spec_id(doc)
        if key not in attrs:
            study.set_user_attr(key, doc)
        if not study.metric_names:
            # The dashboard and plots show the metric's name instead of "Objective 0"
            # (studies created before metric names were recorded get it on their next run).
            study.set_metric_names([spec.search.metric])
    return study


def _has_spec(storage: Any, study_name: str) -> bool:
    """Whether the study exists and has recorded its spec (it was created before)."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return False
    return SPEC_ATTR in storage.get_study_user_attrs(study_id)


def study_doc(spec: StudySpec) -> dict[str, Any]:
    """The document a study stores for ``spec`` (:func:`spec_to_dict`), with any password in
    ``search.warm_start.storage`` hidden: study attributes are shown by the dashboard."""
    doc = spec_to_dict(spec)
    warm = doc["search"].get("warm_start")
    if warm is not None and "storage" in warm:
        doc["search"]["warm_start"] = {**warm, "storage": redact_url(warm["storage"])}
    return doc


def _as_written_now(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored spec in today's layout (defaults of fields added since filled in), so that a
    study created by an older lstm-tune is compared field by field, not by format."""
    try:
        return study_doc(parse_spec(stored, "stored spec"))
    except ConfigError:
        return stored


def tag_trials(
    objective: Callable[[optuna.Trial], float], doc: dict[str, Any]
) -> Callable[[optuna.Trial], float]:
    """``objective`` that first records on each trial its spec's id and the worker running it."""
    ident = spec_id(doc)
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def tagged(trial: optuna.Trial) -> float:
        trial.set_user_attr(SPEC_ID_ATTR, ident)
        trial.set_user_attr(WORKER_ATTR, worker)
        return objective(trial)

    return tagged


def trial_spec(study: optuna.study.Study, trial: FrozenTrial) -> dict[str, Any] | None:
    """The spec document ``trial`` ran with; the study's spec for trials that did not say."""
    attrs = study.user_attrs
    ident = trial.user_attrs.get(SPEC_ID_ATTR)
    if ident is not None and SPEC_PREFIX + ident in attrs:
        return dict(attrs[SPEC_PREFIX + ident])
    return dict(attrs[SPEC_ATTR]) if SPEC_ATTR in attrs else None


def _changed_message(study_name: str, storage_url: str, changes: list[Change]) -> str:
    listed = "; ".join(change.describe() for change in changes)
    return (
        f"study {study_name!r} in {absolute_url(storage_url)} was created from another spec: "
        f"{listed}. Start a new study with --study-name NEW_NAME, or pass --accept-changes "
        f"to record this spec for the study's trials from the next one on"
    )


def space_distributions(spec: StudySpec) -> dict[str, BaseDistribution]:
    """The Optuna distributions ``spec``'s search space suggests from (no storage touched)."""
    optuna.logging.disable_default_handler()
    try:
        scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    finally:
        optuna.logging.enable_default_handler()
    trial = scratch.ask()
    suggest(trial, spec.space)
    return dict(trial.distributions)


def _require_compatible_space(study: optuna.study.Study, spec: StudySpec, name: str) -> None:
    """Refuse a space Optuna would reject at the first trial (log on/off, kind, choices)."""
    new = space_distributions(spec)
    seen: dict[str, set[str]] = {}
    for trial in study.get_trials(deepcopy=False):
        for param, old in trial.distributions.items():
            if param not in new or repr(old) in seen.setdefault(param, set()):
                continue
            seen[param].add(repr(old))
            try:
                check_distribution_compatibility(old, new[param])
            except ValueError as exc:
                raise ConfigError(
                    f"space.{param}: --accept-changes cannot apply this change to study "
                    f"{name!r}: its trials sampled {old}, the study file asks for "
                    f"{new[param]} ({exc}); start a new study with --study-name NEW_NAME"
                ) from None
