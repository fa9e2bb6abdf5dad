"""lstm-tune against Optuna TPE without pruning and KerasTuner Hyperband, same wall-clock budget.

All three search the space of ``studies/imdb.yaml`` on the same tokenized reviews and the same
fit/validation split (20,000 / 5,000 of IMDB's training half, seed 42), one after the other,
each in a fresh process with the machine to itself, for ``--budget`` seconds of wall time:

- ``lstm-tune``: ``run_search`` on ``studies/imdb.yaml`` as shipped (TPE, Hyperband pruner on
  checkpoints every 5,000 reviews, length-bucketed batches; a small look at the seed config
  enqueued first, then the seed config itself);
- ``optuna-tpe``: what a user writes with plain Optuna: ``TPESampler(seed=42)``, no pruning,
  the notebook's pipeline (pad every review to the trial's ``sequence_length``, ``model.fit``);
- ``kerastuner``: ``keras_tuner.Hyperband(max_epochs=5, factor=3)`` around the same notebook
  pipeline, the usual KerasTuner set-up.

Every ``model.fit`` in a contender's process gets one more callback (by wrapping
``keras.Model.fit``, so no contender's code changes): after each epoch it records the time
since the contender started and the epoch's validation accuracy on the full 5,000 reviews, and
keeps the model whenever that accuracy is the best so far; after each batch it ends the
contender once the budget is spent. "Best validation accuracy at time t" is the best such
epoch-end value recorded by t. Each contender's best kept model is then scored on the 25,000
test reviews.

    python benchmarks/search_efficiency.py --budget 1800             # the full comparison
    python benchmarks/search_efficiency.py --budget 60 --train-limit 1000 --no-write  # a look
    python benchmarks/search_efficiency.py --contenders lstm-tune@hyperband,lstm-tune@median1
        # lstm-tune with other pruners (PRUNER_VARIANTS), to choose the one imdb.yaml ships
    python benchmarks/search_efficiency.py --contenders lstm-tune@auto,optuna-tpe,kerastuner
        # lstm-tune as `search --workers auto` runs it: the layout rule's worker processes,
        # each with its threads, on one study

``lstm-tune@auto`` starts its workers' clock once every worker has imported its libraries
and read the data, as the single-process contenders' clock starts after theirs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    ROOT,
    SHARED_DATA,
    git_revision,
    imdb_study,
    machine_line,
    publish,
)
from _notebook import notebook_model  # noqa: E402

from lstm_tune.config import (  # noqa: E402
    Choice,
    Fixed,
    FloatRange,
    IntRange,
    PrunerSpec,
    StudySpec,
    load_spec,
)
from lstm_tune.results.evaluate import retrain_and_evaluate  # noqa: E402
from lstm_tune.runtime.workers_and_threads import THREADS_ENV  # noqa: E402
from lstm_tune.tasks.text_classification.data import (  # noqa: E402
    Corpus,
    Split,
    load_corpus,
    pad,
    split_validation,
)
from lstm_tune.tasks.text_classification.task import (  # noqa: E402
    classification_metrics,
    predict_proba,
)
from lstm_tune.types import Prepared  # noqa: E402

CONTENDERS = ("lstm-tune", "optuna-tpe", "kerastuner")
# lstm-tune with another pruner than studies/imdb.yaml ships, for choosing that pruner by
# measurement (`--contenders lstm-tune@hyperband,...`). A step is one checkpoint of 5,000
# training reviews, so a 5-epoch trial on 20,000 reviews reports 20 steps.
PRUNER_VARIANTS: dict[str, PrunerSpec] = {
    # As shipped before this comparison: nothing is pruned until 4 trials have completed.
    "median4": PrunerSpec(name="median", options={"n_startup_trials": 4, "n_warmup_steps": 1}),
    # Compares with the first completed trial (the seed config) from the second checkpoint on.
    "median1": PrunerSpec(name="median", options={"n_startup_trials": 1, "n_warmup_steps": 1}),
    # Rungs at checkpoints 1, 3 and 9: a trial goes on only while it is in the top third.
    "successive_halving": PrunerSpec(
        name="successive_halving", options={"min_resource": 1, "reduction_factor": 3}
    ),
    # Three brackets of successive halving starting at checkpoints 1, 3 and 9, hedging
    # between stopping early (cheap, noisy) and late (dear, reliable).
    "hyperband": PrunerSpec(
        name="hyperband", options={"min_resource": 1, "max_resource": 20, "reduction_factor": 3}
    ),
}
# lstm-tune with `search --workers auto`'s layout (several worker processes on one study).
POOL_VARIANT = "lstm-tune@auto"
# The variants below rebuild imdb.yaml's queue around the seed notebook's config
# (studies/seed_config.yaml): a first look at lower cost, then the seed config, to choose what
# imdb.yaml queues (issue 20, item 3). Each names the parameters its look lowers to the low end
# of their range in the space; an empty tuple queues the seed config alone.
# - quick: the seed config on the space's shortest sequence_length;
# - small: the seed config at the space's smallest model (hidden_size and num_layers at their
#   lows), its sequence length, learning rate, dropout and batch kept, so it reads whole
#   reviews at a fraction of the cost (what imdb.yaml ships);
# - seed-first: no look, the seed config first (what imdb.yaml queued before the small look).
QUICK_VARIANTS = ("lstm-tune@quick", "lstm-tune@auto-quick")
SMALL_VARIANTS = ("lstm-tune@auto-small",)
SEED_FIRST_VARIANTS = ("lstm-tune@auto-seed-first",)
FIRST_LOOKS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(QUICK_VARIANTS, ("sequence_length",)),
    **dict.fromkeys(SMALL_VARIANTS, ("hidden_size", "num_layers")),
    **dict.fromkeys(SEED_FIRST_VARIANTS, ()),
}
POOL_VARIANTS = (POOL_VARIANT, "lstm-tune@auto-quick", *SMALL_VARIANTS, *SEED_FIRST_VARIANTS)
VARIANTS = (
    *(f"lstm-tune@{name}" for name in PRUNER_VARIANTS),
    POOL_VARIANT,
    *QUICK_VARIANTS,
    *SMALL_VARIANTS,
    *SEED_FIRST_VARIANTS,
)
SEED = 42
# One seed-config training run of the notebook pipeline, measured on this machine by
# `python benchmarks/train_speed.py --epochs 5` (same data and split; fewer epochs are scaled up).
TRAIN_SPEED_JSON = ROOT / "runs" / "train_speed.json"


# The running trial's number and params, kept up to date by each contender for the tracker.
Current = dict[str, Any]


class BudgetSpent(KeyboardInterrupt):
    """Ends a contender when its wall-clock budget is spent.

    A KeyboardInterrupt, because that is what stops a search in every contender (Optuna
    and KerasTuner catch ``Exception`` from a trial and go on, as they should for a real error).
    """


class Tracker(keras.callbacks.Callback):  # type: ignore[misc]
    """Records epoch-end validation accuracy over time, keeps the best model, ends at budget."""

    def __init__(
        self,
        started: float,
        budget: float,
        out_dir: Path,
        current: Current,
        kept: dict[str, float],
    ):
        super().__init__()
        self.started, self.deadline = started, started + budget
        self.out_dir, self.current = out_dir, current
        # The best accuracy of this process's whole search, not of this one fit: every
        # model.fit gets a new Tracker, and a contender fits once per trial (or per round).
        self.kept = kept
        self.log = (out_dir / "epochs.jsonl").open("a")

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if time.perf_counter() > self.deadline:
            raise BudgetSpent

    on_test_batch_end = on_train_batch_end

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        accuracy = float((logs or {}).get("val_accuracy", float("nan")))
        seconds = time.perf_counter() - self.started
        if accuracy > self.kept.get("val_accuracy", -1.0):
            self.kept["val_accuracy"] = accuracy
            self.model.save(self.out_dir / "best.keras")
        # epoch + 1 counts from the first epoch even when KerasTuner resumes a model.
        record = {"seconds": seconds, "val_accuracy": accuracy, "epoch": epoch + 1}
        record.update(self.current)
        self.log.write(json.dumps(record) + "\n")
        self.log.flush()


def track_every_fit(tracker_factory: Callable[[], Tracker]) -> None:
    """Give every ``keras.Model.fit`` in this process a :class:`Tracker`, whoever calls it."""
    original = keras.Model.fit

    def fit(self: keras.Model, *args: Any, **kwargs: Any) -> Any:
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), tracker_factory()]
        return original(self, *args, **kwargs)

    keras.Model.fit = fit


# --- the contenders ----------------------------------------------------------------------------


def lstm_tune_prepared(spec: StudySpec, corpus: Corpus) -> Prepared:
    """The fit/validation/test splits every contender uses, in lstm-tune's form."""
    return Prepared(
        *split_validation(corpus.train, spec.data.validation_split, SEED),
        corpus.test,
        {"vocab_size": corpus.vocab_size, "class_names": list(corpus.class_names)},
    )


def run_lstm_tune(
    spec: StudySpec,
    corpus: Corpus,
    out_dir: Path,
    current: Current,
    *,
    database: Path | None = None,
    worker_index: int = 0,
) -> None:
    """lstm-tune's search in this process; a pool's worker passes the shared ``database``."""
    import optuna

    from lstm_tune.training.fit import EpochRecorder
    from lstm_tune.tuning.worker import run_search

    def note(trial: optuna.trial.Trial, recorder: EpochRecorder) -> None:
        # Runs at each epoch end before the tracker (lstm-tune's recorder is the first callback).
        current.update(trial=trial.number, params=dict(trial.params))

    if database is None:
        database = out_dir / "lstm_tune.db"
        database.unlink(missing_ok=True)
    run_search(
        spec,
        storage_url=f"sqlite:///{database}",
        study_name="lstm-tune",
        n_trials=10_000,  # the wall-clock budget ends the search
        prepared=lstm_tune_prepared(spec, corpus),
        on_epoch=note,
        worker_index=worker_index,
    )


def run_optuna_tpe(
    spec: StudySpec, corpus: Corpus, out_dir: Path, current: Current, peer_seed: int = SEED
) -> None:
    import optuna

    from lstm_tune.tuning.space import suggest

    fit_split, val_split = split_validation(corpus.train, spec.data.validation_split, SEED)

    def objective(trial: optuna.trial.Trial) -> float:
        params = suggest(trial, spec.space)
        current.update(trial=trial.number, params=params)
        keras.backend.clear_session()
        keras.utils.set_random_seed(SEED)
        model = notebook_model(params, corpus.vocab_size)
        history = fit_padded(model, params, fit_split, val_split, epochs=spec.training.epochs)
        return max(history.history["val_accuracy"])

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=peer_seed)
    )
    study.optimize(objective, n_trials=10_000)


def fit_padded(
    model: keras.Model, params: Mapping[str, int | float], fit_split: Split, val: Split, **kw: Any
) -> keras.callbacks.History:
    """The notebook's training: arrays padded to the config's ``sequence_length``, ``fit``."""
    length = int(params["sequence_length"])
    return model.fit(
        pad(fit_split.sequences, length),
        fit_split.labels.astype("float32"),
        validation_data=(pad(val.sequences, length), val.labels.astype("float32")),
        batch_size=int(params["batch_size"]),
        verbose=0,
        **kw,
    )


def run_kerastuner(
    spec: StudySpec, corpus: Corpus, out_dir: Path, current: Current, peer_seed: int = SEED
) -> None:
    import keras_tuner as kt

    fit_split, val_split = split_validation(corpus.train, spec.data.validation_split, SEED)
    space = spec.space

    class NotebookHyperModel(kt.HyperModel):  # type: ignore[misc]
        def build(self, hp: kt.HyperParameters) -> keras.Model:
            params = keras_tuner_params(hp, space)
            current.update(trial=current.get("trial", -1) + 1, params=params)
            return notebook_model(params, corpus.vocab_size)

        def fit(self, hp: kt.HyperParameters, model: keras.Model, *args: Any, **kw: Any) -> Any:
            # kw: epochs, initial_epoch and callbacks, as Hyperband sets them for this round.
            return fit_padded(model, keras_tuner_params(hp, space), fit_split, val_split, **kw)

    tuner = kt.Hyperband(
        NotebookHyperModel(),
        objective="val_accuracy",
        max_epochs=spec.training.epochs,
        factor=3,
        hyperband_iterations=1_000,  # the wall-clock budget ends the search
        seed=peer_seed,
        directory=str(out_dir),
        project_name="kerastuner",
        overwrite=True,
    )
    tuner.search()


def keras_tuner_params(hp: Any, space: Mapping[str, Any]) -> dict[str, int | float]:
    """The six hyperparameters drawn from KerasTuner's ``hp`` over lstm-tune's ``space``."""
    params: dict[str, int | float] = {}
    for name, rule in space.items():
        if isinstance(rule, IntRange):
            sampling = "log" if rule.log else "linear"
            step = None if rule.log else (rule.step or 1)
            params[name] = hp.Int(name, rule.low, rule.high, step=step, sampling=sampling)
        elif isinstance(rule, FloatRange):
            sampling = "log" if rule.log else "linear"
            params[name] = hp.Float(name, rule.low, rule.high, sampling=sampling)
        elif isinstance(rule, Choice):
            params[name] = hp.Choice(name, list(rule.choices))
        else:
            params[name] = hp.Fixed(name, rule.value)
    return params


RUNNERS = {"lstm-tune": run_lstm_tune, "optuna-tpe": run_optuna_tpe, "kerastuner": run_kerastuner}


def forwarded(args: argparse.Namespace) -> list[str]:
    """The options every process of this script that runs, scores or retrains one contender
    is given."""
    passed = ["--budget", str(args.budget), "--data-path", args.data_path]
    passed += ["--out-dir", args.out_dir]
    passed += ["--recorded", args.recorded] if args.recorded else []
    passed += ["--peer-seed", str(args.peer_seed)]
    return passed + (["--train-limit", str(args.train_limit)] if args.train_limit else [])


def run_tracked(
    search: Callable[[Current], None], started: float, budget: float, out_dir: Path
) -> None:
    """Run ``search`` with every ``fit`` tracked (records and the best model in ``out_dir``)
    until it ends or the budget from ``started`` is spent; write ``run.json``."""
    current: Current = {}
    kept: dict[str, float] = {}
    track_every_fit(lambda: Tracker(started, budget, out_dir, current, kept))
    try:
        search(current)
        ended = "its search ended"
    except BudgetSpent:
        ended = "budget spent"
    trials = current.get("trial", -1) + 1
    summary = {"seconds": time.perf_counter() - started, "ended": ended, "trials_started": trials}
    (out_dir / "run.json").write_text(json.dumps(summary))


def run_pool_contender(name: str, args: argparse.Namespace) -> None:
    """lstm-tune as ``search --workers auto`` runs it: the layout rule's workers on one study.

    Each worker is a ``--pool-worker`` process of this script with the layout's threads (what
    ``$LSTM_TUNE_THREADS`` gives a pool worker). The clock starts once all of them are ready;
    their epoch records and best models are merged into the contender's own afterwards.
    """
    from lstm_tune.runtime.workers_and_threads import study_layout
    from lstm_tune.tuning.worker import open_study

    out_dir = Path(args.out_dir) / name
    spec = contender_spec(name, imdb_study(args.data_path, args.train_limit))
    corpus = load_corpus(spec.data, SEED)
    layout = study_layout(spec, lstm_tune_prepared(spec, corpus), trials=10_000)
    print(f"{name}: {layout.workers} worker(s), threads {layout.threads} ({layout.reason})")
    database = out_dir / "lstm_tune.db"
    database.unlink(missing_ok=True)
    open_study(spec, storage_url=f"sqlite:///{database}", study_name="lstm-tune")
    go = out_dir / "go"
    go.unlink(missing_ok=True)
    parts = [out_dir / f"worker-{index}" for index in range(layout.workers)]
    for part in parts:
        part.mkdir(exist_ok=True)
        for stale in ("ready", "epochs.jsonl", "best.keras", "run.json"):
            (part / stale).unlink(missing_ok=True)
    env = {**os.environ, THREADS_ENV: layout.threads.as_env()}
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--pool-worker", name, "--worker-index", str(i)]
            + forwarded(args),
            env=env,
        )
        for i in range(layout.workers)
    ]
    while not all((part / "ready").exists() for part in parts):
        if any(worker.poll() not in (None, 0) for worker in workers):
            raise SystemExit(f"{name}: a worker failed before the start")
        time.sleep(0.1)
    started = time.perf_counter()
    go.write_text(repr(started))
    codes = [worker.wait() for worker in workers]
    if any(codes):
        raise SystemExit(f"{name}: worker exit codes {codes}")
    by_part = {part: read_epochs(part) for part in parts}
    records = sorted(
        (record for part_records in by_part.values() for record in part_records),
        key=lambda record: record["seconds"],
    )
    (out_dir / "epochs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    best = max(records, key=lambda record: record["val_accuracy"])
    holder = next(part for part, part_records in by_part.items() if best in part_records)
    shutil.copyfile(holder / "best.keras", out_dir / "best.keras")
    runs = [json.loads((part / "run.json").read_text()) for part in parts]
    summary = {
        "seconds": max(run["seconds"] for run in runs),
        "ended": "; ".join(sorted({run["ended"] for run in runs})),
        "trials_started": len({record["trial"] for record in records}),
        "workers": layout.workers,
        "threads": str(layout.threads),
    }
    (out_dir / "run.json").write_text(json.dumps(summary))


def run_pool_worker(name: str, index: int, args: argparse.Namespace) -> None:
    """One worker of :func:`run_pool_contender`: ready, wait for the start, search."""
    from lstm_tune.runtime.workers_and_threads import apply_threads, parse_threads

    out_dir = Path(args.out_dir) / name
    part = out_dir / f"worker-{index}"
    threads = apply_threads(parse_threads(os.environ[THREADS_ENV]))
    print(f"{name} worker {index}: TensorFlow threads {threads}", flush=True)
    spec = contender_spec(name, imdb_study(args.data_path, args.train_limit))
    corpus = load_corpus(spec.data, SEED)
    (part / "ready").touch()
    while not (out_dir / "go").exists():
        time.sleep(0.05)
    # perf_counter is CLOCK_MONOTONIC on Linux: one clock for every process of the machine.
    started = float((out_dir / "go").read_text())
    run_tracked(
        lambda current: run_lstm_tune(
            spec, corpus, part, current, database=out_dir / "lstm_tune.db", worker_index=index
        ),
        started,
        args.budget,
        part,
    )


def runner_name(name: str) -> str:
    """The contender a name runs: ``lstm-tune@hyperband`` runs ``lstm-tune``."""
    return name.partition("@")[0]


def queued_around_seed(spec: StudySpec, lowered: tuple[str, ...]) -> StudySpec:
    """``spec`` queueing the seed notebook's config, after a look at it with each ``lowered``
    parameter at the low end of its range in the space (no look when ``lowered`` is empty)."""
    seed = load_spec(ROOT / "studies" / "seed_config.yaml").fixed_params()
    look = dict(seed)
    for param in lowered:
        bounds = spec.space[param]
        assert isinstance(bounds, IntRange), (param, bounds)
        look[param] = bounds.low
    enqueue = (look, seed) if lowered else (seed,)
    return spec.model_copy(update={"search": spec.search.model_copy(update={"enqueue": enqueue})})


def contender_spec(name: str, spec: StudySpec) -> StudySpec:
    """``spec`` with the pruner of variant ``name`` (``lstm-tune@<variant>``), else as is."""
    variant = name.partition("@")[2]
    if name in FIRST_LOOKS:
        return queued_around_seed(spec, FIRST_LOOKS[name])
    if not variant or name == POOL_VARIANT:
        return spec
    pruner = PRUNER_VARIANTS[variant]
    return spec.model_copy(update={"search": spec.search.model_copy(update={"pruner": pruner})})


# --- one contender, in its own process ---------------------------------------------------------


def run_contender(name: str, args: argparse.Namespace) -> None:
    """Run contender ``name`` until the budget ends it; results go to ``out_dir/name``."""
    out_dir = Path(args.out_dir) / name
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "epochs.jsonl").unlink(missing_ok=True)
    if name in POOL_VARIANTS:
        run_pool_contender(name, args)
        return
    spec = contender_spec(name, imdb_study(args.data_path, args.train_limit))
    corpus = load_corpus(spec.data, SEED)
    runner = RUNNERS[runner_name(name)]
    # A peer's sampler seed decides its first, random configs; lstm-tune's first is enqueued.
    seeded = {} if runner_name(name) == "lstm-tune" else {"peer_seed": args.peer_seed}
    run_tracked(
        lambda current: runner(spec, corpus, out_dir, current, **seeded),
        time.perf_counter(),
        args.budget,
        out_dir,
    )


# --- scoring and the report --------------------------------------------------------------------


def test_accuracy(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Score contender ``name``'s best kept model on the 25,000 test reviews."""
    out_dir = Path(args.out_dir) / name
    spec = imdb_study(args.data_path, args.train_limit)
    corpus = load_corpus(spec.data, SEED)
    model = keras.saving.load_model(out_dir / "best.keras")
    best = max(read_epochs(out_dir), key=lambda record: record["val_accuracy"])
    length = int(best["params"]["sequence_length"])
    if runner_name(name) == "lstm-tune":  # its own inference path: length-bucketed, masked
        params = {"sequence_length": length, "batch_size": 256}
        probabilities = predict_proba(model, corpus.test, params)[:, 1]
    else:  # the notebook's: padded to the config's sequence_length
        padded = pad(corpus.test.sequences, length)
        probabilities = model.predict(padded, batch_size=256, verbose=0)
    positive = np.asarray(probabilities).reshape(-1)
    metrics = classification_metrics(
        corpus.test.labels, np.stack([1 - positive, positive], axis=1), corpus.class_names
    )
    return {"best": best, "metrics": metrics}


def retrain(name: str, args: argparse.Namespace, seed: int = SEED) -> dict[str, Any]:
    """Retrain contender ``name``'s best config from scratch as ``lstm-tune train`` does.

    The same procedure for every contender's config (lstm-tune's training path, the best
    trial's epoch count, the study seed ``seed``: its fit/validation split and initial
    weights), then the 25,000 test reviews.
    """
    out_dir = Path(args.out_dir) / name
    if args.recorded:  # a run whose files are gone: its best configs as BENCHMARKS.md lists them
        best = json.loads(Path(args.recorded).read_text())[name]
    else:
        best = max(read_epochs(out_dir), key=lambda record: record["val_accuracy"])
    spec = imdb_study(args.data_path, args.train_limit)
    spec = spec.model_copy(
        update={
            "seed": seed,
            "space": {key: Fixed(value) for key, value in best["params"].items()},
            "training": spec.training.model_copy(update={"epochs": int(best["epoch"])}),
            "result": None,
        }
    )
    evaluation = retrain_and_evaluate(spec, out_dir / retrained_name(seed))
    metrics = evaluation.metrics
    return {key: metrics[key] for key in ("accuracy", "roc_auc", "epochs", "train_seconds")}


def retrained_name(seed: int) -> str:
    """Where a retraining with ``seed`` is kept (``retrained[.json]`` for the default seed)."""
    return "retrained" if seed == SEED else f"retrained-seed{seed}"


def retrain_seeds(args: argparse.Namespace) -> list[int]:
    """The study seeds each config is retrained with: ``--retrain-seeds`` for recorded
    configs, else the study seed alone."""
    return [int(seed) for seed in args.retrain_seeds.split(",")] if args.recorded else [SEED]


def read_epochs(out_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out_dir / "epochs.jsonl").read_text().splitlines()]


def best_at(records: list[dict[str, Any]], seconds: float) -> float | None:
    """Best epoch-end validation accuracy recorded by ``seconds``, or None before the first."""
    seen = [r["val_accuracy"] for r in records if r["seconds"] <= seconds]
    return max(seen) if seen else None


def behind_spans(
    ours: list[dict[str, Any]], peer: list[dict[str, Any]], moments: list[float], end: float
) -> list[tuple[float, float]]:
    """The time spans, up to ``end``, in which ``peer``'s best-so-far is above ours (none
    recorded counts as below any value): both are step functions that change only at
    ``moments``, so a span runs from one moment to the next."""
    spans: list[tuple[float, float]] = []
    bounds = [t for t in moments if t < end]
    for start, stop in zip(bounds, [*bounds[1:], end], strict=True):
        if (best_at(peer, start) or 0.0) > (best_at(ours, start) or 0.0):
            if spans and spans[-1][1] == start:
                spans[-1] = (spans[-1][0], stop)
            else:
                spans.append((start, stop))
    return spans


def first_reach(records: list[dict[str, Any]], target: float) -> float | None:
    """Seconds until an epoch-end validation accuracy >= ``target`` was first recorded."""
    times = [r["seconds"] for r in records if r["val_accuracy"] >= target]
    return min(times) if times else None


def seed_verdicts(epochs: dict[str, list[dict[str, Any]]], names: list[str]) -> list[str]:
    """When each contender reached the seed notebook's validation accuracy, against its run."""
    if not TRAIN_SPEED_JSON.exists():
        return ["- no seed training run measured here: run `train_speed.py --epochs 5` first"]
    measured = json.loads(TRAIN_SPEED_JSON.read_text())
    seed = measured["seed_pipeline"]
    seconds, accuracy = seed["seconds_per_epoch"], seed["val_accuracy"]
    notebook_epochs = load_spec(ROOT / "studies" / "seed_config.yaml").training.epochs
    source = f"`train_speed.py --epochs {len(seconds)}`, commit {measured['commit']}"
    if len(seconds) >= notebook_epochs:
        run = sum(seconds[:notebook_epochs])
        how = f"{run / 60:.1f} min"
    else:
        # A shorter measurement still gives this machine's epoch time; the run is scaled up,
        # and the accuracy targets are those of the epochs that were measured (weaker ones).
        run = sum(seconds) / len(seconds) * notebook_epochs
        how = (
            f"{run / 60:.1f} min, estimated as {notebook_epochs} x the mean of "
            f"{len(seconds)} measured epoch(s)"
        )
    lines = [
        f"- one seed training run (notebook pipeline, seed config, {notebook_epochs} epochs, "
        f"{source}): {how}; its validation accuracy after epoch {len(accuracy)} "
        f"{accuracy[-1]:.4f}, best of its measured epochs {max(accuracy):.4f}"
    ]
    for label, target in (("last-epoch", accuracy[-1]), ("best-epoch", max(accuracy))):
        for name in names:
            when = first_reach(epochs[name], target)
            lines.append(
                f"  - {name} reached the seed's {label} value {target:.4f} after "
                f"{when / 60:.1f} min, {'less' if when < run else 'more'} than one seed run "
                f"(seed run / this = {run / when:.2f})"
                if when is not None
                else f"  - {name} did not reach the seed's {label} value {target:.4f} "
                f"within the budget"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=1800.0, help="seconds per contender")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument(
        "--peer-seed",
        type=int,
        default=SEED,
        help="the sampler seed of optuna-tpe and kerastuner (their first configs are random)",
    )
    parser.add_argument("--data-path", default=str(SHARED_DATA))
    parser.add_argument("--out-dir", default=str(ROOT / "runs" / "search_efficiency"))
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument(
        "--section", default="search_efficiency", help="the BENCHMARKS.md section to write"
    )
    parser.add_argument("--only-report", action="store_true", help="use the runs on disk")
    parser.add_argument(
        "--no-score", action="store_true", help="skip the test scoring of the kept models"
    )
    allowed = CONTENDERS + VARIANTS
    parser.add_argument("--run-one", choices=allowed, help=argparse.SUPPRESS)
    parser.add_argument("--score-one", choices=allowed, help=argparse.SUPPRESS)
    parser.add_argument("--retrain-one", choices=allowed, help=argparse.SUPPRESS)
    parser.add_argument("--retrain-seed", type=int, default=SEED, help=argparse.SUPPRESS)
    parser.add_argument("--pool-worker", choices=POOL_VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--retrain", action="store_true", help="also retrain each best config and test it"
    )
    parser.add_argument(
        "--recorded",
        help="with --retrain and --only-report: a JSON file of each contender's best "
        '{"params": ..., "epoch": N} to retrain instead of the best read from its epochs.jsonl',
    )
    parser.add_argument(
        "--retrain-seeds",
        default=str(SEED),
        help="with --recorded: the study seeds to retrain each config with, e.g. 42,43,44",
    )
    args = parser.parse_args()
    if args.pool_worker:
        run_pool_worker(args.pool_worker, args.worker_index, args)
        return
    if args.run_one:
        run_contender(args.run_one, args)
        return
    if args.score_one:
        result = test_accuracy(args.score_one, args)
        (Path(args.out_dir) / args.score_one / "test.json").write_text(json.dumps(result))
        return
    if args.retrain_one:
        result = retrain(args.retrain_one, args, args.retrain_seed)
        name = f"{retrained_name(args.retrain_seed)}.json"
        (Path(args.out_dir) / args.retrain_one / name).write_text(json.dumps(result))
        return

    names = [name.strip() for name in args.contenders.split(",")]
    unknown = set(names) - set(allowed)
    if unknown:
        raise SystemExit(f"--contenders: unknown {sorted(unknown)}; allowed: {allowed}")
    if args.recorded and not (args.only_report and args.no_score and args.retrain):
        raise SystemExit(
            "--recorded retrains recorded configs: give it with --only-report "
            "--no-score --retrain (the runs themselves are not on this machine)"
        )
    if "kerastuner" in names and importlib.util.find_spec("keras_tuner") is None:
        # Found out before the other contenders' half hours, not after them.
        raise SystemExit("kerastuner needs KerasTuner: pip install -e '.[bench]'")
    if not args.recorded:  # nothing to run or score (each retraining loads its own data)
        load_corpus(imdb_study(args.data_path, args.train_limit).data, SEED)  # fill the cache
    passed = forwarded(args)
    for name in names:
        if not args.only_report:
            print(f"running {name} for {args.budget:.0f} s", flush=True)
            subprocess.run([sys.executable, __file__, "--run-one", name, *passed], check=True)
        if args.no_score:
            continue
        if not (args.only_report and (Path(args.out_dir) / name / "test.json").exists()):
            subprocess.run([sys.executable, __file__, "--score-one", name, *passed], check=True)
    for seed in retrain_seeds(args):
        for name in names if args.retrain else []:
            kept = Path(args.out_dir) / name / f"{retrained_name(seed)}.json"
            if args.only_report and kept.exists():
                continue  # kept from an earlier invocation
            print(f"retraining {name}'s best config with seed {seed}", flush=True)
            again = ["--retrain-one", name, "--retrain-seed", str(seed)]
            subprocess.run([sys.executable, __file__, *again, *passed], check=True)
    if args.recorded:
        report_recorded(names, args)
    else:
        report(names, args)


def report_recorded(names: list[str], args: argparse.Namespace) -> None:
    """Print and write the retraining of best configs an earlier run recorded (``--recorded``),
    whose epoch records are not on this machine, so only the retrained columns exist."""
    out = Path(args.out_dir)
    recorded = json.loads(Path(args.recorded).read_text())
    seeds = retrain_seeds(args)
    lines = [
        "| contender | its best config (recorded) | epochs | val acc in its search "
        "| test acc, retrained (mean ± std) | per seed | ROC AUC (mean) | training time (mean) |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for name in names:
        again = [
            json.loads((out / name / f"{retrained_name(seed)}.json").read_text()) for seed in seeds
        ]
        accuracy = np.array([run["accuracy"] for run in again])
        params = ", ".join(f"{k} {v:.3g}" for k, v in recorded[name]["params"].items())
        lines.append(
            f"| {name} | {params} | {again[0]['epochs']} | "
            f"{recorded[name]['val_accuracy']:.4f} | {accuracy.mean():.4f}"
            + (f" ± {accuracy.std(ddof=1):.4f} | " if len(again) > 1 else " | ")
            + " / ".join(f"{a:.4f}" for a in accuracy)
            + f" | {np.mean([run['roc_auc'] for run in again]):.4f} | "
            f"{np.mean([run['train_seconds'] for run in again]):.0f} s |"
        )
    command = (
        f"python benchmarks/search_efficiency.py --only-report --no-score --retrain "
        f"--recorded {args.recorded} --retrain-seeds {args.retrain_seeds} "
        f"--contenders {','.join(names)} --section {args.section}"
    )
    body = "\n".join(
        [
            f"## {args.section}",
            "",
            f"Command: `{command}` (commit {git_revision()})",
            f"Machine: {machine_line()}. One retraining of each config per seed, one after the "
            "other.",
            "",
            "Each contender's best config as its search recorded it, retrained from scratch for "
            "its best epoch count the same way for all (lstm-tune's training path, IMDB's "
            "25,000 training reviews split 80/20 by the seed, initial weights by the seed), "
            f"then tested on the 25,000 test reviews; seeds {args.retrain_seeds}.",
            "",
            *lines,
        ]
    )
    publish(args.section, body, write=not args.no_write)


def report(names: list[str], args: argparse.Namespace) -> None:
    """Print the comparison and write it into BENCHMARKS.md."""
    out = Path(args.out_dir)
    epochs = {name: read_epochs(out / name) for name in names}
    runs = {name: json.loads((out / name / "run.json").read_text()) for name in names}
    tests = {
        name: json.loads((out / name / "test.json").read_text())
        for name in names
        if not args.no_score
    }
    bests = {name: max(epochs[name], key=lambda record: record["val_accuracy"]) for name in names}
    retrained = {
        name: json.loads((out / name / "retrained.json").read_text())
        for name in names
        if (out / name / "retrained.json").exists()
    }
    marks = [args.budget * part / 6 for part in range(1, 7)]

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = [
        "| contender | trials with an epoch | epochs recorded | "
        + " | ".join(f"best val acc @ {m / 60:.3g} min" for m in marks)
        + " | test acc, kept model | test acc, retrained | retrained ROC AUC |",
        "|---|---:|---:|" + "---:|" * len(marks) + "---:|---:|---:|",
    ]
    for name in names:
        best = [cell(best_at(epochs[name], m)) for m in marks]
        again = retrained.get(name)
        lines.append(
            f"| {name} | {len({r['trial'] for r in epochs[name]})} | {len(epochs[name])} | "
            + " | ".join(best)
            + (f" | {tests[name]['metrics']['accuracy']:.4f} | " if name in tests else " | - | ")
            + (f"{again['accuracy']:.4f} | {again['roc_auc']:.4f} |" if again else "- | - |")
        )
    configs = [
        f"- {name}: best val acc {bests[name]['val_accuracy']:.4f} at "
        f"{bests[name]['seconds'] / 60:.1f} min, trial {bests[name]['trial']}, "
        f"epoch {bests[name]['epoch']}, {bests[name]['params']}; "
        f"the contender stopped after {runs[name]['seconds'] / 60:.1f} min ({runs[name]['ended']})"
        for name in names
    ]
    # Dominance: lstm-tune's best is at least each peer's at every epoch end any of them saw.
    verdicts = []
    ours_names = [n for n in names if runner_name(n) == "lstm-tune"]
    moments = sorted({r["seconds"] for name in names for r in epochs[name]})
    for ours_name in ours_names:
        for peer in (n for n in names if runner_name(n) != "lstm-tune"):
            spans = behind_spans(epochs[ours_name], epochs[peer], moments, args.budget)
            behind = [t for t in moments if any(start <= t < end for start, end in spans)]
            verdicts.append(
                f"- against {peer}: {ours_name}'s best is at least as good at every moment"
                if not spans
                else f"- against {peer}: {ours_name} is behind during {len(behind)} of "
                f"{len(moments)} epoch ends, first at {spans[0][0] / 60:.1f} min, "
                f"{sum(end - start for start, end in spans) / 60:.1f} min in all ("
                + ", ".join(f"{start / 60:.1f}-{end / 60:.1f}" for start, end in spans)
                + " min)"
            )
    if ours_names:
        verdicts += seed_verdicts(epochs, names)
    command = f"python benchmarks/search_efficiency.py --budget {args.budget:.0f}"
    command += f" --train-limit {args.train_limit}" if args.train_limit else ""
    command += " --retrain" if retrained else ""
    command += f" --peer-seed {args.peer_seed}" if args.peer_seed != SEED else ""
    command += f" --contenders {','.join(names)}" if tuple(names) != CONTENDERS else ""
    command += f" --section {args.section}" if args.section != "search_efficiency" else ""
    data = (
        f"a stratified slice of {args.train_limit} training reviews"
        if args.train_limit
        else "IMDB's 25,000 training reviews"
    )
    body = "\n".join(
        [
            f"## {args.section}",
            "",
            f"Command: `{command}` (commit {git_revision()})",
            f"Machine: {machine_line()}. One run of each contender, one after the other, each "
            f"with the machine to itself.",
            "",
            f"Data: {data}, split 80/20 into fit/validation (stratified, seed 42); the space of "
            f"`studies/imdb.yaml`; {args.budget / 60:.0f} min of wall time per contender; 5 "
            "epochs per trial. Validation accuracy is measured at epoch ends on all validation "
            "reviews, the same way for every contender. Test accuracy on the 25,000 test "
            "reviews: of the best model each contender kept (its weights from the search), and "
            "of its best config retrained from scratch for its best epoch count the same way "
            "for all (lstm-tune's training path, seed 42).",
            "",
            *lines,
            "",
            "Best configs:",
            *configs,
            "",
            *verdicts,
        ]
    )
    publish(args.section, body, write=not args.no_write)


if __name__ == "__main__":
    main()
