"""One behaviour on every storage lstm-tune opens: a SQLite file, PostgreSQL, and the gRPC
proxy (`lstm-tune storage-proxy`, in front of a SQLite file, as its own process).

As Optuna's ``optuna/testing/pytest_storages.py`` does for Optuna's storages: one
parametrised fixture, :func:`backend`, and the same tests run on each. Every backend has the
same heartbeat settings (:data:`HEARTBEAT_INTERVAL`, :data:`GRACE_PERIOD`): on a direct URL
they are its options, behind the proxy the worker's ``grpc://`` URL sets the interval and the
proxy's ``--storage`` URL the grace period.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from optuna.storages import BaseStorage, GrpcStorageProxy, RDBStorage
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from lstm_tune.errors import StorageError
from lstm_tune.storages import held_trials, open_storage, raise_when_safe
from lstm_tune.storages.grpc import _RetryingGrpcStorageProxy
from tests.helpers import ROOT
from tests.helpers.servers import storage_proxy

optuna.logging.set_verbosity(optuna.logging.WARNING)
# These tests play a dead worker by hand (ask without optimize) and call Optuna's stale-trial
# check directly, which Optuna flags as experimental: both warnings are expected here.
pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used"),
]

HEARTBEAT_INTERVAL = 1
GRACE_PERIOD = 2
OPTIONS = f"heartbeat_interval={HEARTBEAT_INTERVAL}&grace_period={GRACE_PERIOD}"
SECRET = "hunter2"  # a password that must never show in an error


@dataclass(frozen=True)
class Backend:
    """A storage under test: the URL a worker opens, and where its storage side logs."""

    name: str
    url: str
    # The proxy's output (it judges staleness behind grpc://); None: this process logs it.
    proxy_log: Path | None = None

    def open(self) -> BaseStorage:
        """A new storage handle, as a new worker would open it."""
        return open_storage(self.url)

    def storage_side_log(self, caplog: pytest.LogCaptureFixture) -> str:
        """What the side that fails stale trials logged: this process, or the proxy."""
        return self.proxy_log.read_text() if self.proxy_log else caplog.text


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        "grpc",
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each storage lstm-tune supports, empty, with heartbeats every second."""
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'study.db'}?{OPTIONS}")
    elif request.param == "postgresql":
        pg_url = request.getfixturevalue("pg_url")  # skips, or fails in CI, without a server
        yield Backend("postgresql", f"{pg_url}?{OPTIONS}")
    else:
        log = tmp_path / "proxy.log"
        with storage_proxy(f"sqlite:///{tmp_path / 'proxied.db'}?{OPTIONS}", log) as address:
            url = f"{address}?heartbeat_interval={HEARTBEAT_INTERVAL}&retry_timeout=60"
            yield Backend("grpc", url, proxy_log=log)


OTHER_WORKER = """
import logging, sys, warnings, optuna
from lstm_tune.storages import open_storage
logging.basicConfig(format="%(message)s")
warnings.simplefilter("ignore")
study = optuna.load_study(study_name="s", storage=open_storage(sys.argv[1]))
optuna.storages.fail_stale_trials(study)
"""


def _another_worker_checks_for_stale_trials(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """What a worker in another process does before each trial: fail the study's stale trials.

    Its log lines join ``caplog``'s text (see :meth:`Backend.storage_side_log`).
    """
    run = subprocess.run(
        [sys.executable, "-c", OTHER_WORKER, backend.url],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    logging.getLogger("lstm_tune.storages").warning("other worker: %s", run.stderr.strip())


def _states(study: optuna.study.Study) -> list[TrialState]:
    return [t.state for t in study.get_trials(deepcopy=False)]


def _held_by(storage: BaseStorage) -> set[int]:
    return {h.trial_id for h in held_trials() if h.storage is storage}


# --- studies -------------------------------------------------------------------------------


def test_a_study_is_created_once_and_loaded_by_name_from_another_handle(
    backend: Backend,
) -> None:
    storage = backend.open()
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.set_user_attr("spec", {"layers": [1, 2], "name": "s"})
    with pytest.raises(optuna.exceptions.DuplicatedStudyError):
        optuna.create_study(storage=storage, study_name="s")
    again = optuna.create_study(storage=backend.open(), study_name="s", load_if_exists=True)
    assert again._study_id == study._study_id

    loaded = optuna.load_study(study_name="s", storage=backend.open())
    assert loaded.direction == optuna.study.StudyDirection.MAXIMIZE
    assert loaded.user_attrs == {"spec": {"layers": [1, 2], "name": "s"}}
    assert [s.study_name for s in storage.get_all_studies()] == ["s"]
    with pytest.raises(KeyError):
        optuna.load_study(study_name="missing", storage=storage)


def test_a_study_runs_and_is_stored(backend: Backend) -> None:
    study = optuna.create_study(storage=backend.open(), study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=5)
    reloaded = optuna.load_study(study_name="s", storage=backend.open())
    assert Counter(t.state.name for t in reloaded.trials) == Counter(COMPLETE=5)
    assert [t.number for t in reloaded.trials] == [0, 1, 2, 3, 4]
    assert reloaded.best_value == min(t.value for t in reloaded.trials if t.value is not None)


# --- trials --------------------------------------------------------------------------------


def test_a_trial_moves_through_its_states_and_a_finished_one_stays_finished(
    backend: Backend,
) -> None:
    storage = backend.open()
    study = optuna.create_study(storage=storage, study_name="s")
    study.enqueue_trial({"x": 0.25})
    assert _states(study) == [TrialState.WAITING]

    queued = study.ask()  # takes the queued trial: WAITING -> RUNNING
    assert queued.number == 0 and queued.suggest_float("x", 0.0, 1.0) == 0.25
    assert _states(study) == [TrialState.RUNNING]
    study.tell(queued, 0.5)
    pruned, failed = study.ask(), study.ask()
    study.tell(pruned, state=TrialState.PRUNED)
    study.tell(failed, state=TrialState.FAIL)
    assert _states(study) == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
    assert storage.get_n_trials(study._study_id, state=(TrialState.COMPLETE,)) == 1

    # A finished trial is not moved again: the storage refuses, it does not overwrite.
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_state_values(failed._trial_id, TrialState.COMPLETE, [1.0])
    assert storage.get_trial(failed._trial_id).state == TrialState.FAIL


def test_params_values_and_attributes_are_stored_as_given(backend: Backend) -> None:
    study = optuna.create_study(storage=backend.open(), study_name="s")
    trial = study.ask()
    x = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    n = trial.suggest_int("layers", 1, 3)
    kind = trial.suggest_categorical("cell", ["lstm", "gru"])
    trial.set_user_attr("epochs_run", 7)
    trial.set_user_attr("note", {"diverged": False})
    trial.report(0.7, step=1)
    trial.report(0.6, step=2)
    study.tell(trial, 0.6)

    stored = optuna.load_study(study_name="s", storage=backend.open()).trials[0]
    assert stored.params == {"lr": x, "layers": n, "cell": kind}
    assert isinstance(stored.distributions["lr"], optuna.distributions.FloatDistribution)
    assert stored.distributions["lr"].log
    assert stored.user_attrs == {"epochs_run": 7, "note": {"diverged": False}}
    assert stored.intermediate_values == {1: 0.7, 2: 0.6}
    assert stored.value == 0.6


# --- the held-trial ledger -----------------------------------------------------------------


def test_a_trial_is_held_while_running_and_released_when_finished_or_failed(
    backend: Backend,
) -> None:
    storage = backend.open()
    study = optuna.create_study(storage=storage, study_name="s")
    finished, failed = study.ask(), study.ask()
    assert _held_by(storage) == {finished._trial_id, failed._trial_id}
    held = next(h for h in held_trials() if h.trial_id == finished._trial_id)
    assert (held.study_id, held.storage) == (study._study_id, storage)

    study.tell(finished, 1.0)
    assert _held_by(storage) == {failed._trial_id}
    study.tell(failed, state=TrialState.FAIL)
    assert _held_by(storage) == set()

    study.enqueue_trial({"x": 0.5})
    queued = study.ask()  # a WAITING trial moved to RUNNING is held too
    assert _held_by(storage) == {queued._trial_id}
    study.tell(queued, 0.5)
    assert _held_by(storage) == set()


class _Stop(Exception):
    """A worker's stop (SIGTERM), as its signal handler hands it to ``raise_when_safe``."""


# The calls of each backend's own storage that move a trial to RUNNING: creating a new
# trial, and taking a queued (WAITING) one. (The gRPC storage's retrying layer keeps Optuna's
# create_new_trial from import time, so the create is replaced on that layer.)
_RDB_STARTS = ((RDBStorage, "_create_new_trial"), (RDBStorage, "set_trial_state_values"))
_STARTS = {
    "sqlite": _RDB_STARTS,
    "postgresql": _RDB_STARTS,
    "grpc": (
        (_RetryingGrpcStorageProxy, "create_new_trial"),
        (GrpcStorageProxy, "set_trial_state_values"),
    ),
}


def test_a_stop_that_comes_while_a_trial_starts_is_raised_once_the_trial_is_held(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop deferred inside the storage call that starts a trial is raised after the trial
    is held, so the stopping worker fails and re-queues it. Raised before the hold, it left a
    RUNNING trial nobody held, with no heartbeat yet, so no stale-trial check would fail it
    (the container test's `stop` found one so)."""
    storage = backend.open()
    study = optuna.create_study(storage=storage, study_name="s")
    study.enqueue_trial({"x": 0.5})
    create, set_state = _STARTS[backend.name]

    def stopped_during(where: tuple[type, str], starts: Callable[..., bool]) -> None:
        owner, name = where
        original = getattr(owner, name)

        def call(self: object, *args: object, **kwargs: object) -> object:
            result = original(self, *args, **kwargs)
            if starts(*args, **kwargs):
                raise_when_safe(_Stop())  # the signal arrives while the storage call runs
            return result

        monkeypatch.setattr(owner, name, call)

    stopped_during(create, lambda study_id, template_trial=None: template_trial is None)
    stopped_during(set_state, lambda trial_id, state, values=None: state == TrialState.RUNNING)
    with pytest.raises(_Stop):
        study.ask()  # takes the queued trial
    with pytest.raises(_Stop):
        study.ask()  # creates a new one
    running = [t._trial_id for t in backend.open().get_all_trials(study._study_id)
               if t.state == TrialState.RUNNING]  # fmt: skip
    assert len(running) == 2
    assert _held_by(storage) == set(running)


def test_a_trial_whose_worker_stopped_beating_is_failed_and_its_params_requeued(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lstm_tune.storages")
    storage = backend.open()
    dead = optuna.create_study(storage=storage, study_name="s")
    trial = dead.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
    # The "dead" worker never beats again. Another worker (its own process: the ledger is per
    # process) fails the trial before its next one; behind the proxy, the proxy's sweeper does.
    time.sleep(GRACE_PERIOD)
    deadline = time.monotonic() + 30
    alive = optuna.load_study(study_name="s", storage=backend.open())
    while _states(alive) != [TrialState.FAIL, TrialState.WAITING]:
        assert time.monotonic() < deadline, f"{backend.name}: stale trial not failed"
        _another_worker_checks_for_stale_trials(backend, caplog)
    trials = alive.get_trials(deepcopy=False)
    assert trials[1].params == {"x": x}
    assert trials[1].system_attrs["failed_trial"] == 0
    # The heartbeat is the database's own heartbeat, through the proxy too: no attribute.
    assert not any(key.startswith("lstm_tune:") for key in trials[0].system_attrs)
    assert f"trial 0 had no heartbeat for {GRACE_PERIOD}s" in backend.storage_side_log(caplog)

    # The dead worker's late result is discarded and its trial leaves the ledger.
    assert trial._trial_id in _held_by(storage)
    assert not storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [x])
    assert trial._trial_id not in _held_by(storage)
    assert "trial 0 was failed as stale by" in caplog.text
    assert storage.get_trial(trial._trial_id).state == TrialState.FAIL

    # The living worker picks the copy up first and finishes it.
    alive.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=1)
    assert alive.get_trials(deepcopy=False)[1].state == TrialState.COMPLETE


# --- passwords -----------------------------------------------------------------------------


def _urls_holding_a_password(backend: Backend) -> list[str]:
    """URLs of ``backend``'s kind that hold :data:`SECRET` and that opening must refuse."""
    if backend.name == "sqlite":  # no user part: only a query argument can hold one
        return [f"{backend.url}&password={SECRET}"]
    if backend.name == "postgresql":
        url = make_url(backend.url).set(password=SECRET)
        text = url.render_as_string(hide_password=False)
        return [
            url.set(database=f"{url.database}_missing").render_as_string(hide_password=False),
            url.update_query_dict({"grace_period": "soon"}).render_as_string(hide_password=False),
            text.replace(f":{url.port}/", ":port/"),  # a URL SQLAlchemy cannot parse
        ]
    address = backend.url.split("?")[0].removeprefix("grpc://")
    return [
        f"grpc://worker:{SECRET}@{address}",
        f"grpc://{address}?password={SECRET}",
        f"grpc://{address}?retry_timeout=-1&pwd={SECRET}",
    ]


def test_no_error_about_a_url_shows_its_password(backend: Backend) -> None:
    for url in _urls_holding_a_password(backend):
        with pytest.raises(StorageError) as info:
            open_storage(url)
        message = str(info.value)
        assert SECRET not in message, message
        assert "***" in message, message
