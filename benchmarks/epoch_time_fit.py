"""Fit the pre-flight time estimate's two constants to epochs lstm-tune's trials really took.

Reads a study that lstm-tune ran on full IMDB (by default the lstm-tune contender of
``search_efficiency.py``), takes each trial's median seconds per epoch and its params, and
fits ``STEP_SECONDS`` and ``SECONDS_PER_BATCH_HIDDEN2`` of ``lstm_tune/training/preflight.py``
by least squares on relative error. Prints the fit, each trial's estimate against what it took, and
writes the table into BENCHMARKS.md.

    python benchmarks/epoch_time_fit.py
"""

from __future__ import annotations

import argparse

import numpy as np
import optuna
from _common import ROOT, SHARED_DATA, git_revision, imdb_study, publish

from lstm_tune.tasks.text_classification.data import load_corpus, review_lengths, split_validation
from lstm_tune.training import preflight

DEFAULT_STORAGE = f"sqlite:///{ROOT / 'runs' / 'search_efficiency' / 'lstm-tune' / 'lstm_tune.db'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=DEFAULT_STORAGE)
    parser.add_argument("--study-name", default="lstm-tune")
    parser.add_argument("--data-path", default=str(SHARED_DATA))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    spec = imdb_study(args.data_path)
    corpus = load_corpus(spec.data, spec.seed)
    fit_split, val_split = split_validation(corpus.train, spec.data.validation_split, spec.seed)
    fit = review_lengths(fit_split)
    forward = preflight.forward_lengths(
        review_lengths(val_split),
        len(fit),
        spec.training.report_every,
        spec.training.report_sample,
    )

    study = optuna.load_study(study_name=args.study_name, storage=args.storage)
    rows = []
    for trial in study.get_trials(deepcopy=False):
        seconds = trial.user_attrs.get("seconds_per_epoch") or []
        if not seconds:
            continue
        units = preflight.epoch_step_units(trial.params, fit, forward)
        batch, hidden = int(trial.params["batch_size"]), int(trial.params["hidden_size"])
        rows.append((trial, float(np.median(seconds)), len(seconds), units, batch * hidden**2))
    if len(rows) < 3:
        raise SystemExit(f"{len(rows)} trials with timed epochs; the fit needs at least 3")

    # seconds = units x (a + bh2 x c); weighted by 1/seconds, so each trial counts by its
    # relative error (a 3-minute epoch is not worth 10 of a 20-second one).
    y = np.array([r[1] for r in rows])
    design = np.array([[r[3], r[3] * r[4]] for r in rows]) / y[:, None]
    (step_seconds, per_bh2), *_ = np.linalg.lstsq(design, np.ones(len(rows)), rcond=None)
    predicted = np.array([r[3] * (step_seconds + r[4] * per_bh2) for r in rows])
    errors = predicted / y - 1

    table = [
        "| trial | hidden | layers | seq len | batch | epochs timed | s/epoch (median) | "
        "estimate | error |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (trial, seconds, count, _, _), guess, error in zip(rows, predicted, errors, strict=True):
        p = trial.params
        table.append(
            f"| {trial.number} | {p['hidden_size']} | {p['num_layers']} | "
            f"{p['sequence_length']} | {p['batch_size']} | {count} | {seconds:.1f} | "
            f"{guess:.1f} | {error:+.0%} |"
        )
    body = "\n".join(
        [
            "## epoch_time_fit",
            "",
            f"Command: `python benchmarks/epoch_time_fit.py` (commit {git_revision()}), on the "
            "lstm-tune trials of the search_efficiency run below (full IMDB, this machine).",
            "",
            f"Fitted: `STEP_SECONDS = {step_seconds:.3g}`, "
            f"`SECONDS_PER_BATCH_HIDDEN2 = {per_bh2:.3g}` (lstm_tune/training/preflight.py). "
            f"Median absolute error {np.median(np.abs(errors)):.0%}, largest "
            f"{np.max(np.abs(errors)):.0%}, over {len(rows)} trials: fitted and judged on the "
            "same trials, so this is how well the formula's shape fits, not a test on new ones.",
            "",
            *table,
        ]
    )
    publish("epoch_time_fit", body, write=not args.no_write)


if __name__ == "__main__":
    main()
