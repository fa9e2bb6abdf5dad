"""The commands on a study file (lstm_tune.cli.commands.study): what search prints and returns
for each way a run ends, how it launches a pool's workers, and where create-study puts a
study by default."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from lstm_tune.cli import main
from lstm_tune.cli.command import EXIT_GAVE_UP, EXIT_STORAGE_UNREACHABLE, EXIT_USAGE
from lstm_tune.runtime.pool import PoolResult
from lstm_tune.runtime.workers_and_threads import THREADS_ENV
from lstm_tune.tuning import objective
from lstm_tune.tuning import run as run_module
from tests.helpers import TINY_SPACE
from tests.helpers.pg import free_port

# One config of the tiny space (trials take seconds): each range's low end, the first choice.
TINY = {name: r["low"] if "low" in r else r["choices"][0] for name, r in TINY_SPACE.items()}


def test_search_exits_3_when_it_gives_up_after_failures_in_a_row(
    imdb_slice: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A machine with 1 MiB available: every config is refused before training, a setup
    # problem that a pool's `restart: on-failure` must see as a failure, not a success.
    monkeypatch.setattr(objective, "available_memory_bytes", lambda: 2**20)
    monkeypatch.setenv("LSTM_TUNE_CACHE_DIR", str(tmp_path / "cache"))
    study = tmp_path / "s.yaml"
    study.write_text(
        yaml.safe_dump(
            {"name": "g", "data": {"path": str(imdb_slice)}, "search": {"n_trials": 20},
             "params": TINY}
        )
    )  # fmt: skip
    code = main(["search", str(study), "--storage", f"sqlite:///{tmp_path / 'g.db'}"])
    assert code == EXIT_GAVE_UP == 3
    captured = capsys.readouterr()
    assert captured.err.strip() == "lstm-tune: error: gave up: 5 trials failed in a row"
    assert "5 trials failed in a row: 0/20 finished trials in " in captured.out


def test_a_pools_workers_get_the_storage_through_the_environment_not_argv(
    imdb_slice: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    launched: dict[str, object] = {}

    def fake_pool(argv, count, *, say, env):  # type: ignore[no-untyped-def]
        launched.update(argv=[list(argv(i)) for i in range(count)], env=env)
        return PoolResult([0, 143], "SIGTERM")

    monkeypatch.setattr(run_module, "run_pool", fake_pool)
    monkeypatch.setenv("LSTM_TUNE_THREADS", "2,1")
    monkeypatch.setenv("LSTM_TUNE_CACHE_DIR", str(tmp_path / "cache"))
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({"name": "p", "data": {"path": str(imdb_slice)},
                                     "space": TINY_SPACE}))  # fmt: skip
    storage = f"sqlite:///{tmp_path / 'p.db'}"
    argv = ["--debug", "search", str(study), "--storage", storage, "--workers", "2"]
    code = main([*argv, "--n-trials", "4", "--data-path", str(imdb_slice)])
    assert code == 128 + 15  # the pool's own code: stopped by SIGTERM
    head = [sys.executable, "-m", "lstm_tune.cli", "--debug", "search", str(study)]
    assert launched["argv"] == [
        [*head, "--study-name", "p", "--worker-index", str(index), "--n-trials", "4",
         "--data-path", str(imdb_slice)]
        for index in range(2)
    ]  # fmt: skip
    env = launched["env"]
    assert isinstance(env, dict)
    assert env["LSTM_TUNE_STORAGE"] == storage and env[THREADS_ENV] == "2,1"
    assert env["PATH"] == os.environ["PATH"]  # the rest of this process's environment
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"pool of 2 workers on study 'p' at {storage}",
        "pool finished: worker exit codes [0, 143] (stopped by SIGTERM)",
    ]


def test_create_study_puts_the_study_beside_its_file_wherever_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "studies here"
    folder.mkdir()
    (folder / "s.yaml").write_text(yaml.safe_dump({"name": "s", "space": TINY_SPACE}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("LSTM_TUNE_STORAGE", raising=False)
    assert main(["create-study", str(folder / "s.yaml"), "--study-name", "n"]) == 0
    assert capsys.readouterr().out == (
        f"study 'n' ready on sqlite:///{folder / 'n.db'}: 0 finished trials, 0 in all\n"
    )
    assert (folder / "n.db").is_file() and list(elsewhere.iterdir()) == []


def test_create_study_takes_the_data_path_a_worker_takes_and_refuses_a_study_that_differs(
    imdb_slice: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A pool's init and its workers must record and check the same spec: a study created
    # without the workers' local data file stores the download (data.source keras), and every
    # worker given --data-path would then stop on the mismatch (exit 2, for ever restarted).
    monkeypatch.delenv("LSTM_TUNE_DATA_PATH", raising=False)
    monkeypatch.setenv("LSTM_TUNE_CACHE_DIR", str(tmp_path / "cache"))
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({"name": "s", "space": TINY_SPACE}))
    storage = ["--storage", f"sqlite:///{tmp_path / 's.db'}"]
    local = ["--data-path", str(imdb_slice)]
    assert main(["create-study", str(study), *storage, *local]) == 0
    assert main(["create-study", str(study), *storage, *local]) == 0  # a worker's check
    capsys.readouterr()
    assert main(["create-study", str(study), *storage]) == EXIT_USAGE == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was created from another spec: data.source" in err


def test_a_storage_that_stays_unreachable_exits_4_not_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Exit 2 tells a pool's supervisor that no restart helps (a Kubernetes Job fails at once);
    # a database that is down is not the input's fault.
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({"name": "s", "space": TINY_SPACE}))
    closed = f"postgresql+psycopg://u@127.0.0.1:{free_port()}/x?first_contact_timeout=0.2"
    assert main(["create-study", str(study), "--storage", closed]) == EXIT_STORAGE_UNREACHABLE
    assert EXIT_STORAGE_UNREACHABLE == 4
    err = capsys.readouterr().err
    assert err.startswith("lstm-tune: error: storage ") and "still unreachable" in err


def test_a_pools_workers_get_the_tensorboard_flag_and_the_mlflow_uri_in_their_environment(
    imdb_slice: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launched: dict[str, object] = {}

    def fake_pool(argv, count, *, say, env):  # type: ignore[no-untyped-def]
        launched.update(argv=[list(argv(i)) for i in range(count)], env=env)
        return PoolResult([0, 0], None)

    monkeypatch.setattr(run_module, "run_pool", fake_pool)
    monkeypatch.setenv("LSTM_TUNE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LSTM_TUNE_MLFLOW_TRACKING_URI", raising=False)
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({"name": "p", "data": {"path": str(imdb_slice)},
                                     "space": TINY_SPACE}))  # fmt: skip
    uri = "http://alice:s3cret@mlflow.example:5000"
    argv = ["search", str(study), "--storage", f"sqlite:///{tmp_path / 'p.db'}", "--workers",
            "2", "--tensorboard", "boards", "--mlflow-tracking-uri", uri]  # fmt: skip
    assert main(argv) == 0
    for worker_argv in launched["argv"]:  # type: ignore[attr-defined]
        assert worker_argv[worker_argv.index("--tensorboard") + 1] == "boards"
        assert not any("s3cret" in part for part in worker_argv)
    env = launched["env"]
    assert isinstance(env, dict) and env["LSTM_TUNE_MLFLOW_TRACKING_URI"] == uri
