"""The whole path a user takes: search (with a pruned trial) → export-best → train.

Runs the real CLI on a slice of the real IMDB corpus with small models.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import optuna
import pytest
from optuna.trial import TrialState

from lstm_tune.cli import main
from lstm_tune.config import PARAM_NAMES, load_spec
from lstm_tune.tuning.space import contains
from tests.helpers import TINY_SPACE
from tests.helpers.studies import StudyFile, write_study

GOOD = {
    "hidden_size": 16,
    "num_layers": 1,
    "learning_rate": 0.01,
    "dropout_rate": 0.1,
    "sequence_length": 80,
    "batch_size": 32,
}
# Learning rate 1e-7 cannot move the weights in two epochs: its validation accuracy stays at
# chance, below the completed trial's, so the median pruner stops it after its first epoch.
HOPELESS = {**GOOD, "learning_rate": 1e-7}


def _study_file(tmp_path: Path, data: Path) -> Path:
    return write_study(
        tmp_path,
        name="e2e",
        seed=7,
        data={
            "path": str(data),
            "max_features": 2000,
            "validation_split": 0.25,
            "cache_dir": str(tmp_path / "cache"),
        },
        training={"epochs": 2},
        search={
            "n_trials": 3,
            "sampler": {"name": "tpe", "options": {"n_startup_trials": 2}},
            "pruner": {"name": "median", "options": {"n_startup_trials": 1, "n_warmup_steps": 0}},
            "enqueue": [GOOD, HOPELESS],
        },
        space={
            "hidden_size": {"low": 8, "high": 24},
            "num_layers": {"low": 1, "high": 2},
            "learning_rate": {"low": 1e-7, "high": 2e-2, "log": True},
            "dropout_rate": {"low": 0.0, "high": 0.3},
            "sequence_length": {"low": 40, "high": 80, "step": 20},
            "batch_size": {"choices": [32, 64]},
        },
    )


@pytest.fixture(scope="module")
def searched(imdb_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("e2e")
    study_file = _study_file(tmp, imdb_slice)
    storage = f"sqlite:///{tmp / 's.db'}"
    return {"tmp": tmp, "study_file": study_file, "storage": storage}


@pytest.mark.slow
def test_search_runs_the_budget_with_a_pruned_trial(searched: dict, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(["search", str(searched["study_file"]), "--storage", searched["storage"]])
    out = capsys.readouterr().out
    assert code == 0
    study = optuna.load_study(study_name="e2e", storage=searched["storage"])
    states = [t.state for t in study.trials]
    assert len(states) == 3 and TrialState.RUNNING not in states
    assert states[0] == TrialState.COMPLETE
    assert states[1] == TrialState.PRUNED, "the hopeless enqueued trial must be pruned"
    spec = load_spec(searched["study_file"])
    for trial in study.trials:
        assert set(trial.params) == set(PARAM_NAMES)
        assert contains(spec.space, trial.params)
        assert trial.user_attrs["param_count"] > 0
        epochs_run = len(trial.user_attrs["val_accuracy_per_epoch"])
        assert len(trial.user_attrs["seconds_per_epoch"]) == epochs_run
        assert set(trial.user_attrs["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        assert trial.intermediate_values == dict(
            enumerate(trial.user_attrs["val_accuracy_per_epoch"])
        )
    assert len(study.trials[1].intermediate_values) == 1  # stopped after its first epoch
    complete = study.trials[0]
    assert complete.value == max(complete.user_attrs["val_accuracy_per_epoch"])
    assert 1 <= complete.user_attrs["best_epoch"] <= 2
    lines = [line for line in out.splitlines() if line.startswith("trial ")]
    assert len(lines) == 3
    assert "PRUNED" in lines[1] and "learning_rate=1e-07" in lines[1]
    assert "budget reached: 3/3 finished trials" in out


@pytest.mark.slow
def test_running_again_resumes_and_n_trials_is_the_total(searched: dict, capsys) -> None:  # type: ignore[no-untyped-def]
    args = ["search", str(searched["study_file"]), "--storage", searched["storage"]]
    assert main(args) == 0
    assert "budget already reached: 3/3" in capsys.readouterr().out
    assert main([*args, "--n-trials", "4"]) == 0
    study = optuna.load_study(study_name="e2e", storage=searched["storage"])
    assert len(study.trials) == 4


@pytest.mark.slow
def test_export_best_round_trips_through_the_study_file_rules(searched: dict) -> None:
    best_yaml = searched["tmp"] / "best.yaml"
    assert (
        main(
            [
                "export-best",
                "--study-name",
                "e2e",
                "--storage",
                searched["storage"],
                "-o",
                str(best_yaml),
            ]
        )
        == 0
    )
    study = optuna.load_study(study_name="e2e", storage=searched["storage"])
    best = study.best_trial
    spec = load_spec(best_yaml)
    assert spec.fixed_params() == best.params
    assert spec.result is not None
    assert spec.result.value == best.value
    assert spec.result.best_epoch == best.user_attrs["best_epoch"]
    assert (spec.result.study_name, spec.result.trial_number) == ("e2e", best.number)
    assert {"keras", "optuna"} <= set(spec.result.versions)
    assert spec.result.versions["keras"] == keras.__version__
    assert spec.training.epochs == 2 and spec.data.max_features == 2000
    assert str(searched["tmp"] / "s.db") not in best_yaml.read_text()


@pytest.mark.slow
def test_train_from_exported_yaml_writes_consistent_metrics(searched: dict, capsys) -> None:  # type: ignore[no-untyped-def]
    out_dir = searched["tmp"] / "run"
    assert main(["train", str(searched["tmp"] / "best.yaml"), "--out", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    assert "Test accuracy:" in printed and "weighted avg" in printed
    metrics = json.loads((out_dir / "metrics.json").read_text())
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    assert tn + fp + fn + tp == metrics["test_size"] == 400
    assert metrics["accuracy"] == pytest.approx((tp + tn) / 400)
    assert metrics["precision"] == pytest.approx(tp / (tp + fp))
    assert metrics["recall"] == pytest.approx(tp / (tp + fn))
    p, r = metrics["precision"], metrics["recall"]
    assert metrics["f1"] == pytest.approx(2 * p * r / (p + r))
    assert 0.0 <= metrics["roc_auc"] <= 1.0
    assert metrics["classification_report"]["positive"]["support"] == tp + fn
    spec = load_spec(searched["tmp"] / "best.yaml")
    assert spec.result is not None and metrics["epochs"] == spec.result.best_epoch
    # Same seed, same split, same config: retraining reproduces the trial's validation score.
    assert max(metrics["validation_per_epoch"]) == pytest.approx(spec.result.value, abs=0.02)
    model = keras.models.load_model(out_dir / "model.keras")
    assert model.count_params() == metrics["param_count"]
    assert (out_dir / "report.html").stat().st_size > 0
    # Beside the model, the majority-class baseline (the slice is balanced: 0.5).
    assert metrics["baseline"]["accuracy"] == pytest.approx(0.5)
    assert metrics["task"] == "text_classification" and metrics["metric"] == "val_accuracy"


def test_a_search_space_file_cannot_be_trained(searched: dict, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["train", str(searched["study_file"]), "--out", str(searched["tmp"] / "x")]) == 2
    assert "must have a single value" in capsys.readouterr().err


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lstm_tune.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "LSTM_TUNE_STORAGE": ""},
        timeout=120,
    )


def test_broken_study_file_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, study_file: StudyFile
) -> None:
    study = study_file(name="broken", space={**TINY_SPACE, "hidden_size": {"low": 64, "high": 16}})
    result = _run_cli("search", str(study), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"lstm-tune: error: {study}: space.hidden_size: got")
    assert "low <= high" in lines[0] and "Traceback" not in result.stderr
    assert list(tmp_path.glob("*.db")) == []
    debug = _run_cli("--debug", "search", str(study), cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_reading_a_study_does_not_load_tensorflow() -> None:
    # TensorFlow writes start-up lines to stderr on some CPUs (oneDNN notices that
    # TF_CPP_MIN_LOG_LEVEL does not silence), which would bury export-best's one-line errors.
    code = (
        "import sys, lstm_tune.tuning.export, lstm_tune.results.report; "
        "print('tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_unknown_study_name_is_one_line(tmp_path: Path) -> None:
    import optuna

    # An existing storage without that study (a missing file is refused before: see
    # tests/integration/test_cli_readonly.py).
    optuna.create_study(storage=f"sqlite:///{tmp_path / 'x.db'}", study_name="other")
    result = _run_cli(
        "export-best",
        "--study-name",
        "nope",
        "--storage",
        f"sqlite:///{tmp_path / 'x.db'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"lstm-tune: error: no study named 'nope' in sqlite:///{tmp_path / 'x.db'}; "
        "see the names with `optuna studies --storage URL`"
    )
