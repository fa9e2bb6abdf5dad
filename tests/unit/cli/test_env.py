"""What the environment and the defaults give a command (lstm_tune.cli.env): flag >
environment variable > default for every setting, and the one rule for where a study's
storage and artifacts are by default, whichever command asks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lstm_tune.cli.env import (
    ARTIFACT_DIR_ENV,
    CACHE_ENV,
    DATA_PATH_ENV,
    STORAGE_ENV,
    default_cache_dir,
    given_storage,
    load_with_overrides,
    resolve_artifact_dir,
    resolve_storage,
    threads_from_env,
)
from lstm_tune.errors import ConfigError
from lstm_tune.runtime.workers_and_threads import THREADS_ENV, Threads
from tests.helpers import TINY_SPACE


@pytest.fixture(autouse=True)
def _no_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (STORAGE_ENV, ARTIFACT_DIR_ENV, DATA_PATH_ENV, CACHE_ENV, THREADS_ENV):
        monkeypatch.delenv(name, raising=False)


def test_the_default_storage_is_beside_the_study_file_else_in_studies(tmp_path: Path) -> None:
    study_file = tmp_path / "dir" / "s.yaml"
    # search and create-study: the study file's directory, absolute wherever they run.
    assert resolve_storage(None, "s", str(study_file)) == f"sqlite:///{tmp_path / 'dir'}/s.db"
    # export-best, finalize and report have no study file: studies/ where they run.
    assert resolve_storage(None, "s") == "sqlite:///studies/s.db"


def test_the_default_artifact_dir_follows_the_same_rule(tmp_path: Path) -> None:
    study_file = tmp_path / "dir" / "s.yaml"
    assert resolve_artifact_dir(None, str(study_file)) == str(tmp_path / "dir" / "artifacts")
    assert resolve_artifact_dir(None) == "studies/artifacts"


def test_storage_and_artifacts_are_the_flag_then_the_variable_then_the_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(STORAGE_ENV, "")  # empty, as compose passes an unset variable
    monkeypatch.setenv(ARTIFACT_DIR_ENV, "")
    assert given_storage(None) is None
    assert resolve_storage(None, "s") == "sqlite:///studies/s.db"
    assert resolve_artifact_dir(None) == "studies/artifacts"
    monkeypatch.setenv(STORAGE_ENV, "sqlite:///env.db")
    monkeypatch.setenv(ARTIFACT_DIR_ENV, "/env/artifacts")
    assert resolve_storage(None, "s") == given_storage(None) == "sqlite:///env.db"
    assert resolve_artifact_dir(None) == "/env/artifacts"
    assert resolve_storage("sqlite:///flag.db", "s") == "sqlite:///flag.db"
    assert resolve_artifact_dir("/flag") == "/flag"


def test_data_path_precedence_is_flag_then_environment_then_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({"name": "s", "data": {"path": "file.csv"},
                                     "space": TINY_SPACE}))  # fmt: skip
    assert load_with_overrides(str(study), None).data.path == str(tmp_path / "file.csv")
    monkeypatch.setenv(DATA_PATH_ENV, "/data/env.csv.gz")
    assert load_with_overrides(str(study), None).data.path == "/data/env.csv.gz"
    assert load_with_overrides(str(study), "/flag.csv").data.path == "/flag.csv"
    monkeypatch.setenv(DATA_PATH_ENV, "")  # empty, as compose passes an unset variable
    assert load_with_overrides(str(study), None).data.path == str(tmp_path / "file.csv")


def test_the_cache_dir_is_the_variable_then_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == str(tmp_path / "xdg" / "lstm-tune")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert default_cache_dir() == str(tmp_path / "mine")
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({"name": "s", "space": TINY_SPACE}))
    assert load_with_overrides(str(study), None).data.cache_dir == str(tmp_path / "mine")


def test_threads_come_from_the_variable_checked_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert threads_from_env() is None
    monkeypatch.setenv(THREADS_ENV, " 2,1 ")
    assert threads_from_env() == Threads(2, 1)
    monkeypatch.setenv(THREADS_ENV, "two")
    with pytest.raises(ConfigError, match="LSTM_TUNE_THREADS: got 'two'"):
        threads_from_env()
