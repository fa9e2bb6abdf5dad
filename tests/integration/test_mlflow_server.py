"""MLflow tracking against a real tracking server: `mlflow server` (SQLite backend store,
artifacts served through it) started on 127.0.0.1 by the test, a search logging to it over
HTTP, every run read back with MlflowClient. What the runs hold in every state (pruned,
failed) and an unreachable server are in tests/unit/results/test_tracking.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from lstm_tune.cli import main
from tests.helpers import require_or_skip
from tests.helpers.servers import mlflow_server, mlflow_server_problem
from tests.helpers.studies import StudyFile


@pytest.fixture
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a fresh `mlflow server`, stopped after the test."""
    problem = mlflow_server_problem()
    if problem:
        require_or_skip(problem)
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


@pytest.mark.slow
def test_a_search_logs_one_run_per_trial_to_a_tracking_server(
    mlflow_url: str,
    imdb_slice: Path,
    study_file: StudyFile,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LSTM_TUNE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LSTM_TUNE_MLFLOW_TRACKING_URI", raising=False)
    study = study_file(
        name="srv",
        data={"path": str(imdb_slice)},
        training={"epochs": 2},
    )  # two trials
    storage = f"sqlite:///{tmp_path / 'srv.db'}"
    argv = ["search", str(study), "--storage", storage, "--mlflow-tracking-uri", mlflow_url]
    assert main(argv) == 0

    trials = optuna.load_study(study_name="srv", storage=storage).trials
    assert len(trials) == 2
    client = MlflowClient(mlflow_url)
    experiment = client.get_experiment_by_name("srv")  # no experiment given: the study's name
    assert experiment is not None
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["srv-trial-0", "srv-trial-1"]
    for trial in trials:
        run = runs[f"srv-trial-{trial.number}"]
        # The final state.
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert run.info.status == "FINISHED"
        assert run.data.tags["state"] == "COMPLETE"
        assert run.data.tags["number"] == str(trial.number)
        assert run.data.metrics["value"] == pytest.approx(trial.value)
        # The params: every sampled knob, as sampled.
        assert run.data.params == {name: str(value) for name, value in trial.params.items()}
        # The epoch metrics, one point per epoch (step = epoch).
        history = trial.user_attrs["history"]
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            points = client.get_metric_history(run.info.run_id, name)
            assert [m.step for m in points] == [1, 2], name
            assert [m.value for m in points] == pytest.approx(history[name]), name
        # The learning curve, stored through the server's artifact proxy.
        curve = f"learning-curve-trial-{trial.number}.svg"
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == [curve]
        local = client.download_artifacts(run.info.run_id, curve, str(tmp_path))
        assert Path(local).read_text().lstrip().startswith("<svg")
