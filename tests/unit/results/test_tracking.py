"""MLflow tracking (lstm_tune.results.tracking): each trial a run, read back with MlflowClient
from a local sqlite:/// tracking store; the final model's run from `train`; a server that cannot
be reached warns once, hides the URI's password and changes nothing in the search."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from lstm_tune.cli import main
from lstm_tune.config import MlflowSpec
from lstm_tune.results.tracking import MlflowTracker
from tests.helpers.pg import free_port
from tests.helpers.studies import StudyFile

mlflow = pytest.importorskip("mlflow")
SIX = ["batch_size", "dropout_rate", "hidden_size", "learning_rate", "num_layers",
       "sequence_length"]  # fmt: skip


def _runs(uri: str, experiment: str) -> dict[str, Any]:
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    return {run.info.run_name: run for run in client.search_runs([found.experiment_id])}


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # A sqlite:/// store keeps artifacts in ./mlruns of the working directory.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LSTM_TUNE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LSTM_TUNE_MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.mark.slow
def test_each_trial_is_a_run_and_train_logs_the_final_model(
    in_tmp: Path, imdb_slice: Path, study_file: StudyFile
) -> None:
    uri = f"sqlite:///{in_tmp / 'mlflow.db'}"
    study = study_file(
        name="ml",
        data={"path": str(imdb_slice)},
        training={"epochs": 2},
        tracking={"mlflow": {"tracking_uri": uri, "experiment": "lstm"}},
    )
    assert main(["search", str(study)]) == 0
    runs = _runs(uri, "lstm")
    assert sorted(runs) == ["ml-trial-0", "ml-trial-1"]
    trials = optuna.load_study(study_name="ml", storage=f"sqlite:///{in_tmp / 'ml.db'}").trials
    client = mlflow.MlflowClient(uri)
    for trial in trials:
        run = runs[f"ml-trial-{trial.number}"]
        assert run.info.status == "FINISHED" and run.data.tags["state"] == "COMPLETE"
        assert sorted(run.data.params) == SIX
        assert float(run.data.params["learning_rate"]) == trial.params["learning_rate"]
        assert run.data.metrics["value"] == pytest.approx(trial.value)
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == [1, 2]
        assert [m.value for m in history] == pytest.approx(
            trial.user_attrs["history"]["val_accuracy"]
        )
        assert {"loss", "val_loss", "accuracy"} <= set(run.data.metrics)
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
        assert artifacts == [f"learning-curve-trial-{trial.number}.svg"]

    # export-best leaves the tracking section out (it may hold a password); train takes it
    # from the flag.
    assert main(["export-best", "--study-name", "ml", "--storage",
                 f"sqlite:///{in_tmp / 'ml.db'}", "-o", "best.yaml"]) == 0  # fmt: skip
    assert "tracking" not in yaml.safe_load(Path("best.yaml").read_text())
    assert main(["train", "best.yaml", "--out", "model", "--mlflow-tracking-uri", uri]) == 0
    final = _runs(uri, "ml")["ml-final"]  # no experiment in the file: the study's name
    assert final.info.status == "FINISHED" and sorted(final.data.params) == SIX
    metrics = json.loads(Path("model", "metrics.json").read_text())
    assert final.data.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
    names = sorted(a.path for a in client.list_artifacts(final.info.run_id))
    assert names == ["metrics.json", "report.html"]


def test_pruned_and_failed_trials_end_their_runs_with_that_state(in_tmp: Path) -> None:
    uri = f"sqlite:///{in_tmp / 'mlflow.db'}"
    tracker = MlflowTracker(MlflowSpec(tracking_uri=uri), "st", "maximize")
    study = optuna.create_study(study_name="st", direction="maximize")
    for state in (TrialState.PRUNED, TrialState.FAIL, TrialState.COMPLETE):
        trial = study.ask()
        trial.suggest_int("hidden_size", 4, 8)
        value = 0.5 if state == TrialState.COMPLETE else None
        frozen = study.tell(trial, value, state=state)
        tracker.on_finished(study, frozen)
    tracker.close()
    runs = _runs(uri, "st")
    status = {name: (run.info.status, run.data.tags["state"]) for name, run in runs.items()}
    assert status == {
        "st-trial-0": ("KILLED", "PRUNED"),
        "st-trial-1": ("FAILED", "FAIL"),
        "st-trial-2": ("FINISHED", "COMPLETE"),
    }
    assert runs["st-trial-2"].data.metrics["value"] == 0.5
    assert "value" not in runs["st-trial-1"].data.metrics
    assert all(run.data.params.keys() == {"hidden_size"} for run in runs.values())


def test_an_unreachable_server_warns_once_without_the_password_and_fails_nothing(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # MLflow's own retries, cut short so the test is fast (a user sets the same variables).
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    uri = f"http://alice:s3cret@127.0.0.1:{free_port()}"
    tracker = MlflowTracker(MlflowSpec(tracking_uri=uri), "st", "maximize")
    study = optuna.create_study(study_name="st", direction="maximize")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            trial = study.ask()
            trial.suggest_int("hidden_size", 4, 8)
            tracker.on_finished(study, study.tell(trial, 0.5))  # returns at once
        tracker.close(timeout=30)
    ours = [r for r in caplog.records if r.name == "lstm_tune.tracking"]
    assert len(ours) == 1, [r.getMessage() for r in ours]
    line = ours[0].getMessage()
    assert "MLflow tracking at http://alice:***@127.0.0.1" in line and "search goes on" in line
    assert "s3cret" not in caplog.text
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3


@pytest.mark.slow
def test_a_search_with_an_unreachable_server_ends_as_one_without_tracking(
    in_tmp: Path,
    imdb_slice: Path,
    study_file: StudyFile,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    study = study_file(name="u", data={"path": str(imdb_slice)})
    results = {}
    for name, flags in (
        ("plain", []),
        ("tracked", ["--mlflow-tracking-uri", f"http://bob:hunter2@127.0.0.1:{free_port()}"]),
    ):
        storage = f"sqlite:///{in_tmp / f'{name}.db'}"
        with caplog.at_level(logging.WARNING):
            assert main(["search", str(study), "--storage", storage, *flags]) == 0
        trials = optuna.load_study(study_name="u", storage=storage).trials
        results[name] = [(t.state, t.params, t.value) for t in trials]
    assert results["tracked"] == results["plain"]
    assert len([r for r in caplog.records if r.name == "lstm_tune.tracking"]) == 1
    assert "hunter2" not in caplog.text + str(capsys.readouterr())


def test_tracking_needs_mlflow_installed_and_says_how(
    study_file: StudyFile, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    study = study_file(name="n", tracking={"mlflow": {"tracking_uri": "sqlite:///x.db"}})
    assert main(["search", str(study)]) == 2
    assert capsys.readouterr().err == (
        f"lstm-tune: error: {study}: tracking.mlflow: MLflow tracking needs the mlflow "
        f"package, which is not installed; pip install 'lstm-tune[mlflow]'\n"
    )
