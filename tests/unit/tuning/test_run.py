"""run_study, the orchestration under ``lstm-tune search``, called from Python: what it checks
before anything is written, the sampler and pruner built once, the lines it says, a stop
while a trial runs, and a local pool's launch."""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

from lstm_tune.config import StudySpec, parse_spec
from lstm_tune.errors import ConfigError, LstmTuneError
from lstm_tune.runtime.workers_and_threads import THREADS_ENV, Threads
from lstm_tune.tuning import run as run_module
from lstm_tune.tuning import studies
from lstm_tune.tuning.run import (
    ArtifactDir,
    Finished,
    PoolFinished,
    Stopped,
    WorkerLaunch,
    run_study,
)
from lstm_tune.tuning.sampler_and_pruner import Strategy
from tests.helpers import TINY_SPACE

# One config of the tiny space (trials take seconds): each range's low end, the first choice.
TINY = {name: r["low"] if "low" in r else r["choices"][0] for name, r in TINY_SPACE.items()}


def _spec(data: Path, cache: Path, **search: Any) -> StudySpec:
    doc = {
        "name": "run",
        "data": {"path": str(data), "max_features": 200, "cache_dir": str(cache)},
        "training": {"epochs": 1},
        "search": {"n_trials": 1, **search},
        "params": TINY,
    }
    return parse_spec(doc, "run.yaml")


class _Said(list[str]):
    """The lines a run said, in order."""

    def __call__(self, line: str) -> None:
        self.append(line)


class _Kept:
    """Artifact hooks that remember which trials they saw (and can stop the process)."""

    def __init__(self, path: str, *, stop_on_trained: bool = False) -> None:
        self.path = path
        self.trained: list[int] = []
        self.stop_on_trained = stop_on_trained

    def on_trained(self, trial: optuna.trial.Trial, model: Any, recorder: Any) -> None:
        self.trained.append(trial.number)
        if self.stop_on_trained:
            os.kill(os.getpid(), signal.SIGTERM)  # as `docker compose stop` would

    def on_pruned(self, trial: optuna.trial.Trial, recorder: Any) -> None:
        raise AssertionError("a fixed config with the default pruner is never pruned here")


@pytest.mark.slow
def test_one_worker_runs_the_budget_and_says_what_it_does(
    imdb_slice: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[StudySpec] = []
    real_build = run_module.build_strategy

    def counted_build(spec: StudySpec) -> Strategy:
        built.append(spec)
        return real_build(spec)

    monkeypatch.setattr(run_module, "build_strategy", counted_build)
    monkeypatch.setattr(studies, "build_strategy", lambda s: pytest.fail("built a second time"))
    said, kept = _Said(), []
    storage = f"sqlite:///{tmp_path / 'run.db'}"

    def open_kept(path: str) -> _Kept:
        kept.append(_Kept(path))
        return kept[-1]

    ended = run_study(
        _spec(imdb_slice, tmp_path / "cache"),
        storage=storage,
        study_name="run",
        say=said,
        artifacts=ArtifactDir(str(tmp_path / "artifacts"), open_kept),
    )
    assert isinstance(ended, Finished)
    assert (ended.outcome.finished, ended.outcome.stopped_because) == (1, "budget reached")
    assert ended.seconds > 0
    assert len(built) == 1, "the sampler and pruner are built once for the whole run"
    assert [k.trained for k in kept] == [[0]]
    # One worker keeps TensorFlow's threads (a test process cannot set them once TensorFlow
    # has run); it says what TensorFlow reports.
    assert said[0].startswith("TensorFlow threads: intra-op ")
    assert said[1] == f"study 'run' on {storage}; artifacts in {tmp_path / 'artifacts'}"
    # Without a progress stream the epoch, trial and status lines come through say too.
    assert said[2].startswith("epoch 1/1 of trial 0: val_accuracy=")
    assert said[3].startswith("trial   0 COMPLETE value=0.")
    assert said[4].startswith("trials [####################]   1/1 | best 0.")
    assert len(said) == 5


@pytest.mark.parametrize(
    ("storage", "search", "says"),
    [
        ("sqlite://", {}, "in-memory SQLite"),
        ("sqlite:///{tmp}/s.db", {"sampler": {"name": "tpe", "options": {"n_startup": 1}}},
         "search.sampler.options"),
        ("sqlite:///{tmp}/s.db", {"pruner": {"name": "median", "options": {"warmup": 1}}},
         "search.pruner.options"),
    ],
)  # fmt: skip
def test_the_storage_url_then_the_strategy_are_checked_before_the_data_is_read(
    tmp_path: Path, storage: str, search: dict[str, Any], says: str
) -> None:
    # No data file: were the data read first, its error would come instead of the one here.
    with pytest.raises(LstmTuneError, match=says):
        run_study(
            _spec(tmp_path / "missing.csv", tmp_path / "cache", **search),
            storage=storage.format(tmp=tmp_path),
            study_name="run",
            say=_Said(),
        )
    assert list(tmp_path.iterdir()) == [], "nothing was written"


@pytest.mark.parametrize(
    ("workers", "launch", "error", "says"),
    [
        (0, None, ConfigError, "workers: got 0; expected a count >= 1 or 'auto'"),
        ("many", None, ConfigError, "workers: got 'many'"),
        (2, None, ValueError, "workers=2 needs launch="),
        ("auto", None, ValueError, "workers='auto' needs launch="),
    ],
)
def test_a_worker_count_is_checked_first(
    tmp_path: Path, workers: Any, launch: WorkerLaunch | None, error: type, says: str
) -> None:
    with pytest.raises(error, match=says):
        run_study(
            _spec(tmp_path / "missing.csv", tmp_path / "cache"),
            storage="sqlite://",  # would fail next: the worker count comes before it
            study_name="run",
            say=_Said(),
            workers=workers,
            launch=launch,
        )


@pytest.mark.slow
def test_a_stop_while_a_trial_runs_releases_it_and_says_so_through_warn(
    imdb_slice: Path, tmp_path: Path
) -> None:
    said, warned = _Said(), _Said()
    storage = f"sqlite:///{tmp_path / 'stop.db'}"
    ended = run_study(
        _spec(imdb_slice, tmp_path / "cache"),
        storage=storage,
        study_name="run",
        say=said,
        warn=warned,
        artifacts=ArtifactDir(
            str(tmp_path / "artifacts"), lambda path: _Kept(path, stop_on_trained=True)
        ),
    )
    assert ended == Stopped("SIGTERM", signal.SIGTERM)
    assert len(warned) == 1 and warned[0].startswith("SIGTERM: trial 0 "), warned
    assert not any(line.startswith("SIGTERM") for line in said)
    trial = optuna.load_study(study_name="run", storage=storage).trials[0]
    assert trial.state != optuna.trial.TrialState.RUNNING, "a stopped run leaves no trial held"


def test_a_pool_creates_the_study_once_and_launches_the_workers_the_caller_describes(
    imdb_slice: Path, tmp_path: Path
) -> None:
    said = _Said()
    storage = f"sqlite:///{tmp_path / 'pool.db'}"
    worker = "import os, sys; print('worker', sys.argv[1], os.environ['" + THREADS_ENV + "'])"
    ended = run_study(
        _spec(imdb_slice, tmp_path / "cache"),
        storage=storage,
        study_name="pool",
        say=said,
        workers=2,
        threads=Threads(3, 0),
        launch=WorkerLaunch(
            argv=lambda index: [sys.executable, "-c", worker, str(index)], env=dict(os.environ)
        ),
        artifacts=ArtifactDir(str(tmp_path / "artifacts"), lambda path: pytest.fail("opened")),
    )
    assert isinstance(ended, PoolFinished)
    assert ended.result.exit_codes == [0, 0] and ended.result.exit_code == 0
    assert said[0] == f"pool of 2 workers on study 'pool' at {storage}"
    assert sorted(said[1:]) == ["[w0] worker 0 3,0", "[w1] worker 1 3,0"]
    assert optuna.load_study(study_name="pool", storage=storage).user_attrs["lstm_tune_spec"]
    assert not (tmp_path / "artifacts").exists(), "a pool's parent runs no trial"


@pytest.mark.slow
def test_with_a_progress_stream_the_trial_lines_go_there(imdb_slice: Path, tmp_path: Path) -> None:
    said, shown = _Said(), io.StringIO()
    ended = run_study(
        _spec(imdb_slice, tmp_path / "cache"),
        storage=f"sqlite:///{tmp_path / 'p.db'}",
        study_name="run",
        say=said,
        progress=shown,
    )
    assert isinstance(ended, Finished)
    assert said == [
        said[0],
        f"study 'run' on sqlite:///{tmp_path / 'p.db'}",  # no artifacts: none said
    ]
    assert said[0].startswith("TensorFlow threads: ")
    assert "trial   0 COMPLETE" in shown.getvalue()
