"""Small CLI promises: --version, read-only commands create no file, and the URLs `search`
prints work where they are pasted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lstm_tune.cli.main import version
from tests.helpers import ROOT
from tests.helpers import pg as _pg
from tests.helpers.studies import StudyFile


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LSTM_TUNE_STORAGE": ""}
    return subprocess.run([sys.executable, "-m", "lstm_tune.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)  # fmt: skip


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def test_version() -> None:
    run = _cli("--version", cwd=ROOT)
    assert run.returncode == 0 and run.stdout.strip() == f"lstm-tune {version()}"
    assert run.stdout.split()[1][0].isdigit()


@pytest.mark.parametrize("command", ["export-best", "report"])
def test_a_read_only_command_on_a_mistyped_study_creates_no_file(
    tmp_path: Path, command: str
) -> None:
    (tmp_path / "studies").mkdir()
    before = _files(tmp_path)
    run = _cli(command, "--study-name", "typo", cwd=tmp_path)
    assert run.returncode == 2
    assert "typo.db" in run.stderr and "does not exist" in run.stderr
    assert run.stderr.count("\n") == 1
    assert _files(tmp_path) == before


def test_the_dashboard_takes_the_url_create_study_prints_and_creates_nothing(
    tmp_path: Path, study_file: StudyFile
) -> None:
    study = study_file(name="s")
    work = tmp_path / "elsewhere"
    work.mkdir()
    # A relative --storage: what is printed must still name the file from anywhere.
    created = _cli("create-study", str(study), "--storage", "sqlite:///s.db", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    printed = re.search(r" ready on (\S+): ", created.stdout)
    assert printed is not None, created.stdout
    url = printed.group(1)
    assert url == f"sqlite:///{tmp_path / 's.db'}"
    before = _files(work)
    port = _pg.free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LSTM_TUNE_STORAGE": ""}
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "lstm_tune.cli", "dashboard", "--storage", url,
         "--port", str(port)],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies") as response:
                    assert b'"s"' in response.read()
                break
            except OSError:
                assert dashboard.poll() is None, dashboard.communicate()[0]
                assert time.monotonic() < deadline
                time.sleep(0.3)
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)
    assert _files(work) == before  # no studies/artifacts directory made by a viewer
