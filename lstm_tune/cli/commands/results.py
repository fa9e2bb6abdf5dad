"""Commands on what a search found: ``export-best`` and ``finalize`` (a study's best config as
YAML), ``train`` (retrain a config and test it), ``report`` (a study's HTML report) and
``predict`` (a trained model on raw input)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lstm_tune.cli.command import EXIT_OK, Command, say, warning
from lstm_tune.cli.env import (
    load_with_overrides,
    resolve_data_path,
    resolve_storage,
    with_observers,
    with_overrides,
)
from lstm_tune.cli.options import (
    DATA_PATH_HELP,
    add_mlflow_tracking_uri,
    positive_int,
    seconds,
    stored_study_flags,
    temperature,
)

__all__ = ["ExportBest", "Finalize", "Predict", "Report", "Train"]


def _add_yaml_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="best.yaml", help="YAML file to write")


class ExportBest(Command):
    """``lstm-tune export-best``: the study's best trial as a YAML config."""

    name = "export-best"
    help = "write the best trial as a YAML config"
    parents = (stored_study_flags,)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Where to write, and a data path to write instead of the trial's."""
        _add_yaml_output(parser)
        parser.add_argument("--data-path", help="data file to write instead of the trial's own")

    def run(self, args: argparse.Namespace) -> int:
        """Write the best trial's config and say which trial it is."""
        from lstm_tune.tuning.export import best_config, write_config

        storage = resolve_storage(args.storage, args.study_name)
        data_path = resolve_data_path(args.data_path)
        spec = best_config(
            storage,
            args.study_name,
            data_path=str(Path(data_path).resolve()) if data_path else None,
        )
        path = write_config(spec, args.output)
        assert spec.result is not None  # best_config records the trial it came from
        print(
            f"wrote {path}: trial {spec.result.trial_number} {spec.search.metric}="
            f"{spec.result.value:.4f} "
            f"best_epoch={spec.result.best_epoch}"
        )
        return EXIT_OK


class Finalize(Command):
    """``lstm-tune finalize``: retrain the best few configs over seeds; export the best mean."""

    name = "finalize"
    help = "retrain the best few configs over seeds; export the best mean"
    parents = (stored_study_flags,)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """How many finalists and seeds, the time budget, the data, the output."""
        parser.add_argument(
            "--finalists", type=positive_int, default=3, help="configs to re-validate (default 3)"
        )
        parser.add_argument(
            "--seeds", type=positive_int, default=3, help="retrainings per config (default 3)"
        )
        parser.add_argument(
            "--budget", type=seconds, help="seconds: refuse if the estimate is above, stop after"
        )
        parser.add_argument("--data-path", help="local data file instead of the stored path")
        _add_yaml_output(parser)

    def run(self, args: argparse.Namespace) -> int:
        """Re-validate the finalists, record them in the study, write the winner."""
        import optuna

        from lstm_tune.storages import open_storage
        from lstm_tune.tuning.export import best_config, write_config
        from lstm_tune.tuning.finalize import finalize_study, finalized_config

        storage = resolve_storage(args.storage, args.study_name)
        base = with_overrides(best_config(storage, args.study_name), args.data_path)
        study = optuna.load_study(study_name=args.study_name, storage=open_storage(storage))
        finalists, chosen = finalize_study(
            base, study, finalists=args.finalists, seeds=args.seeds, budget=args.budget, say=say
        )
        for f in finalists:
            mark = "  <- exported" if f is chosen else ""
            print(
                f"trial {f.trial_number}: search {f.trial_value:.4f}, re-validated "
                f"{f.mean:.4f} +- {f.std:.4f} over {len(f.values)} seeds{mark}"
            )
        path = write_config(
            finalized_config(base, chosen, finalists, args.study_name), args.output
        )
        print(f"wrote {path}")
        return EXIT_OK


class Train(Command):
    """``lstm-tune train``: retrain a config YAML and evaluate it on the test split."""

    name = "train"
    help = "retrain a config YAML and evaluate it on the test split"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The config, the output directory, the data, and whether to refit on all data."""
        parser.add_argument("config", help="a YAML with `params:` (e.g. from export-best)")
        parser.add_argument("--out", required=True, help="directory for model and metrics")
        parser.add_argument("--data-path", help=DATA_PATH_HELP)
        parser.add_argument(
            "--refit-full",
            action="store_true",
            help="train on the training and validation splits together (epochs as chosen)",
        )
        add_mlflow_tracking_uri(parser, what="the trained model's run")
        parser.add_argument(
            "--epochs",
            type=positive_int,
            help="epochs to train instead of the config's: the most, when the config has "
            "training.early_stopping (it stops on the validation split and keeps the best "
            "epoch's weights); the exact count otherwise",
        )

    def run(self, args: argparse.Namespace) -> int:
        """Train, evaluate on the test split, write the model, metrics and report."""
        from lstm_tune.results.evaluate import retrain_and_evaluate, summary
        from lstm_tune.results.report import write_train_report
        from lstm_tune.results.tracking import log_final_model, require_mlflow

        spec = with_observers(
            load_with_overrides(args.config, args.data_path), mlflow_uri=args.mlflow_tracking_uri
        )
        spec.fixed_params()  # fail fast, before loading data, if the file is a search space
        if spec.tracking.mlflow is not None:
            require_mlflow(f"{args.config}: tracking.mlflow")
        evaluation = retrain_and_evaluate(
            spec, args.out, refit_full=args.refit_full, epochs=args.epochs
        )
        print(summary(evaluation.metrics))
        stopped = evaluation.metrics.get("early_stopping")
        if stopped is not None:
            say(
                f"trained {evaluation.metrics['epochs']} of at most {stopped['max_epochs']} "
                f"epochs ({stopped['stop_reason'] or 'no early stop'}); kept epoch "
                f"{evaluation.metrics['best_epoch']}'s weights"
            )
        if evaluation.metrics.get("beats_baseline") is False:
            warning("the model does not beat the task's trivial baseline on the test split")
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
        if spec.tracking.mlflow is not None:
            study_name = spec.result.study_name if spec.result is not None else spec.name
            log_final_model(
                spec.tracking.mlflow, study_name, spec.fixed_params(), evaluation.metrics, args.out
            )
        return EXIT_OK


class Report(Command):
    """``lstm-tune report``: a study's HTML report, with ``train``'s test metrics if given."""

    name = "report"
    help = "write a study's HTML report"
    parents = (stored_study_flags,)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The test metrics to include and the page to write."""
        parser.add_argument("--metrics", help="metrics.json from `lstm-tune train` to include")
        parser.add_argument("-o", "--output", default="report.html", help="HTML file to write")

    def run(self, args: argparse.Namespace) -> int:
        """Write the report and say how many trials it shows."""
        from lstm_tune.results.report import load_metrics, load_study, write_study_report

        storage = resolve_storage(args.storage, args.study_name)
        metrics = load_metrics(args.metrics) if args.metrics else None
        study = load_study(storage, args.study_name)
        path = write_study_report(study, args.output, metrics=metrics)
        print(f"wrote {path}: {len(study.trials)} trials" + (", test metrics" if metrics else ""))
        return EXIT_OK


class Predict(Command):
    """``lstm-tune predict``: a trained model on raw input, one CSV row per answer."""

    name = "predict"
    help = "use a trained model on raw input"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The model, the input (or a prompt), the output and the generation options."""
        parser.add_argument("model_dir", help="a directory written by `lstm-tune train --out`")
        parser.add_argument(
            "input",
            nargs="?",
            help="texts (CSV with the model's text column, or .txt lines); a history CSV "
            "(forecasting); prompts, one per line (language model)",
        )
        parser.add_argument("-o", "--output", help="CSV file to write (default: standard output)")
        parser.add_argument("--prompt", help="language model: the text to continue")
        parser.add_argument(
            "--length", type=positive_int, help="language model: tokens to generate"
        )
        parser.add_argument(
            "--temperature", type=temperature, help="language model: sampling temperature (> 0)"
        )
        parser.add_argument(
            "--batch-size", type=positive_int, default=256, help="inputs per batch (default 256)"
        )

    def run(self, args: argparse.Namespace) -> int:
        """Predict batch by batch; write the rows to the output file or standard output."""
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
        return EXIT_OK
