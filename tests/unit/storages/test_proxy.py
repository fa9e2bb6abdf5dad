"""lstm_tune.storages.proxy in this process on a SQLite file: a heartbeat written through the
proxy becomes the database's heartbeat, and the sweeper fails and re-queues stale trials.
(The proxy as its own process, with workers behind it: tests/integration.)"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from lstm_tune.errors import StorageError
from lstm_tune.storages.grpc import HEARTBEAT_KEY
from lstm_tune.storages.proxy import open_proxy_backend, start_sweeper

# A worker played by hand (ask without optimize) and Optuna's experimental stale-trial API.
pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used"),
]


def test_the_proxy_refuses_another_proxy_as_its_database() -> None:
    with pytest.raises(StorageError, match="the proxy needs the database itself") as info:
        open_proxy_backend("grpc://u:hunter2@proxy:13000")
    assert "hunter2" not in str(info.value)


def test_a_heartbeat_through_the_proxy_is_the_databases_and_stale_trials_are_swept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = open_proxy_backend(
        f"sqlite:///{tmp_path / 'p.db'}?heartbeat_interval=1&grace_period=2"
    )
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_KEY, True)  # as a worker sends it
    assert HEARTBEAT_KEY not in storage.get_trial(trial._trial_id).system_attrs

    sweeper = start_sweeper(storage)
    assert sweeper is not None and sweeper.every == 1.0
    sweeper.stopped.set()  # sweep by hand below, not on the thread's clock
    sweeper.join(timeout=5)
    sweeper.sweep()
    assert study.trials[0].state == TrialState.RUNNING  # its heartbeat is fresh
    time.sleep(3.5)  # grace_period 2 s, and SQLite stores heartbeats to the second
    with caplog.at_level(logging.WARNING, logger="lstm_tune.storages"):
        sweeper.sweep()
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    assert study.trials[1].params == {"x": x}
    assert "trial 0 had no heartbeat for 2s" in caplog.text


def test_no_sweeper_runs_when_the_database_url_turns_heartbeats_off(tmp_path: Path) -> None:
    storage = open_proxy_backend(f"sqlite:///{tmp_path / 'p.db'}?heartbeat_interval=0")
    assert start_sweeper(storage) is None


def test_a_restarted_proxy_takes_parameters_of_a_trial_created_before_it(tmp_path: Path) -> None:
    # Found by the chaos soak (issue 33): after a proxy restart, a worker's next suggest_* on
    # its running trial came back NOT_FOUND (the new proxy's cache had never seen the trial)
    # and the worker died with a traceback.
    url = f"sqlite:///{tmp_path / 'p.db'}"
    before = open_proxy_backend(url)
    study = optuna.create_study(storage=before, study_name="s")
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    after = open_proxy_backend(url)  # the proxy, started again
    after.set_trial_param(trial._trial_id, "y", 0.5, FloatDistribution(0.0, 1.0))
    assert after.get_trial(trial._trial_id).params["y"] == 0.5
