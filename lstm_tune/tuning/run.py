"""Run a study's search on this machine: what ``lstm-tune search`` does once its flags are read.

:func:`run_study` first checks everything it is given before anything is written: the storage
URL's form, then the sampler and pruner (built once, here, for the whole run), then the data
(read once; pool workers find it in the cache). It then sizes the run (``workers="auto"``
follows :mod:`lstm_tune.runtime.workers_and_threads`'s rule) and runs either one worker in this
process, under the graceful stop, or a local pool of worker processes that share the study.

Nothing here prints, reads the environment or ends the process: lines go to the caller's
``say``, and how the run ended comes back as a :class:`Finished`, :class:`Stopped` or
:class:`PoolFinished` for the caller to report (the CLI turns it into lines and an exit code).
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TextIO

import optuna
from optuna.trial import FrozenTrial

from lstm_tune.config import StudySpec
from lstm_tune.errors import ConfigError
from lstm_tune.runtime.pool import PoolResult, run_pool
from lstm_tune.runtime.progress import SearchProgress, trial_line
from lstm_tune.runtime.stop import (
    StopRecord,
    StopRequested,
    graceful_stop,
    release_held_trials,
    stop_behind,
)
from lstm_tune.runtime.workers_and_threads import (
    AUTO,
    THREADS_ENV,
    Threads,
    apply_threads,
    study_layout,
    threads_for,
    usable_cores,
)
from lstm_tune.storages import absolute_url, check_url
from lstm_tune.tasks import get_task
from lstm_tune.training.tensorboard import require_tensorboard
from lstm_tune.tuning.budget import BudgetGate
from lstm_tune.tuning.sampler_and_pruner import build_strategy, sized_for_data
from lstm_tune.tuning.studies import open_study
from lstm_tune.tuning.worker import SearchOutcome, run_search
from lstm_tune.types import Prepared

__all__ = [
    "ArtifactDir",
    "ArtifactHooks",
    "Finished",
    "PoolFinished",
    "StudyRun",
    "Stopped",
    "TrialObserver",
    "WorkerLaunch",
    "run_study",
]

Workers = int | Literal["auto"]


class ArtifactHooks(Protocol):
    """What keeps each trial's artifacts, e.g. ``lstm_tune.results.artifacts.TrialArtifacts``:
    an objective hook for a completed trial and one for a pruned trial."""

    def on_trained(self, trial: optuna.trial.Trial, model: Any, recorder: Any) -> None:
        """Keep what a completed trial leaves (its curve, note, the model if best so far)."""

    def on_pruned(self, trial: optuna.trial.Trial, recorder: Any) -> None:
        """Keep what a pruned trial leaves (its curve so far, its note)."""


class TrialObserver(Protocol):
    """What follows each trial from outside the study, e.g. an MLflow tracker
    (``lstm_tune.results.tracking.MlflowTracker``): hooks while the trial runs, a study
    callback once it has ended, and ``close`` when the worker stops. It must never raise."""

    def on_epoch(self, trial: optuna.trial.Trial, recorder: Any) -> None:
        """An epoch of ``trial`` ended."""

    def on_trained(self, trial: optuna.trial.Trial, model: Any, recorder: Any) -> None:
        """``trial`` completed (still running: it may take artifacts)."""

    def on_pruned(self, trial: optuna.trial.Trial, recorder: Any) -> None:
        """The pruner stopped ``trial`` (still running)."""

    def on_finished(self, study: optuna.study.Study, trial: FrozenTrial) -> None:
        """``trial`` ended: complete, pruned or failed."""

    def close(self) -> None:
        """The worker stops: finish what is pending."""


@dataclass(frozen=True)
class ArtifactDir:
    """Where a worker keeps its trials' artifacts, and what opens that place for it.

    ``open(path)`` is called once, when this process is about to run trials: a run that stops
    at a check, or a pool's parent that runs no trial, creates no artifact directory.
    """

    path: str
    open: Callable[[str], ArtifactHooks]


@dataclass(frozen=True)
class WorkerLaunch:
    """How the caller starts pool worker ``index`` as a process: its command line and the
    environment it runs in. The storage URL (it may hold a password) belongs in ``env``, never
    on a command line, which every user of the machine can read; :func:`run_study` adds each
    worker's TensorFlow threads to it (``$LSTM_TUNE_THREADS``)."""

    argv: Callable[[int], Sequence[str]]
    env: Mapping[str, str]


@dataclass(frozen=True)
class Finished:
    """The search ran in this process until the budget, the timeout or giving up."""

    outcome: SearchOutcome
    seconds: float


@dataclass(frozen=True)
class Stopped:
    """This process was told to stop (SIGTERM, SIGINT); the trials it held were released."""

    signame: str
    signum: int


@dataclass(frozen=True)
class PoolFinished:
    """A local pool ran and every worker process has exited."""

    result: PoolResult


StudyRun = Finished | Stopped | PoolFinished


def run_study(
    spec: StudySpec,
    *,
    storage: str,
    study_name: str,
    say: Callable[[str], None],
    warn: Callable[[str], None] | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    workers: Workers = 1,
    threads: Threads | None = None,
    artifacts: ArtifactDir | None = None,
    launch: WorkerLaunch | None = None,
    accept_changes: bool = False,
    worker_index: int = 0,
    progress: TextIO | None = None,
    observers: Sequence[TrialObserver] = (),
) -> StudyRun:
    """Run (or resume) ``spec``'s search on ``storage`` until the study holds ``n_trials``
    finished trials (default: the spec's budget), or ``timeout`` seconds pass.

    ``workers`` is a count >= 1 or ``"auto"``; more than one worker needs ``launch``, how to
    start a worker process. ``threads`` replaces the TensorFlow threads the layout gives each
    worker. Lines for the user go to ``say``; the lines of a requested stop (which trials
    were failed and re-queued) go to ``warn`` (default ``say``). ``progress`` is where the
    trial and epoch bars are drawn (a terminal is redrawn in place); without it their plain
    lines go to ``say``. ``observers`` follow each trial this process runs (a pool's parent
    runs none; its workers make their own).

    Raises :class:`ConfigError` (or another :class:`~lstm_tune.errors.LstmTuneError`) for
    anything the user can fix, before any file is written.
    """
    if not (workers == AUTO or (isinstance(workers, int) and workers >= 1)):
        raise ConfigError(f"workers: got {workers!r}; expected a count >= 1 or {AUTO!r}")
    if workers != 1 and launch is None:
        raise ValueError(f"workers={workers!r} needs launch=, how to start a worker process")
    check_url(storage)
    if spec.training.tensorboard is not None:
        require_tensorboard(f"{spec.source_path}: training.tensorboard")
    strategy = build_strategy(spec)  # its options are checked before the data is read
    task = get_task(spec.task)
    prepared = task.load(spec.data, spec.seed)
    strategy = sized_for_data(strategy, spec, task.size(prepared.fit))
    budget = n_trials or spec.search.n_trials
    count, layout_threads = _size(spec, prepared, workers, budget, say)
    threads = layout_threads if threads is None else threads
    if count > 1:
        assert launch is not None  # checked above: only a count or "auto" above 1 gets here
        open_study(
            spec,
            storage_url=storage,
            study_name=study_name,
            accept_changes=accept_changes,
            strategy=strategy,
        )
        say(f"pool of {count} workers on study {study_name!r} at {absolute_url(storage)}")
        env = {**launch.env, THREADS_ENV: threads.as_env()}
        return PoolFinished(run_pool(launch.argv, count, say=say, env=env))
    say(f"TensorFlow threads: {apply_threads(threads)}")
    hooks = artifacts.open(artifacts.path) if artifacts is not None else None
    where = f"; artifacts in {artifacts.path}" if artifacts is not None else ""
    say(f"study {study_name!r} on {absolute_url(storage)}{where}")
    shown = SearchProgress(
        budget=budget,
        epochs=spec.training.epochs,
        stream=progress if progress is not None else _LineStream(say),
    )
    search = functools.partial(
        run_search,
        spec,
        storage_url=storage,
        study_name=study_name,
        n_trials=n_trials,
        timeout=timeout,
        worker_index=worker_index,
        prepared=prepared,
        accept_changes=accept_changes,
        strategy=strategy,
    )
    return _run_worker(search, shown, hooks, warn if warn is not None else say, observers)


def _run_worker(
    search: Callable[..., SearchOutcome],
    shown: SearchProgress,
    hooks: ArtifactHooks | None,
    warn: Callable[[str], None],
    observers: Sequence[TrialObserver] = (),
) -> Finished | Stopped:
    """Run ``search`` (:func:`run_search` with its study) in this process under the graceful
    stop, its progress on ``shown``, its trials' artifacts kept by ``hooks`` and followed by
    ``observers``; on a stop, release the trials this process held and ``warn`` which."""
    shown.start()
    started = time.perf_counter()
    stop_record: StopRecord | None = None
    kept = [hooks] if hooks is not None else []
    try:
        with graceful_stop() as stop_record:
            outcome = search(
                # The gate runs before run_search's own budget check: it may wait for other
                # workers' running trials before that check decides whether this one stops.
                callbacks=[
                    lambda _, trial: shown.log(trial_line(trial)),
                    shown,
                    *(observer.on_finished for observer in observers),
                    BudgetGate(shown.budget),
                ],
                on_trained=_each([h.on_trained for h in [*kept, *observers]]),
                on_epoch=_each([shown.on_epoch, *(o.on_epoch for o in observers)]),
                on_pruned=_each([h.on_pruned for h in [*kept, *observers]]),
            )
    except (StopRequested, Exception) as exc:
        stop = stop_behind(exc, stop_record)
        if stop is None:
            raise
        shown.close()
        release_held_trials(stop, warn)
        return Stopped(stop.signame, stop.signum)
    finally:
        shown.close()
        for observer in observers:
            observer.close()
    return Finished(outcome, time.perf_counter() - started)


def _each(hooks: Sequence[Callable[..., None]]) -> Callable[..., None] | None:
    """One hook that calls each of ``hooks`` in order (None for none)."""
    if not hooks:
        return None

    def call(*args: Any) -> None:
        for hook in hooks:
            hook(*args)

    return call


def _size(
    spec: StudySpec, prepared: Prepared, workers: Workers, budget: int, say: Callable[[str], None]
) -> tuple[int, Threads]:
    """Worker processes and the threads of each: ``"auto"`` by the layout rule, a count with
    the usable cores split among its workers."""
    if workers != AUTO:
        count = int(workers)
        return count, threads_for(count, usable_cores())
    layout = study_layout(spec, prepared, trials=budget)
    say(
        f"--workers auto: {layout.workers} worker(s), TensorFlow threads {layout.threads} "
        f"each ({layout.reason})"
    )
    return layout.workers, layout.threads


class _LineStream(io.TextIOBase):
    """A text stream that hands each complete line written to it to ``say`` (not a terminal,
    so progress is written as plain lines, never redrawn)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        super().__init__()
        self._say = say
        self._partial = ""

    def write(self, text: str) -> int:
        """Buffer ``text``; say every line it completes."""
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._say(line)
        return len(text)
