"""The Python API: a study file or a :class:`StudySpec` in, a :class:`SearchResult` out.

It runs the code the commands run (``lstm-tune search`` is :func:`search.run.run_study`;
``export-best``, ``finalize``, ``train`` are :mod:`search.export`, :mod:`search.finalize` and
:mod:`results.evaluate`), so a search started here and one started on the command line share
a storage, trials and exported files. What differs from the command line:

- nothing reads the environment (no ``$LSTM_TUNE_STORAGE``, ``$LSTM_TUNE_DATA_PATH``, cache
  dir): what a call does is what its arguments and the spec say;
- nothing prints or exits: lines go to the ``progress`` callback (default: the
  ``lstm_tune`` logger at INFO), and a problem is raised as the
  :class:`~lstm_tune.errors.LstmTuneError` whose text is the line the command prints.

A study's files follow the command line's rule: the study's directory is the study file's
directory, or ``studies/`` under the current directory for a spec built in code; its storage
is the SQLite file ``<study dir>/<study name>.db`` and its trial artifacts
``<study dir>/artifacts``.

This module imports Optuna and TensorFlow only inside the calls that need them, so importing
it (and its default-storage rule, which the command line shares) is cheap.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from lstm_tune.config import StudySpec, load_spec, spec_to_dict, with_data_path
from lstm_tune.errors import LstmTuneError, StorageError

if TYPE_CHECKING:
    import optuna

    from lstm_tune.results.inference import TrainedModel
    from lstm_tune.tuning.run import WorkerLaunch

__all__ = [
    "ARTIFACTS_DIR_NAME",
    "STORAGE_ENV",
    "STUDIES_DIR",
    "SearchResult",
    "default_storage",
    "load_study_file",
    "search",
    "study_dir",
]

# A study's directory when there is no study file (a spec built in code; commands that name a
# stored study: export-best, report, dashboard).
STUDIES_DIR = Path("studies")
ARTIFACTS_DIR_NAME = "artifacts"
# Where a pool's worker processes find the storage URL (never on their command lines).
STORAGE_ENV = "LSTM_TUNE_STORAGE"

logger = logging.getLogger("lstm_tune")

Say = Callable[[str], None]


def study_dir(study_file: str | Path | None) -> Path:
    """The directory of a study's files: the study file's (absolute), else ``studies``."""
    return Path(study_file).resolve().parent if study_file else STUDIES_DIR


def default_storage(study_name: str, study_file: str | Path | None = None) -> str:
    """The storage a study uses when none is given: the SQLite file ``<study dir>/<name>.db``
    (see :func:`study_dir`)."""
    return f"sqlite:///{study_dir(study_file) / f'{study_name}.db'}"


def load_study_file(path: str | Path, *, data_path: str | Path | None = None) -> StudySpec:
    """The study (or exported config) file at ``path``, validated; ``data_path`` reads that
    local file instead of the study's data (as ``--data-path`` does). Raises
    :class:`~lstm_tune.errors.ConfigError` with the line ``lstm-tune`` prints."""
    spec = load_spec(path)
    return with_data_path(spec, data_path) if data_path is not None else spec


def search(
    spec_or_path: StudySpec | str | Path,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    workers: int | Literal["auto"] = 1,
    data_path: str | Path | None = None,
    artifact_dir: str | Path | None = None,
    accept_changes: bool = False,
    progress: Say | None = None,
) -> SearchResult:
    """Run (or resume) a search, as ``lstm-tune search`` does, and return its result.

    ``spec_or_path`` is a :class:`StudySpec` or a study file's path. ``storage`` defaults to
    ``sqlite:///<study dir>/<study name>.db`` (see the module docstring), ``study_name`` to
    the spec's ``name``, ``n_trials`` and ``timeout`` to the spec's budget. ``workers`` is a
    count or ``"auto"``; more than one runs a local pool of ``lstm-tune search`` processes.
    ``progress`` gets one line per event (a trial finished, the best so far); default: the
    ``lstm_tune`` logger. Raises :class:`~lstm_tune.errors.LstmTuneError` (``ConfigError``,
    ``DataError``, ``StorageError``) with the line the command prints, and
    :class:`KeyboardInterrupt` after a SIGINT or SIGTERM (a notebook's interrupt) has failed
    and re-queued the running trial.
    """
    from lstm_tune.results.artifacts import TrialArtifacts
    from lstm_tune.results.tracking import trial_observers
    from lstm_tune.storages import absolute_url
    from lstm_tune.tuning.run import ArtifactDir, PoolFinished, Stopped, run_study

    say = progress if progress is not None else logger.info
    study_file = None if isinstance(spec_or_path, StudySpec) else Path(spec_or_path)
    spec = spec_or_path if study_file is None else load_spec(study_file)  # type: ignore[arg-type]
    assert isinstance(spec, StudySpec)
    if data_path is not None:
        spec = with_data_path(spec, data_path)
    name = study_name or spec.name
    if storage is None:
        storage = default_storage(name, study_file)
        study_dir(study_file).mkdir(parents=True, exist_ok=True)
    storage = absolute_url(storage)
    artifacts = str(artifact_dir or study_dir(study_file).resolve() / ARTIFACTS_DIR_NAME)
    with _pool_launch(spec, name, storage, n_trials, timeout, artifacts, workers) as launch:
        ended = run_study(
            spec,
            storage=storage,
            study_name=name,
            say=say,
            n_trials=n_trials,
            timeout=timeout,
            workers=workers,
            artifacts=ArtifactDir(artifacts, TrialArtifacts),
            launch=launch,
            accept_changes=accept_changes,
            observers=trial_observers(spec, name),
        )
    if isinstance(ended, Stopped):
        raise KeyboardInterrupt(
            f"search stopped by {ended.signame}; its running trial was failed and re-queued"
        )
    if isinstance(ended, PoolFinished):
        pool = ended.result
        how = f"pool finished: worker exit codes {pool.exit_codes}"
        if pool.exit_code != 0:
            stopped = f" (stopped by {pool.stopped_by})" if pool.stopped_by else ""
            raise LstmTuneError(how + stopped)
    else:
        outcome = ended.outcome
        if outcome.gave_up:
            raise LstmTuneError(f"gave up: {outcome.stopped_because}")
        how = (
            f"{outcome.stopped_because}: {outcome.finished}/{outcome.budget} finished trials "
            f"in {ended.seconds:.1f}s"
        )
    say(how)
    return SearchResult(spec=spec, storage=storage, study_name=name, ended=how, say=say)


@contextmanager
def _pool_launch(
    spec: StudySpec,
    study_name: str,
    storage: str,
    n_trials: int | None,
    timeout: float | None,
    artifact_dir: str,
    workers: int | str,
) -> Iterator[WorkerLaunch | None]:
    """How a local pool starts its workers: ``lstm-tune search`` on the spec written to a
    temporary study file (the spec as given, overrides and machine settings such as
    TensorBoard and MLflow included: the directory is private to this user), the storage URL
    in their environment. None for one worker, which runs in this process."""
    if workers == 1:
        yield None
        return
    from lstm_tune.tuning.run import WorkerLaunch

    with tempfile.TemporaryDirectory(prefix="lstm-tune-pool-") as tmp:
        file = Path(tmp) / f"{spec.name}.yaml"
        doc = spec_to_dict(spec, local=True)
        file.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        flags: list[str] = ["--study-name", study_name, "--artifact-dir", artifact_dir]
        data = getattr(spec.data, "path", None)
        if data is not None:  # a flag: the environment's $LSTM_TUNE_DATA_PATH must not win
            flags += ["--data-path", str(data)]
        if n_trials is not None:
            flags += ["--n-trials", str(n_trials)]
        if timeout is not None:
            flags += ["--timeout", str(timeout)]

        def argv(index: int) -> list[str]:
            command = [sys.executable, "-m", "lstm_tune.cli", "search", str(file)]
            return [*command, *flags, "--worker-index", str(index)]

        yield WorkerLaunch(argv=argv, env={**os.environ, STORAGE_ENV: storage})


@dataclass
class SearchResult:
    """A study after :func:`search`: its best trial, its trials, and what to do with them
    (export, finalize, train). Every property reads the storage again, so it shows trials
    other workers have finished since."""

    spec: StudySpec
    storage: str
    study_name: str
    ended: str
    say: Say = field(default=logger.info, repr=False)

    @property
    def study(self) -> optuna.Study:
        """The Optuna study (``study.optimize`` is not how lstm-tune runs trials: call
        :func:`search` again to resume it)."""
        import optuna

        from lstm_tune.storages import open_storage

        storage = open_storage(self.storage, must_exist=True)
        return optuna.load_study(study_name=self.study_name, storage=storage)

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial:
        """The best complete trial; :class:`StorageError` when none has completed."""
        study = self.study
        try:
            return study.best_trial
        except ValueError:
            raise StorageError(
                f"study {self.study_name!r} has no complete trial yet ({len(study.trials)} "
                f"trials, none complete); run `lstm-tune search` until one completes"
            ) from None

    @property
    def best_params(self) -> dict[str, Any]:
        """The six hyperparameters of the best trial, and the knobs its study names."""
        return dict(self.best_trial.params)

    @property
    def best_value(self) -> float:
        """The best trial's value of the spec's ``search.metric``."""
        return float(self.best_trial.value)  # type: ignore[arg-type]

    @property
    def trials(self) -> Any:
        """Every trial, one row each: Optuna's ``trials_dataframe()`` (a pandas DataFrame)
        when pandas is installed, else a list of dicts with its main columns."""
        study = self.study
        try:
            return study.trials_dataframe()
        except ImportError:  # Optuna builds the DataFrame with pandas, an optional package
            return [_trial_record(t) for t in study.get_trials(deepcopy=False)]

    def export_best(self, path: str | Path = "best.yaml", *, data_path: str | None = None) -> Path:
        """Write the best trial as a config YAML for ``lstm-tune train`` (as ``export-best``
        does); ``data_path`` is written instead of the trial's data file. Returns the path."""
        from lstm_tune.tuning.export import write_config

        return write_config(self._best_config(data_path), path)

    def finalize(
        self,
        path: str | Path = "best.yaml",
        *,
        finalists: int = 3,
        seeds: int = 3,
        budget: float | None = None,
        data_path: str | None = None,
    ) -> Path:
        """Retrain the ``finalists`` best configs ``seeds`` times each and write the best mean
        (as ``lstm-tune finalize`` does; ``budget`` in seconds). Returns the path."""
        from lstm_tune.tuning.export import write_config
        from lstm_tune.tuning.finalize import finalize_study, finalized_config

        base = self._best_config(data_path)
        done, chosen = finalize_study(
            base, self.study, finalists=finalists, seeds=seeds, budget=budget, say=self.say
        )
        return write_config(finalized_config(base, chosen, done, self.study_name), path)

    def train(
        self,
        out_dir: str | Path,
        *,
        config: str | Path | None = None,
        refit_full: bool = False,
        data_path: str | None = None,
        epochs: int | None = None,
    ) -> TrainedModel:
        """Retrain the best trial's config (or the exported ``config`` file, e.g. from
        :meth:`finalize`) and test it, as ``lstm-tune train`` does: ``out_dir`` gets the
        model, ``metrics.json`` and ``report.html``; ``epochs`` as ``--epochs``. Returns the
        loaded model, whose ``predict`` takes raw input."""
        from lstm_tune.results.evaluate import retrain_and_evaluate, summary
        from lstm_tune.results.inference import load_model
        from lstm_tune.results.report import write_train_report
        from lstm_tune.results.tracking import log_final_model, require_mlflow

        if config is not None:
            spec = load_study_file(config, data_path=data_path)
            spec.fixed_params()  # a search space cannot be trained: say so before the data
        else:
            spec = self._best_config(data_path)
        tracking = self.spec.tracking.mlflow
        if tracking is not None:
            require_mlflow("tracking.mlflow")
        evaluation = retrain_and_evaluate(spec, out_dir, refit_full=refit_full, epochs=epochs)
        self.say(summary(evaluation.metrics))
        if evaluation.metrics.get("beats_baseline") is False:
            self.say("warning: the model does not beat the task's trivial baseline")
        write_train_report(
            evaluation.metrics,
            Path(evaluation.out_dir) / "report.html",
            title=f"Test-set report: {self.study_name}",
        )
        if tracking is not None:  # the search's MLflow settings: trials and model side by side
            log_final_model(
                tracking, self.study_name, spec.fixed_params(), evaluation.metrics, out_dir
            )
        return load_model(evaluation.out_dir)

    def _best_config(self, data_path: str | None) -> StudySpec:
        from lstm_tune.tuning.export import best_config

        given = str(Path(data_path).resolve()) if data_path is not None else None
        return best_config(self.storage, self.study_name, data_path=given)


def _trial_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One row of :attr:`SearchResult.trials` without pandas, named as Optuna's columns."""
    return {
        "number": trial.number,
        "value": trial.value,
        "datetime_start": trial.datetime_start,
        "datetime_complete": trial.datetime_complete,
        "duration": trial.duration,
        **{f"params_{name}": value for name, value in trial.params.items()},
        "state": trial.state.name,
    }
