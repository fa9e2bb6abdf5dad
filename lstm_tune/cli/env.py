"""What the environment and the defaults give a command: the only module in lstm-tune that
reads environment variables.

Precedence, for every setting here: the flag > the environment variable > the default. The
default place of a study's files follows one rule: the study's directory is the study file's
directory when the command has a study file, else ``studies/`` (relative to where the command
runs); its storage is the SQLite file ``<study dir>/<name>.db``, its artifacts
``<study dir>/artifacts``. That rule lives in :mod:`lstm_tune.api`, which the Python API shares.
"""

from __future__ import annotations

import os
from pathlib import Path

from lstm_tune.api import (
    ARTIFACTS_DIR_NAME,
    STORAGE_ENV,
    STUDIES_DIR,
    default_storage,
    study_dir,
)
from lstm_tune.config import (
    MlflowSpec,
    StudySpec,
    TrackingSpec,
    WarmStartSpec,
    load_spec,
    with_data,
    with_data_path,
)
from lstm_tune.runtime.workers_and_threads import THREADS_ENV, Threads, parse_threads

__all__ = [
    "ARTIFACT_DIR_ENV",
    "CACHE_ENV",
    "DATA_PATH_ENV",
    "MLFLOW_URI_ENV",
    "STORAGE_ENV",
    "STUDIES_DIR",
    "default_artifact_dir_text",
    "default_cache_dir",
    "default_storage",
    "default_storage_text",
    "given_storage",
    "load_with_overrides",
    "pool_parent_from_env",
    "resolve_artifact_dir",
    "resolve_data_path",
    "resolve_storage",
    "study_dir",
    "study_dir_text",
    "threads_from_env",
    "with_observers",
    "with_overrides",
    "worker_environment",
]

CACHE_ENV = "LSTM_TUNE_CACHE_DIR"
ARTIFACT_DIR_ENV = "LSTM_TUNE_ARTIFACT_DIR"
DATA_PATH_ENV = "LSTM_TUNE_DATA_PATH"
# An MLflow tracking URI may hold a password: a pool's workers get it here, never in argv.
MLFLOW_URI_ENV = "LSTM_TUNE_MLFLOW_TRACKING_URI"


def study_dir_text(*, study_file: bool) -> str:
    """:func:`study_dir` as ``--help`` states it, for a command with or without a study file."""
    return "<study dir>" if study_file else str(STUDIES_DIR)


def default_storage_text(*, study_file: bool) -> str:
    """:func:`default_storage` as ``--help`` states it."""
    return f"sqlite:///{study_dir_text(study_file=study_file)}/<name>.db"


def default_artifact_dir_text(*, study_file: bool) -> str:
    """The default of :func:`resolve_artifact_dir` as ``--help`` states it."""
    return f"{study_dir_text(study_file=study_file)}/{ARTIFACTS_DIR_NAME}"


def given_storage(flag: str | None) -> str | None:
    """The storage URL the user gave: ``--storage``, else ``$LSTM_TUNE_STORAGE``; empty is
    unset."""
    return flag or os.environ.get(STORAGE_ENV) or None


def resolve_storage(flag: str | None, study_name: str, study_file: str | None = None) -> str:
    """Storage URL by precedence: ``--storage`` > ``$LSTM_TUNE_STORAGE`` > the SQLite file
    of :func:`default_storage`."""
    return given_storage(flag) or default_storage(study_name, study_file)


def worker_environment(storage: str, spec: StudySpec | None = None) -> dict[str, str]:
    """This process's environment for a pool's worker processes, with the storage URL in
    ``$LSTM_TUNE_STORAGE`` (and ``spec``'s MLflow tracking URI, if any, in
    ``$LSTM_TUNE_MLFLOW_TRACKING_URI``): a URL may hold a password, and a command line is
    readable by every user of the machine."""
    env = {**os.environ, STORAGE_ENV: storage}
    if spec is not None and spec.tracking.mlflow is not None:
        env[MLFLOW_URI_ENV] = spec.tracking.mlflow.tracking_uri
    return env


def resolve_artifact_dir(flag: str | None, study_file: str | None = None) -> str:
    """Artifact dir by precedence: ``--artifact-dir`` > ``$LSTM_TUNE_ARTIFACT_DIR`` >
    ``<study dir>/artifacts``."""
    given = flag or os.environ.get(ARTIFACT_DIR_ENV)
    return given or str(study_dir(study_file) / ARTIFACTS_DIR_NAME)


def resolve_data_path(flag: str | None) -> str | None:
    """Local data file by precedence: ``--data-path`` > ``$LSTM_TUNE_DATA_PATH`` > study file.

    The variable lets a pool (compose, a machine without internet) point every worker at a
    local copy without repeating the whole worker command; empty means unset.
    """
    return flag or os.environ.get(DATA_PATH_ENV) or None


def default_cache_dir() -> str:
    """Where tokenized corpora are cached: ``$LSTM_TUNE_CACHE_DIR`` or the user cache dir."""
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "lstm-tune")


def load_with_overrides(path: str, data_path: str | None) -> StudySpec:
    """The study file at ``path`` with :func:`with_overrides` applied."""
    return with_overrides(load_spec(path), data_path)


def with_overrides(spec: StudySpec, data_path: str | None) -> StudySpec:
    """``spec`` with the data path the flag or environment gives and the default cache dir."""
    data_path = resolve_data_path(data_path)
    if data_path is not None:
        spec = with_data_path(spec, data_path)
    if "cache_dir" in type(spec.data).model_fields and spec.data.cache_dir is None:
        spec = with_data(spec, cache_dir=default_cache_dir())
    return spec


def with_observers(
    spec: StudySpec, *, tensorboard: str | None = None, mlflow_uri: str | None = None
) -> StudySpec:
    """``spec`` with what watches its trials by precedence: ``--tensorboard`` (made absolute)
    > ``training.tensorboard``; ``--mlflow-tracking-uri`` > ``$LSTM_TUNE_MLFLOW_TRACKING_URI``
    > ``tracking.mlflow.tracking_uri`` (the file's experiment kept)."""
    if tensorboard:
        training = spec.training.model_copy(
            update={"tensorboard": str(Path(tensorboard).resolve())}
        )
        spec = spec.model_copy(update={"training": training})
    uri = mlflow_uri or os.environ.get(MLFLOW_URI_ENV) or None
    if uri is not None:
        given = spec.tracking.mlflow
        experiment = given.experiment if given is not None else None
        mlflow = MlflowSpec(tracking_uri=uri, experiment=experiment)
        spec = spec.model_copy(update={"tracking": TrackingSpec(mlflow=mlflow)})
    return spec


def with_warm_start(spec: StudySpec, study: str | None) -> StudySpec:
    """``spec`` warm-started from the earlier ``study`` in its own storage (the flag
    ``--warm-start-from``), keeping the file's ``top``; unchanged without a name."""
    if not study:
        return spec
    file_warm = spec.search.warm_start
    warm = WarmStartSpec(study=study, **({"top": file_warm.top} if file_warm else {}))
    return spec.model_copy(update={"search": spec.search.model_copy(update={"warm_start": warm})})


def threads_from_env() -> Threads | None:
    """``$LSTM_TUNE_THREADS`` parsed (checked before anything is written), or None."""
    text = os.environ.get(THREADS_ENV, "").strip()
    return parse_threads(text) if text else None


def pool_parent_from_env() -> int | None:
    """The pid of the ``--workers N`` pool that started this process, or None if no pool did."""
    from lstm_tune.runtime.pool import POOL_PARENT_ENV  # here: the pool module imports Optuna

    text = os.environ.get(POOL_PARENT_ENV, "").strip()
    return int(text) if text.isdigit() else None
