"""Commands on a study file: ``search`` (run or resume its search, alone or as a local pool),
``create-study`` (create it once before a pool's workers start) and ``estimate`` (the memory
a worker of its largest config needs)."""

from __future__ import annotations

import argparse
import shlex
import sys

from lstm_tune.cli.command import (
    EXIT_GAVE_UP,
    EXIT_OK,
    EXIT_SIGNAL_BASE,
    Command,
    error,
    note,
    say,
)
from lstm_tune.cli.env import (
    load_with_overrides,
    pool_parent_from_env,
    resolve_artifact_dir,
    resolve_storage,
    threads_from_env,
    with_observers,
    with_warm_start,
    worker_environment,
)
from lstm_tune.cli.options import (
    DATA_PATH_HELP,
    add_accept_changes,
    add_artifact_dir,
    add_mlflow_tracking_uri,
    add_study_file,
    add_warm_start,
    positive_int,
    seconds,
    study_file_flags,
    worker_count,
)

__all__ = ["CreateStudy", "Estimate", "Search"]


class Search(Command):
    """``lstm-tune search``: run (or resume) a search until the study's trial budget is met."""

    name = "search"
    help = "run or resume a study's search"
    parents = (study_file_flags,)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The budget, the data and artifacts, the workers."""
        parser.add_argument(
            "--n-trials", type=positive_int, help="the study's total budget of finished trials"
        )
        parser.add_argument(
            "--timeout", type=seconds, help="stop starting trials after this many s (>= 1)"
        )
        parser.add_argument("--data-path", help=DATA_PATH_HELP)
        add_artifact_dir(parser, meaning="trial plots and best models", study_file=True)
        parser.add_argument(
            "--workers",
            type=worker_count,
            default=1,
            help="worker processes on this machine sharing the study (default 1), or 'auto': "
            "one single-threaded worker per core, as memory and the trial budget allow; "
            "$LSTM_TUNE_THREADS=N[,M] sets each worker's intra-op[,inter-op] threads",
        )
        parser.add_argument(
            "--tensorboard",
            metavar="DIR",
            help="write each trial's TensorBoard logs to DIR/<study>/trial-<n> (default: the "
            "study file's training.tensorboard; none); needs lstm-tune[tensorboard]",
        )
        add_mlflow_tracking_uri(parser, what="each trial as an MLflow run")
        add_accept_changes(parser)
        add_warm_start(parser)
        # Set by `--workers N` for each worker it starts (sampling does not depend on it).
        parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)

    def run(self, args: argparse.Namespace) -> int:
        """Resolve the flags and environment, run the study, report how it ended."""
        parent = pool_parent_from_env()
        if parent is not None:  # a pool's worker: stop when the pool dies
            from lstm_tune.runtime.pool import stop_with_pool

            stop_with_pool(parent)
        # The study file and $LSTM_TUNE_THREADS are checked before Optuna or TensorFlow is
        # imported, so a mistake costs no wait.
        spec = with_observers(
            with_warm_start(load_with_overrides(args.study, args.data_path), args.warm_start_from),
            tensorboard=args.tensorboard,
            mlflow_uri=args.mlflow_tracking_uri,
        )
        threads = threads_from_env()
        import optuna

        from lstm_tune.results.artifacts import TrialArtifacts
        from lstm_tune.results.tracking import trial_observers
        from lstm_tune.runtime.progress import format_params
        from lstm_tune.runtime.stop import exit_now
        from lstm_tune.storages import absolute_url
        from lstm_tune.tuning.run import (
            ArtifactDir,
            PoolFinished,
            Stopped,
            WorkerLaunch,
            run_study,
        )

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours
        study_name = args.study_name or spec.name
        storage = resolve_storage(args.storage, study_name, args.study)
        observers = trial_observers(spec, study_name)
        ended = run_study(
            spec,
            storage=storage,
            study_name=study_name,
            say=say,
            warn=note,
            n_trials=args.n_trials,
            timeout=args.timeout,
            workers=args.workers,
            threads=threads,
            artifacts=ArtifactDir(
                resolve_artifact_dir(args.artifact_dir, args.study), TrialArtifacts
            ),
            launch=WorkerLaunch(
                argv=lambda index: _worker_argv(args, study_name, index),
                env=worker_environment(storage, spec),
            ),
            accept_changes=args.accept_changes,
            worker_index=args.worker_index,
            progress=sys.stdout,
            observers=observers,
        )
        if isinstance(ended, PoolFinished):
            result = ended.result
            stopped = f" (stopped by {result.stopped_by})" if result.stopped_by else ""
            say(f"pool finished: worker exit codes {result.exit_codes}{stopped}")
            return result.exit_code
        if isinstance(ended, Stopped):  # by a signal; the trials it held are released
            note(f"stopped by {ended.signame}")
            # Within the stop grace period: see runtime.stop.exit_now.
            exit_now(EXIT_SIGNAL_BASE + ended.signum)
        outcome = ended.outcome
        print(
            f"{outcome.stopped_because}: {outcome.finished}/{outcome.budget} finished trials "
            f"in {ended.seconds:.1f}s"
        )
        if outcome.gave_up:
            # Not a success: a pool's `restart: on-failure` must see that this worker stopped
            # short of the budget because every trial failed.
            error(f"gave up: {outcome.stopped_because}")
            return EXIT_GAVE_UP
        try:
            best = outcome.study.best_trial
        except ValueError:
            print("no complete trial yet")
            return EXIT_OK
        print(
            f"best: trial {best.number} {spec.search.metric}={best.value:.4f} "
            f"best_epoch={best.user_attrs.get('best_epoch')} {format_params(best.params)}"
        )
        print(
            f"export it: lstm-tune export-best --study-name {shlex.quote(study_name)} --storage "
            f"{shlex.quote(absolute_url(storage))} -o best.yaml"
        )
        return EXIT_OK


def _worker_argv(args: argparse.Namespace, study_name: str, index: int) -> list[str]:
    """The command line of pool worker ``index``: this search, as one worker of the pool."""
    argv = [sys.executable, "-m", "lstm_tune.cli", *(["--debug"] if args.debug else [])]
    argv += ["search", args.study, "--study-name", study_name, "--worker-index", str(index)]
    passed = {
        "--n-trials": args.n_trials,
        "--timeout": args.timeout,
        "--data-path": args.data_path,
        "--artifact-dir": args.artifact_dir,
        "--tensorboard": args.tensorboard,  # the MLflow URI goes in their environment
        "--warm-start-from": args.warm_start_from,  # the same spec as the pool's parent
    }
    for flag, value in passed.items():
        if value is not None:
            argv += [flag, str(value)]
    return argv


class CreateStudy(Command):
    """``lstm-tune create-study``: create the study (space, sampler, queued configs) once."""

    name = "create-study"
    help = "create a study once before a pool's workers start"
    parents = (study_file_flags,)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """``--data-path``, ``--accept-changes`` and ``--warm-start-from`` beyond the study file's
        flags: the settings of ``search`` that make up the study's spec, so a pool's ``init``
        and its workers can be given the same ones (a worker whose spec differs from the stored
        study's stops with exit 2)."""
        parser.add_argument("--data-path", help=DATA_PATH_HELP)
        add_accept_changes(parser)
        add_warm_start(parser)

    def run(self, args: argparse.Namespace) -> int:
        """Create or resume the study and say how many trials it holds."""
        import optuna
        from optuna.trial import TrialState

        from lstm_tune.storages import absolute_url
        from lstm_tune.tuning.studies import open_study  # not worker's: no TensorFlow import

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        spec = with_warm_start(
            load_with_overrides(args.study, args.data_path), args.warm_start_from
        )
        study_name = args.study_name or spec.name
        storage = resolve_storage(args.storage, study_name, args.study)
        study = open_study(
            spec, storage_url=storage, study_name=study_name, accept_changes=args.accept_changes
        )
        finished = study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
        )
        say(
            f"study {study_name!r} ready on {absolute_url(storage)}: "
            f"{len(finished)} finished trials, "
            f"{len(study.get_trials(deepcopy=False))} in all"
        )
        return EXIT_OK


class Estimate(Command):
    """``lstm-tune estimate``: the study's largest config and a worker's memory request."""

    name = "estimate"
    help = "memory of a study's largest config: a worker's request and limit"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The study file and where its data is."""
        add_study_file(parser)
        parser.add_argument(
            "--data-path", help="local data file instead of the study's data.path or download"
        )

    def run(self, args: argparse.Namespace) -> int:
        """Load the data, size the largest config, print its estimate and the request/limit."""
        from lstm_tune.runtime.progress import format_params
        from lstm_tune.runtime.sizing import study_size
        from lstm_tune.tasks import get_task

        spec = load_with_overrides(args.study, args.data_path)
        prepared = get_task(spec.task).load(spec.data, spec.seed)
        size = study_size(spec, prepared)
        parts = size.estimate
        mib = 2**20
        print(f"largest config: {format_params(dict(size.params))}")
        print(
            f"estimated peak memory: {size.estimate_mib:,.0f} MiB (base {parts.base / mib:,.0f}"
            f" + weights {parts.weights / mib:,.0f} + activations {parts.activations / mib:,.0f})"
        )
        print(f"worker memory: request {size.request_mib}Mi, limit {size.limit_mib}Mi")
        return EXIT_OK
