"""Best trial → a YAML file that :func:`lstm_tune.config.load_spec` loads back unchanged."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from lstm_tune.config import StudySpec, parse_spec, spec_to_dict
from lstm_tune.errors import StorageError
from lstm_tune.storages import SPEC_ATTR, open_storage, redact_url
from lstm_tune.tuning.studies import trial_spec

VERSIONED_PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "optuna", "lstm-tune")


def installed_versions() -> dict[str, str]:
    """Versions of the packages that decide how a config trains, as installed here."""
    versions: dict[str, str] = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def best_config(storage_url: str, study_name: str, *, data_path: str | None = None) -> StudySpec:
    """Return the study's best complete trial as a one-config :class:`StudySpec`.

    The settings are those the trial ran with (its run's spec); ``data_path`` replaces the
    data file it names, e.g. where the data lives on this machine.
    """
    storage = open_storage(storage_url, must_exist=True)  # a typo must not create a file
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise StorageError(
            f"no study named {study_name!r} in {redact_url(storage_url)}; "
            f"see the names with `optuna studies --storage URL`"
        ) from None
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise StorageError(
            f"study {study_name!r} has no complete trial yet ({len(study.trials)} trials, "
            f"none complete); run `lstm-tune search` until one completes"
        )
    best = study.best_trial
    ran_with = trial_spec(study, best)
    if ran_with is None:
        raise StorageError(
            f"study {study_name!r} was not created by lstm-tune (no {SPEC_ATTR!r} attribute), "
            f"so its data and training settings are unknown"
        )
    if data_path is not None:
        data = {**ran_with.get("data", {}), "path": data_path}
        if "source" in data:  # a local file instead of the task's download
            data["source"] = "csv"
        ran_with["data"] = data
    searched = parse_spec(ran_with, f"study {study_name!r}")
    doc = spec_to_dict(searched, params=best.params)
    doc["result"] = {
        "value": float(best.value),  # type: ignore[arg-type]
        "best_epoch": int(best.user_attrs.get("best_epoch", searched.training.epochs)),
        "study_name": study_name,
        "trial_number": best.number,
        "versions": installed_versions(),
    }
    return parse_spec(doc, f"best trial {best.number} of study {study_name!r}")


def write_config(spec: StudySpec, path: str | Path) -> Path:
    """Write a one-config spec as YAML to ``path`` and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = spec_to_dict(spec, params=spec.fixed_params())
    header = "# Exported by lstm-tune; retrain with: lstm-tune train <this file> --out DIR\n"
    out.write_text(header + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return out
