"""`lstm-tune dashboard` serves optuna-dashboard for a real study storage."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from lstm_tune.cli import main
from lstm_tune.results.dashboard import DEFAULT_HOST, make_dashboard_server
from tests.helpers.servers import api_url, dashboard_process, get_json
from tests.helpers.toy_study import make_toy_study


def test_dashboard_command_serves_the_study_and_its_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'toy.db'}"
    study = make_toy_study(url, "toy-dashboard", n_trials=8)
    with dashboard_process(url, tmp_path / "artifacts") as base:
        assert base.startswith("http://127.0.0.1:") and base.endswith("/dashboard/")
        summaries = get_json(api_url(base, "studies"))["study_summaries"]
        assert [s["study_name"] for s in summaries] == ["toy-dashboard"]
        detail = get_json(api_url(base, f"studies/{summaries[0]['study_id']}?after=0"))
        assert detail["name"] == "toy-dashboard"
        states = sorted(t["state"] for t in detail["trials"])
        assert states == sorted(t.state.name.capitalize() for t in study.trials)
        assert len(detail["trials"]) == 8
    # A viewer creates nothing: the artifact dir appears when a worker first writes to it.
    assert not (tmp_path / "artifacts").exists()


def test_dashboard_binds_loopback_by_default(tmp_path: Path) -> None:
    assert DEFAULT_HOST == "127.0.0.1"
    url = f"sqlite:///{tmp_path / 'x.db'}"
    optuna.create_study(storage=url, study_name="x")
    server = make_dashboard_server(url, port=0, artifact_dir=None)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_dashboard_rejects_a_bad_port_and_a_busy_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'x.db'}"
    args = ["dashboard", "--storage", storage, "--artifact-dir", str(tmp_path / "a")]
    assert main([*args, "--port", "0"]) == 2  # a mistyped path must not become an empty db
    assert f"SQLite file {str(tmp_path / 'x.db')!r} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()
    optuna.create_study(storage=storage, study_name="x")
    assert main([*args, "--port", "70000"]) == 2
    assert "--port must be between 0 and 65535, got 70000" in capsys.readouterr().err
    busy = make_dashboard_server(storage, port=0, artifact_dir=None)
    try:
        port = str(busy.server_port)
        assert main([*args, "--port", port]) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    finally:
        busy.server_close()


def test_dashboard_without_storage_says_how_to_give_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LSTM_TUNE_STORAGE", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "imdb.db").touch()
    assert main(["dashboard"]) == 2
    err = capsys.readouterr().err
    assert "no storage given: pass --storage URL" in err
    assert "found here: sqlite:///studies/imdb.db" in err
