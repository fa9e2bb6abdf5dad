"""MLflow: each trial as a run, and ``train``'s final model as one more (opt-in).

A study file's ``tracking: {mlflow: {tracking_uri, experiment}}`` (or ``--mlflow-tracking-uri``)
turns it on. Each trial becomes the run ``<study>-trial-<n>`` in the experiment (default: the
study's name) holding its params, every epoch's metrics (step = epoch), its learning-curve SVG,
its final ``value`` and its Optuna ``state`` (COMPLETE, PRUNED, FAIL; run status FINISHED,
KILLED, FAILED). :func:`log_final_model` logs ``train``'s model as ``<study>-final`` with its
test metrics, ``metrics.json`` and ``report.html``.

Not optuna-integration's ``MLflowCallback``, though its conventions are kept (tags ``number``,
``state``, ``direction``, ``<param>_distribution``; the objective's metric ``value``):

* it is deprecated since optuna-integration 4.9 (removal planned for 6.0);
* as a study callback it logs a trial once it has ended, but per-epoch metrics and the curve
  must be logged from inside the trial; its ``track_in_mlflow`` decorator, which does that,
  starts the run inside the objective, so a tracking server that cannot be reached fails the
  trial, and an error in the callback ends the worker's ``study.optimize``;
* it sets MLflow's process-wide tracking URI and active run (``mlflow.set_tracking_uri``,
  ``mlflow.start_run``), which a notebook user's own MLflow runs share.

So runs are written with ``MlflowClient`` by one background thread per process, in order: a
trial never waits for the server. The first error (unreachable, refused) is warned once, with
the URI's password hidden, and the process logs nothing more to MLflow; the search goes on as
without tracking. MLflow's HTTP client retries a failing request first
(``$MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``$MLFLOW_HTTP_REQUEST_TIMEOUT``).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lstm_tune.config import MlflowSpec, StudySpec
from lstm_tune.errors import ConfigError
from lstm_tune.results.artifacts import CURVE_FILENAME, Recorder, trial_curve_svg
from lstm_tune.storages.url import redact_url

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "MlflowTracker",
    "final_run_name",
    "log_final_model",
    "require_mlflow",
    "trial_observers",
    "trial_run_name",
]

_log = logging.getLogger("lstm_tune.tracking")
# Optuna's trial state -> MLflow's run status.
_RUN_STATUS = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAIL: "FAILED",
}
# How long a worker waits, when it ends, for runs still being written.
CLOSE_TIMEOUT = 60.0
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)

Task = Callable[["MlflowClient"], None]


def require_mlflow(where: str) -> None:
    """Raise :class:`ConfigError` naming ``where`` when MLflow is not installed."""
    if importlib.util.find_spec("mlflow") is None:
        raise ConfigError(
            f"{where}: MLflow tracking needs the mlflow package, which is not installed; "
            f"pip install 'lstm-tune[mlflow]'"
        )


def trial_observers(spec: StudySpec, study_name: str) -> list[MlflowTracker]:
    """What follows each trial of ``spec`` beyond the study: an :class:`MlflowTracker` when
    its ``tracking.mlflow`` is set (MLflow checked installed, the server not contacted yet)."""
    settings = spec.tracking.mlflow
    if settings is None:
        return []
    require_mlflow(f"{spec.source_path}: tracking.mlflow")
    return [MlflowTracker(settings, study_name, spec.search.direction)]


def trial_run_name(study_name: str, number: int) -> str:
    """The MLflow run of trial ``number``: ``<study>-trial-<n>``."""
    return f"{study_name}-trial-{number}"


def final_run_name(study_name: str) -> str:
    """The MLflow run of ``train``'s final model: ``<study>-final``."""
    return f"{study_name}-final"


def _safe(text: str) -> str:
    """``text`` (an error MLflow raised: it names the URL it requested) with the password of
    every URL in it hidden."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)


class _Writer:
    """One background thread that runs MLflow calls in order, and stops at the first error.

    Started on the first call, so a pool's parent process (which runs no trial) never
    contacts the server.
    """

    def __init__(self, settings: MlflowSpec, experiment: str) -> None:
        self.uri = settings.tracking_uri
        self.experiment = experiment
        self.experiment_id: str | None = None
        self.failed = False
        self._tasks: queue.Queue[Task | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, task: Task) -> None:
        """Queue ``task`` (run with the client once the experiment is set); nothing once a
        call has failed."""
        if self.failed:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="lstm-tune-mlflow", daemon=True
                )
                self._thread.start()
        self._tasks.put(task)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Wait up to ``timeout`` seconds for queued calls, then stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self._tasks.put(None)
        thread.join(timeout)
        if thread.is_alive():
            _log.warning(
                "MLflow at %s: runs still being written after %.0fs; not waiting for them",
                redact_url(self.uri),
                timeout,
            )

    def _run(self) -> None:
        client: MlflowClient | None = None
        while (task := self._tasks.get()) is not None:
            if self.failed:
                continue
            try:
                if client is None:
                    client = self._connect()
                task(client)
            except Exception as exc:  # anything MLflow raises must not touch the search
                self.failed = True
                _log.warning(
                    "MLflow tracking at %s failed, no more runs are logged from this "
                    "process (the search goes on): %s",
                    redact_url(self.uri),
                    _safe(str(exc).splitlines()[0] if str(exc) else repr(exc)),
                )

    def _connect(self) -> MlflowClient:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient(tracking_uri=self.uri)
        found = client.get_experiment_by_name(self.experiment)
        if found is None:
            try:
                self.experiment_id = client.create_experiment(self.experiment)
            except MlflowException:  # another worker created it first
                found = client.get_experiment_by_name(self.experiment)
                if found is None:
                    raise
        if found is not None:
            self.experiment_id = found.experiment_id
        return client


class MlflowTracker:
    """A worker's MLflow runs: objective hooks while a trial runs, a study callback once it
    has ended (what :func:`lstm_tune.tuning.run.run_study` takes as a trial observer)."""

    def __init__(self, settings: MlflowSpec, study_name: str, direction: str) -> None:
        self.study_name = study_name
        self.direction = direction.upper()
        self._writer = _Writer(settings, settings.experiment or study_name)
        # Trial number -> its run id; read and written by the writer's thread only.
        self._runs: dict[int, str] = {}

    # ------------------------------------------------------------ hooks (the worker's thread)

    def on_epoch(self, trial: optuna.trial.Trial, recorder: Recorder) -> None:
        """Log the epoch that just ended (every value Keras logged, step = its number)."""
        epoch = len(recorder.seconds_per_epoch)
        values = {key: column[-1] for key, column in recorder.history.items() if column}
        values["seconds_per_epoch"] = recorder.seconds_per_epoch[-1]
        opened = self._opener(trial.number, dict(trial.params), dict(trial.distributions))
        self._writer.submit(lambda client: _log_metrics(client, opened(client), values, epoch))

    def on_trained(self, trial: optuna.trial.Trial, model: Any, recorder: Recorder) -> None:
        """Log a completed trial's learning curve."""
        self._log_curve(trial, recorder, pruned=False)

    def on_pruned(self, trial: optuna.trial.Trial, recorder: Recorder | None) -> None:
        """Log a pruned trial's learning curve so far."""
        if recorder is not None:
            self._log_curve(trial, recorder, pruned=True)

    def on_finished(self, study: optuna.study.Study, trial: FrozenTrial) -> None:
        """Study callback: the trial's final value and state; its run ends."""
        status = _RUN_STATUS.get(trial.state)
        if status is None:  # RUNNING or WAITING: not a trial that ended
            return
        tags = {
            "number": str(trial.number),
            "state": trial.state.name,
            "direction": self.direction,
            "optuna.study": self.study_name,
            **{f"{k}_distribution": str(v) for k, v in trial.distributions.items()},
        }
        if "fail_reason" in trial.user_attrs:
            tags["fail_reason"] = str(trial.user_attrs["fail_reason"])[:8000]
        final: dict[str, float] = {}
        if trial.value is not None:
            final["value"] = trial.value
        if "best_epoch" in trial.user_attrs:
            final["best_epoch"] = float(trial.user_attrs["best_epoch"])
        opened = self._opener(trial.number, dict(trial.params), dict(trial.distributions))

        def end(client: MlflowClient) -> None:
            from mlflow.entities import RunTag

            run_id = opened(client)
            _log_metrics(client, run_id, final, 0)
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
            client.set_terminated(run_id, status=status)
            self._runs.pop(trial.number, None)

        self._writer.submit(end)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Wait for the runs still being written (at most ``timeout`` seconds)."""
        self._writer.close(timeout)

    # --------------------------------------------------------- the writer's thread

    def _opener(
        self, number: int, params: Mapping[str, Any], distributions: Mapping[str, Any]
    ) -> Callable[[MlflowClient], str]:
        """A call that returns trial ``number``'s run id, creating the run with its params
        the first time."""

        def run_id(client: MlflowClient) -> str:
            if number not in self._runs:
                from mlflow.entities import Param

                assert self._writer.experiment_id is not None
                run = client.create_run(
                    self._writer.experiment_id,
                    run_name=trial_run_name(self.study_name, number),
                    tags={"optuna.study": self.study_name, "number": str(number)},
                )
                client.log_batch(
                    run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()]
                )
                self._runs[number] = run.info.run_id
            return self._runs[number]

        return run_id

    def _log_curve(self, trial: optuna.trial.Trial, recorder: Recorder, *, pruned: bool) -> None:
        svg = trial_curve_svg(trial, recorder, pruned=pruned)
        if svg is None:
            return
        name = CURVE_FILENAME.format(number=trial.number)
        opened = self._opener(trial.number, dict(trial.params), dict(trial.distributions))
        self._writer.submit(lambda client: client.log_text(opened(client), svg, name))


def log_final_model(
    settings: MlflowSpec,
    study_name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    out_dir: str | Path,
) -> None:
    """Log ``train``'s model as the run ``<study>-final``: its params, its numeric test
    metrics, and ``metrics.json`` and ``report.html`` from ``out_dir``. A server that cannot
    be reached is warned about, as for trials; the model on disk is not touched."""
    writer = _Writer(settings, settings.experiment or study_name)
    numbers = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and k != "beats_baseline"
    }
    files = [Path(out_dir) / name for name in ("metrics.json", "report.html")]

    def log(client: MlflowClient) -> None:
        from mlflow.entities import Param

        assert writer.experiment_id is not None
        run = client.create_run(
            writer.experiment_id,
            run_name=final_run_name(study_name),
            tags={"optuna.study": study_name},
        )
        run_id = run.info.run_id
        _log_metrics(client, run_id, numbers, 0)
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        for file in files:
            if file.is_file():
                client.log_artifact(run_id, str(file))
        client.set_terminated(run_id, status="FINISHED")

    writer.submit(log)
    writer.close()


def _log_metrics(
    client: MlflowClient, run_id: str, values: Mapping[str, float], step: int
) -> None:
    """Log ``values`` (non-finite ones left out: MLflow shows no gap for them) at ``step``."""
    from mlflow.entities import Metric

    now = _now_ms()
    metrics = [Metric(k, float(v), now, step) for k, v in values.items() if math.isfinite(v)]
    client.log_batch(run_id, metrics=metrics)


def _now_ms() -> int:
    return int(time.time() * 1000)
