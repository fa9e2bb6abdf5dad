"""The ``lstm-tune`` command: the only place that reads the environment, prints for the user
and maps errors to exit codes (0 ok, 2 a problem the user can fix, 130 interrupted)."""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

# Quiet TensorFlow's C++ start-up chatter before anything imports it; users can override.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from lstm_tune.config import StudySpec, load_spec, with_data  # noqa: E402
from lstm_tune.errors import LstmTuneError  # noqa: E402
from lstm_tune.runtime.layout import AUTO  # noqa: E402

if TYPE_CHECKING:
    from lstm_tune.runtime.layout import Threads

STORAGE_ENV = "LSTM_TUNE_STORAGE"
CACHE_ENV = "LSTM_TUNE_CACHE_DIR"
ARTIFACT_DIR_ENV = "LSTM_TUNE_ARTIFACT_DIR"
DATA_PATH_ENV = "LSTM_TUNE_DATA_PATH"
EXIT_USAGE = 2
# search stopped short of its budget because trials kept failing (data, memory, a bug).
EXIT_GAVE_UP = 3
EXIT_INTERRUPTED = 130


def default_cache_dir() -> str:
    """Where tokenized corpora are cached: ``$LSTM_TUNE_CACHE_DIR`` or the user cache dir."""
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "lstm-tune")


def resolve_storage(flag: str | None, default_sqlite_file: Path) -> str:
    """Storage URL by precedence: ``--storage`` > ``$LSTM_TUNE_STORAGE`` > SQLite default."""
    if flag:
        return flag
    if os.environ.get(STORAGE_ENV):
        return os.environ[STORAGE_ENV]
    return f"sqlite:///{default_sqlite_file}"


def resolve_data_path(flag: str | None) -> str | None:
    """Local data file by precedence: ``--data-path`` > ``$LSTM_TUNE_DATA_PATH`` > study file.

    The variable lets a pool (compose, a machine without internet) point every worker at a
    local copy without repeating the whole worker command; empty means unset.
    """
    return flag or os.environ.get(DATA_PATH_ENV) or None


def _load_with_overrides(path: str, data_path: str | None) -> StudySpec:
    return _with_overrides(load_spec(path), data_path)


def _with_overrides(spec: StudySpec, data_path: str | None) -> StudySpec:
    """``spec`` with the data path the flag or environment gives and the default cache dir."""
    data_path = resolve_data_path(data_path)
    changes: dict[str, object] = {}
    fields = type(spec.data).model_fields
    if data_path is not None:
        changes["path"] = str(Path(data_path).resolve())
        if "source" in fields:  # a local file instead of the task's download
            changes["source"] = "csv"
    if "cache_dir" in fields and spec.data.cache_dir is None:
        changes.update(cache_dir=default_cache_dir())
    return with_data(spec, **changes) if changes else spec


def cmd_search(args: argparse.Namespace) -> int:
    """Run (or resume) a search until the study's trial budget is reached."""
    # The study file is checked before TensorFlow is imported, so a mistake costs no wait.
    spec = _load_with_overrides(args.study, args.data_path)
    threads_override = _threads_from_env()
    import optuna

    from lstm_tune.results.artifacts import TrialArtifacts
    from lstm_tune.runtime.progress import format_params
    from lstm_tune.runtime.stop import exit_now
    from lstm_tune.search.run import ArtifactDir, PoolFinished, Stopped, WorkerLaunch, run_study
    from lstm_tune.storages import absolute_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours
    study_name = args.study_name or spec.name
    storage = resolve_storage(args.storage, Path(args.study).resolve().parent / f"{study_name}.db")
    artifact_dir = resolve_artifact_dir(
        args.artifact_dir, Path(args.study).resolve().parent / "artifacts"
    )
    ended = run_study(
        spec,
        storage=storage,
        study_name=study_name,
        say=lambda line: print(line, flush=True),
        warn=lambda line: print(f"lstm-tune: {line}", flush=True),
        n_trials=args.n_trials,
        timeout=args.timeout,
        workers=args.workers,
        threads=threads_override,
        artifacts=ArtifactDir(artifact_dir, TrialArtifacts),
        launch=WorkerLaunch(
            argv=lambda index: _worker_argv(args, study_name, index),
            # The storage URL (it may hold a password) goes through the environment.
            env={**os.environ, STORAGE_ENV: storage},
        ),
        accept_changes=args.accept_changes,
        worker_index=args.worker_index,
        progress=sys.stdout,
    )
    if isinstance(ended, PoolFinished):
        result = ended.result
        print(
            f"pool finished: worker exit codes {result.exit_codes}"
            + (f" (stopped by {result.stopped_by})" if result.stopped_by else ""),
            flush=True,
        )
        return result.exit_code
    if isinstance(ended, Stopped):  # by a signal; the trials it held are released
        print(f"lstm-tune: stopped by {ended.signame}", flush=True)
        exit_now(128 + ended.signum)  # within the stop grace period; see pool.exit_now
    outcome = ended.outcome
    print(
        f"{outcome.stopped_because}: {outcome.finished}/{outcome.budget} finished trials "
        f"in {ended.seconds:.1f}s"
    )
    if outcome.gave_up:
        # Not a success: a pool's `restart: on-failure` must see that this worker stopped
        # short of the budget because every trial failed.
        print(f"lstm-tune: error: gave up: {outcome.stopped_because}", file=sys.stderr)
        return EXIT_GAVE_UP
    try:
        best = outcome.study.best_trial
    except ValueError:
        print("no complete trial yet")
        return 0
    print(
        f"best: trial {best.number} {spec.search.metric}={best.value:.4f} "
        f"best_epoch={best.user_attrs.get('best_epoch')} {format_params(best.params)}"
    )
    print(
        f"export it: lstm-tune export-best --study-name {shlex.quote(study_name)} --storage "
        f"{shlex.quote(absolute_url(storage))} -o best.yaml"
    )
    return 0


def _worker_argv(args: argparse.Namespace, study_name: str, index: int) -> list[str]:
    """The command line of pool worker ``index``: this search, as one worker of the pool."""
    argv = [sys.executable, "-m", "lstm_tune.cli", *(["--debug"] if args.debug else [])]
    # The storage URL (it may hold a password) goes through the environment, not argv.
    argv += ["search", args.study, "--study-name", study_name]
    argv += ["--worker-index", str(index)]
    passed = {
        "--n-trials": args.n_trials,
        "--timeout": args.timeout,
        "--data-path": args.data_path,
        "--artifact-dir": args.artifact_dir,
    }
    for flag, value in passed.items():
        if value is not None:
            argv += [flag, str(value)]
    return argv


def cmd_export_best(args: argparse.Namespace) -> int:
    """Write the best trial of a study as a YAML config."""
    from lstm_tune.search.export import best_config, write_config

    storage = resolve_storage(args.storage, Path("studies") / f"{args.study_name}.db")
    data_path = resolve_data_path(args.data_path)
    spec = best_config(
        storage, args.study_name, data_path=str(Path(data_path).resolve()) if data_path else None
    )
    path = write_config(spec, args.output)
    assert spec.result is not None
    print(
        f"wrote {path}: trial {spec.result.trial_number} {spec.search.metric}="
        f"{spec.result.value:.4f} "
        f"best_epoch={spec.result.best_epoch}"
    )
    return 0


def cmd_finalize(args: argparse.Namespace) -> int:
    """Retrain the study's best few configs over several seeds; export the best mean."""
    import optuna

    from lstm_tune.errors import ConfigError
    from lstm_tune.search.export import best_config, write_config
    from lstm_tune.search.finalize import (
        FINALISTS_ATTR,
        Finalist,
        estimated_seconds,
        finalized_config,
        revalidate,
        top_trials,
        winner,
    )
    from lstm_tune.storages import open_storage
    from lstm_tune.tasks import get_task

    storage = resolve_storage(args.storage, Path("studies") / f"{args.study_name}.db")
    base = _with_overrides(best_config(storage, args.study_name), args.data_path)
    study = optuna.load_study(study_name=args.study_name, storage=open_storage(storage))
    trials = top_trials(study, args.finalists)
    prepared = get_task(base.task).load(base.data, base.seed)
    estimate = estimated_seconds(base, prepared, trials, args.seeds)
    print(
        f"re-validating {len(trials)} finalists x {args.seeds} seeds: about "
        f"{estimate / 60:.0f} min by the pre-flight estimate"
        + (f" (budget {args.budget / 60:.0f} min)" if args.budget else ""),
        flush=True,
    )
    if args.budget is not None and estimate > args.budget:
        raise ConfigError(
            f"--budget {args.budget:.0f} s is below the estimated {estimate:.0f} s; give fewer "
            f"--finalists or --seeds, or a larger --budget"
        )
    metric = base.search.metric

    def report_run(finalist: Finalist, seed: int, _model: object) -> None:
        value = finalist.values[-1]
        print(f"trial {finalist.trial_number} seed {seed}: {metric}={value:.4f}", flush=True)

    finalists = revalidate(
        base, prepared, trials, seeds=args.seeds, budget=args.budget, on_run=report_run
    )
    chosen = winner(base, finalists)
    study.set_user_attr(FINALISTS_ATTR, [f.as_dict() for f in finalists])
    for f in finalists:
        mark = "  <- exported" if f is chosen else ""
        print(
            f"trial {f.trial_number}: search {f.trial_value:.4f}, re-validated "
            f"{f.mean:.4f} +- {f.std:.4f} over {len(f.values)} seeds{mark}"
        )
    path = write_config(finalized_config(base, chosen, finalists, args.study_name), args.output)
    print(f"wrote {path}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Retrain a config YAML and evaluate it on the test split."""
    from lstm_tune.results.evaluate import retrain_and_evaluate, summary
    from lstm_tune.results.report import write_train_report

    spec = _load_with_overrides(args.config, args.data_path)
    spec.fixed_params()  # fail fast, before loading data, if the file is a search space
    evaluation = retrain_and_evaluate(spec, args.out, refit_full=args.refit_full)
    print(summary(evaluation.metrics))
    if evaluation.metrics.get("beats_baseline") is False:
        print(
            "lstm-tune: warning: the model does not beat the task's trivial baseline on the "
            "test split",
            file=sys.stderr,
        )
    per_epoch = evaluation.metrics["seconds_per_epoch"]
    print(
        f"{sum(per_epoch) / len(per_epoch):.1f}s per epoch; wrote {evaluation.out_dir}/"
        f"{{model.keras,metrics.json,report.html}}"
    )
    page = write_train_report(
        evaluation.metrics,
        Path(evaluation.out_dir) / "report.html",
        title=f"Test-set report: {Path(args.config).name}",
    )
    print(f"test-set report: {page}")
    return 0


def resolve_artifact_dir(flag: str | None, default: Path) -> str:
    """Artifact dir by precedence: ``--artifact-dir`` > ``$LSTM_TUNE_ARTIFACT_DIR`` > default."""
    if flag:
        return flag
    if os.environ.get(ARTIFACT_DIR_ENV):
        return os.environ[ARTIFACT_DIR_ENV]
    return str(default)


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve optuna-dashboard for a storage until interrupted."""
    from lstm_tune.errors import ConfigError
    from lstm_tune.results.dashboard import LOOPBACK_HOSTS, dashboard_url, make_dashboard_server
    from lstm_tune.storages import redact_url

    storage = args.storage or os.environ.get(STORAGE_ENV)
    if not storage:
        found = sorted(Path("studies").glob("*.db"))
        hint = "; found here: " + ", ".join(f"sqlite:///{p}" for p in found) if found else ""
        raise ConfigError(
            f"no storage given: pass --storage URL (e.g. sqlite:///studies/imdb.db) "
            f"or set ${STORAGE_ENV}{hint}"
        )
    artifact_dir = resolve_artifact_dir(args.artifact_dir, Path("studies") / "artifacts")
    server = make_dashboard_server(
        storage, host=args.host, port=args.port, artifact_dir=artifact_dir
    )
    if args.host not in LOOPBACK_HOSTS:
        print(
            f"lstm-tune: warning: optuna-dashboard has no login; anyone who reaches "
            f"{args.host}:{server.server_port} can rename or delete studies",
            file=sys.stderr,
        )
    print(
        f"optuna-dashboard for {redact_url(storage)} (artifacts: {artifact_dir}) at "
        f"{dashboard_url(server, args.host)} ; Ctrl-C stops it",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write a study's HTML report (with the test metrics of `train`, when given)."""
    from lstm_tune.results.report import load_metrics, load_study, write_study_report

    storage = resolve_storage(args.storage, Path("studies") / f"{args.study_name}.db")
    metrics = load_metrics(args.metrics) if args.metrics else None
    study = load_study(storage, args.study_name)
    path = write_study_report(study, args.output, metrics=metrics)
    print(f"wrote {path}: {len(study.trials)} trials" + (", test metrics" if metrics else ""))
    return 0


def _threads_from_env() -> Threads | None:
    """``$LSTM_TUNE_THREADS`` parsed (checked before anything is written), or None."""
    from lstm_tune.runtime.layout import THREADS_ENV, parse_threads

    text = os.environ.get(THREADS_ENV, "").strip()
    return parse_threads(text) if text else None


def cmd_predict(args: argparse.Namespace) -> int:
    """Use a trained model directory on raw input; write one CSV row per answer."""
    import csv

    from lstm_tune.errors import ConfigError
    from lstm_tune.results.inference import load_model

    if (args.input is None) == (args.prompt is None):
        raise ConfigError("predict: give an INPUT file or --prompt TEXT (one of the two)")
    trained = load_model(args.model_dir)
    options = {
        k: v
        for k, v in (("length", args.length), ("temperature", args.temperature))
        if v is not None
    }
    inputs: Iterable[Any] = (
        [args.prompt] if args.prompt is not None else trained.read_inputs(args.input)
    )
    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout
    show = sys.stderr.isatty()

    def progress(done: int) -> None:
        if show:
            print(f"\rpredicted {done:,} inputs", end="", file=sys.stderr, flush=True)

    rows = 0
    try:
        writer: csv.DictWriter[str] | None = None
        for batch in trained.predict_batches(
            inputs,
            batch_size=args.batch_size,
            on_batch=progress,
            **options,  # type: ignore[arg-type]
        ):
            for row in batch:
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
                rows += 1
    finally:
        if out is not sys.stdout:
            out.close()
        if show:
            print(file=sys.stderr)
    if args.output:
        print(f"wrote {rows:,} rows to {args.output}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of study files (every task) for editors to check them with."""
    import json

    from lstm_tune.config import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_create_study(args: argparse.Namespace) -> int:
    """Create the study (space, sampler, queued configs) once, before workers start."""
    import optuna
    from optuna.trial import TrialState

    from lstm_tune.search.studies import open_study  # not worker's: no TensorFlow to import
    from lstm_tune.storages import absolute_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = _load_with_overrides(args.study, None)
    study_name = args.study_name or spec.name
    storage = resolve_storage(args.storage, Path(args.study).resolve().parent / f"{study_name}.db")
    study = open_study(
        spec, storage_url=storage, study_name=study_name, accept_changes=args.accept_changes
    )
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    print(
        f"study {study_name!r} ready on {absolute_url(storage)}: "
        f"{len(finished)} finished trials, "
        f"{len(study.get_trials(deepcopy=False))} in all",
        flush=True,
    )
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    """Print the study's largest config, its memory estimate and a worker's request/limit."""
    from lstm_tune.runtime.progress import format_params
    from lstm_tune.runtime.sizing import study_size
    from lstm_tune.tasks import get_task

    spec = _load_with_overrides(args.study, args.data_path)
    prepared = get_task(spec.task).load(spec.data, spec.seed)
    size = study_size(spec, prepared)
    parts = size.estimate
    print(f"largest config: {format_params(dict(size.params))}")
    print(
        f"estimated peak memory: {size.estimate_mib:,.0f} MiB (base {parts.base / 2**20:,.0f}"
        f" + weights {parts.weights / 2**20:,.0f} + activations {parts.activations / 2**20:,.0f})"
    )
    print(f"worker memory: request {size.request_mib}Mi, limit {size.limit_mib}Mi")
    return 0


def cmd_storage_proxy(args: argparse.Namespace) -> int:
    """Serve a database to workers over Optuna's gRPC storage proxy until stopped."""
    import logging

    from lstm_tune.errors import ConfigError
    from lstm_tune.storages.grpc import serve_proxy

    storage = args.storage or os.environ.get(STORAGE_ENV)
    if not storage:
        raise ConfigError(
            f"no storage given: pass --storage URL (e.g. postgresql+psycopg://user@db/optuna) "
            f"or set ${STORAGE_ENV}"
        )
    # The sweeper's "failed and re-queued" lines go to the proxy's log.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    serve_proxy(
        storage,
        host=args.host,
        port=args.port,
        threads=args.threads,
        on_ready=lambda line: print(line, flush=True),
    )
    return 0


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (and exit 2) like every other
    error; ``--help`` still shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``lstm-tune`` subcommand."""
    parser = _OneLineErrorParser(
        prog="lstm-tune", description="Hyperparameter search for Keras LSTM models."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser("search", help="run or resume a study's search")
    search.add_argument("study", help="study YAML file, e.g. studies/imdb.yaml")
    search.add_argument(
        "--storage",
        help=f"storage URL (default: ${STORAGE_ENV} or sqlite:///<study dir>/<name>.db)",
    )
    search.add_argument("--study-name", help="study name (default: the file's `name`)")
    search.add_argument(
        "--n-trials", type=_positive_int, help="the study's total budget of finished trials"
    )
    search.add_argument(
        "--timeout", type=_seconds, help="stop starting trials after this many s (>= 1)"
    )
    search.add_argument("--data-path", help=_DATA_PATH_HELP)
    search.add_argument(
        "--artifact-dir",
        help=f"trial plots and best models (default: "
        f"${ARTIFACT_DIR_ENV} or <study dir>/artifacts)",
    )
    search.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="worker processes on this machine sharing the study (default 1), or 'auto': one "
        "single-threaded worker per core, as memory and the trial budget allow; "
        "$LSTM_TUNE_THREADS=N[,M] sets each worker's intra-op[,inter-op] threads",
    )
    search.add_argument("--accept-changes", action="store_true", help=_ACCEPT_CHANGES_HELP)
    # Set by `--workers N` for each worker it starts (sampling does not depend on it).
    search.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    search.set_defaults(handler=cmd_search)

    create = sub.add_parser(
        "create-study", help="create a study once before a pool's workers start"
    )
    create.add_argument("study", help="study YAML file, e.g. studies/imdb.yaml")
    create.add_argument(
        "--storage",
        help=f"storage URL (default: ${STORAGE_ENV} or sqlite:///<study dir>/<name>.db)",
    )
    create.add_argument("--study-name", help="study name (default: the file's `name`)")
    create.add_argument("--accept-changes", action="store_true", help=_ACCEPT_CHANGES_HELP)
    create.set_defaults(handler=cmd_create_study)

    export = sub.add_parser("export-best", help="write the best trial as a YAML config")
    export.add_argument("--study-name", required=True)
    export.add_argument(
        "--storage", help=f"storage URL (default: ${STORAGE_ENV} or sqlite:///studies/<name>.db)"
    )
    export.add_argument("-o", "--output", default="best.yaml", help="YAML file to write")
    export.add_argument("--data-path", help="data file to write instead of the trial's own")
    export.set_defaults(handler=cmd_export_best)

    finalize = sub.add_parser(
        "finalize", help="retrain the best few configs over seeds; export the best mean"
    )
    finalize.add_argument("--study-name", required=True)
    finalize.add_argument(
        "--storage", help=f"storage URL (default: ${STORAGE_ENV} or sqlite:///studies/<name>.db)"
    )
    finalize.add_argument(
        "--finalists", type=_positive_int, default=3, help="configs to re-validate (default 3)"
    )
    finalize.add_argument(
        "--seeds", type=_positive_int, default=3, help="retrainings per config (default 3)"
    )
    finalize.add_argument(
        "--budget", type=_seconds, help="seconds: refuse if the estimate is above, stop after"
    )
    finalize.add_argument("--data-path", help="local data file instead of the stored path")
    finalize.add_argument("-o", "--output", default="best.yaml", help="YAML file to write")
    finalize.set_defaults(handler=cmd_finalize)

    train = sub.add_parser("train", help="retrain a config YAML and evaluate it on the test split")
    train.add_argument("config", help="a YAML with `params:` (e.g. from export-best)")
    train.add_argument("--out", required=True, help="directory for model and metrics")
    train.add_argument("--data-path", help=_DATA_PATH_HELP)
    train.add_argument(
        "--refit-full",
        action="store_true",
        help="train on the training and validation splits together (epochs as chosen)",
    )
    train.set_defaults(handler=cmd_train)

    dashboard = sub.add_parser("dashboard", help="serve optuna-dashboard for a storage")
    dashboard.add_argument("--storage", help=f"storage URL (default: ${STORAGE_ENV})")
    dashboard.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; 0.0.0.0 opens it up)",
    )
    dashboard.add_argument(
        "--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)"
    )
    dashboard.add_argument(
        "--artifact-dir",
        help=f"trial artifacts (default: ${ARTIFACT_DIR_ENV} or studies/artifacts)",
    )
    dashboard.set_defaults(handler=cmd_dashboard)

    report = sub.add_parser("report", help="write a study's HTML report")
    report.add_argument("--study-name", required=True)
    report.add_argument(
        "--storage", help=f"storage URL (default: ${STORAGE_ENV} or sqlite:///studies/<name>.db)"
    )
    report.add_argument("--metrics", help="metrics.json from `lstm-tune train` to include")
    report.add_argument("-o", "--output", default="report.html", help="HTML file to write")
    report.set_defaults(handler=cmd_report)

    predict = sub.add_parser("predict", help="use a trained model on raw input")
    predict.add_argument("model_dir", help="a directory written by `lstm-tune train --out`")
    predict.add_argument(
        "input",
        nargs="?",
        help="texts (CSV with the model's text column, or .txt lines); a history CSV "
        "(forecasting); prompts, one per line (language model)",
    )
    predict.add_argument("-o", "--output", help="CSV file to write (default: standard output)")
    predict.add_argument("--prompt", help="language model: the text to continue")
    predict.add_argument("--length", type=_positive_int, help="language model: tokens to generate")
    predict.add_argument(
        "--temperature", type=_temperature, help="language model: sampling temperature (> 0)"
    )
    predict.add_argument(
        "--batch-size", type=_positive_int, default=256, help="inputs per batch (default 256)"
    )
    predict.set_defaults(handler=cmd_predict)

    estimate = sub.add_parser(
        "estimate", help="memory of a study's largest config: a worker's request and limit"
    )
    estimate.add_argument("study", help="study YAML file, e.g. studies/imdb.yaml")
    estimate.add_argument(
        "--data-path", help="local data file instead of the study's data.path or download"
    )
    estimate.set_defaults(handler=cmd_estimate)

    proxy = sub.add_parser(
        "storage-proxy", help="serve the storage to workers over Optuna's gRPC proxy"
    )
    proxy.add_argument(
        "--storage", help=f"the database's URL (default: ${STORAGE_ENV}); workers use grpc://"
    )
    proxy.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    proxy.add_argument("--port", type=_positive_int, default=13000, help="port (default 13000)")
    proxy.add_argument(
        "--threads",
        type=_positive_int,
        default=10,
        help="gRPC calls served at once, i.e. the most database connections in use (default 10)",
    )
    proxy.set_defaults(handler=cmd_storage_proxy)

    schema = sub.add_parser("schema", help="print the JSON Schema of study files")
    schema.set_defaults(handler=cmd_schema)
    return parser


_DATA_PATH_HELP = (
    f"local data file instead of the study's data.path or download (default: ${DATA_PATH_ENV})"
)
_ACCEPT_CHANGES_HELP = (
    "the study file changes the search space or what a trial means: record it as the study's "
    "spec from the next trial on (finished trials keep theirs)"
)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("lstm-tune")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _workers(text: str) -> int | str:
    """An argparse type: a worker count >= 1, or ``auto``."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; expected a count >= 1 or 'auto'") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def _finite_above(low: float, *, inclusive: bool) -> Callable[[str], float]:
    """An argparse type: a finite number above ``low`` (or equal to it when ``inclusive``)."""
    rule = f"{'>=' if inclusive else '>'} {low:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number {rule}")
        return value

    return parse


_temperature = _finite_above(0.0, inclusive=False)
_seconds = _finite_above(1.0, inclusive=True)


class _ClosedPipeTolerant:
    """Standard output that goes quiet instead of raising once its reader has gone.

    A worker whose output pipe closes (``search ... | head``, or a pool parent that was
    killed) must still finish or stop cleanly: a BrokenPipeError mid-trial would end the
    trial as a crash, which is not re-queued.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._closed = False

    def write(self, text: str) -> int:
        if not self._closed:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._closed = True
        return len(text)

    def flush(self) -> None:
        if not self._closed:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._closed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lstm-tune``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:
        # Heartbeats and the retry callback are marked experimental by Optuna; we rely on them
        # on purpose, so the warning would only be noise in every user's terminal.
        warnings.filterwarnings("ignore", message=r".*experimental.*", category=Warning)
    stdout = sys.stdout
    sys.stdout = _ClosedPipeTolerant(stdout)  # type: ignore[assignment]
    try:
        return int(args.handler(args))
    except LstmTuneError as exc:
        if args.debug:
            raise
        print(f"lstm-tune: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("lstm-tune: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        sys.stdout = stdout


if __name__ == "__main__":
    sys.exit(main())
