"""Every worker samples its own configs; a resumed study does not replay finished ones.

Before, each worker process seeded its sampler with the study seed, so two `lstm-tune search`
processes on one study (compose replicas, machines) proposed the same configs, and resuming
re-ran the first trial's config.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from lstm_tune.config import parse_spec
from lstm_tune.storages import open_storage
from lstm_tune.tuning.sampler_and_pruner import build_trial_seeded_sampler
from lstm_tune.tuning.space import suggest
from tests.helpers import ROOT, TINY_SPACE, write_slice
from tests.helpers.studies import write_study

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
# Random start-up trials for every sampler; then each one's own way of choosing.
SAMPLERS = {
    "random": {},
    "tpe": {"n_startup_trials": 3},
    "qmc": {"scramble": True},
}  # cmaes and gp need packages lstm-tune does not install (cmaes, torch)


def _spec(sampler: str, seed: int = 7) -> object:
    return parse_spec(
        {
            "name": "d",
            "seed": seed,
            "search": {"sampler": {"name": sampler, "options": SAMPLERS[sampler]}},
            "space": TINY_SPACE,
        },
        "d.yaml",
    )


def _toy(trial: optuna.Trial, spec: object) -> float:
    params = suggest(trial, spec.space)  # type: ignore[attr-defined]
    return float(params["learning_rate"] * 10 + params["dropout_rate"])


def _worker(url: str, spec: object) -> optuna.study.Study:
    """One worker process's view of the study: its own storage and its own sampler."""
    return optuna.load_study(
        study_name="d",
        storage=open_storage(url),
        sampler=build_trial_seeded_sampler(spec.search.sampler, spec.seed),  # type: ignore[attr-defined]
    )


def _configs(url: str) -> list[tuple[object, ...]]:
    study = optuna.load_study(study_name="d", storage=open_storage(url))
    return [tuple(sorted(t.params.items())) for t in study.trials]


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_workers_with_the_same_seed_sample_different_configs(tmp_path: Path, sampler: str) -> None:
    spec = _spec(sampler)
    url = f"sqlite:///{tmp_path / 'd.db'}"
    optuna.create_study(study_name="d", storage=open_storage(url), direction="maximize")
    workers = [_worker(url, spec), _worker(url, spec)]
    # Both ask before either tells, as two workers starting together do.
    for _ in range(4):
        trials = [w.ask() for w in workers]
        for worker, trial in zip(workers, trials, strict=True):
            worker.tell(trial, _toy(trial, spec))
    configs = _configs(url)
    assert len(configs) == 8 and len(set(configs)) == 8


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_a_single_worker_with_a_fixed_seed_repeats_its_study(tmp_path: Path, sampler: str) -> None:
    spec = _spec(sampler)
    runs = []
    for name in ("a", "b"):
        url = f"sqlite:///{tmp_path / name}.db"
        optuna.create_study(study_name="d", storage=open_storage(url), direction="maximize")
        _worker(url, spec).optimize(lambda t: _toy(t, spec), n_trials=6)
        runs.append(_configs(url))
    assert runs[0] == runs[1]
    other = tmp_path / "other.db"
    optuna.create_study(study_name="d", storage=open_storage(f"sqlite:///{other}"))
    _worker(f"sqlite:///{other}", _spec(sampler, seed=8)).optimize(lambda t: _toy(t, spec), 2)
    assert _configs(f"sqlite:///{other}")[0] != runs[0][0]  # another seed, another study


def test_a_resumed_study_does_not_replay_its_first_configs(tmp_path: Path) -> None:
    spec = _spec("random")
    url = f"sqlite:///{tmp_path / 'd.db'}"
    optuna.create_study(study_name="d", storage=open_storage(url), direction="maximize")
    _worker(url, spec).optimize(lambda t: _toy(t, spec), n_trials=4)
    _worker(url, spec).optimize(lambda t: _toy(t, spec), n_trials=2)  # a new process resumes
    configs = _configs(url)
    assert len(set(configs)) == 6


# --- real `lstm-tune search` processes -------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_study(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study whose trials take a few seconds: 400 reviews, a 4-8 unit LSTM, 1 epoch."""
    tmp = tmp_path_factory.mktemp("distinct")
    data = write_slice(shared_data, tmp / "slice.csv", 100)
    return write_study(
        tmp,
        name="distinct",
        seed=5,
        data={"path": str(data), "max_features": 500, "cache_dir": str(tmp / "cache")},
        training={"epochs": 1},
        search={"n_trials": 4, "sampler": {"name": "tpe", "options": {"n_startup_trials": 2}},
                "pruner": {"name": "none"}},
    )  # fmt: skip


def _search(study: Path, url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "lstm_tune.cli", "search", str(study), "--storage", url,
            "--artifact-dir", str(study.parent / "artifacts"), *args]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "LSTM_TUNE_STORAGE": ""}


def _finished_configs(url: str, name: str) -> list[tuple[object, ...]]:
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    return [tuple(sorted(t.params.items())) for t in study.trials if t.state.is_finished()]


@pytest.mark.slow
def test_two_search_processes_on_one_study_run_four_distinct_configs(
    tiny_study: Path, tmp_path: Path
) -> None:
    # Two processes started by hand on one study, as compose starts its replicas: no
    # --workers, no worker index.
    url = f"sqlite:///{tmp_path / 'two.db'}"
    started = time.monotonic()
    procs = [
        subprocess.Popen(_search(tiny_study, url, "--n-trials", "4"), env=_env(), cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    configs = _finished_configs(url, "distinct")
    print(f"2 processes, budget 4: {len(set(configs))} distinct configs in {len(configs)} "
          f"trainings, {time.monotonic() - started:.0f}s")  # fmt: skip
    assert all("trial" in out for out in outputs)  # both workers ran trials
    assert len(configs) == 4 and len(set(configs)) == 4


@pytest.mark.slow
def test_resuming_a_study_runs_no_finished_config_again(tiny_study: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'resume.db'}"
    for budget in ("2", "4"):  # the resumed process's first configs would be the first two
        run = subprocess.run(_search(tiny_study, url, "--n-trials", budget), env=_env(),
                             cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    configs = _finished_configs(url, "distinct")
    assert len(configs) == 4 and len(set(configs)) == 4
