"""A study knows its own spec: a resume that changes what a trial means stops with one line,
`--accept-changes` records the change, and export-best writes what the best trial ran with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from lstm_tune.config import load_spec
from lstm_tune.errors import ConfigError
from lstm_tune.storages import SPEC_ATTR, open_storage
from lstm_tune.tuning.specdiff import diff, is_free, meaningful_changes
from lstm_tune.tuning.studies import SPEC_ID_ATTR, open_study, tag_trials, trial_spec
from tests.helpers import ROOT, TINY_SPACE
from tests.helpers.studies import StudyFile


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "s",
        "seed": 3,
        "data": {"path": "a.csv", "max_features": 500},
        "training": {"epochs": 2},
        "search": {"n_trials": 4, "sampler": {"name": "random"}, "pruner": {"name": "none"}},
        "space": {name: dict(value) for name, value in TINY_SPACE.items()},
    }
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = doc
        for key in parents:
            node = node[key]
        node[last] = value
    return doc


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LSTM_TUNE_STORAGE": ""}
    env.pop("LSTM_TUNE_DATA_PATH", None)
    return subprocess.run(
        [sys.executable, "-m", "lstm_tune.cli", *args],
        capture_output=True, text=True, env=env, cwd=cwd or ROOT, timeout=120,
    )  # fmt: skip


def test_the_diff_is_generic_over_the_documents_keys() -> None:
    old = _doc()
    new = _doc()
    new["data"]["text_column"] = "review"  # a key this module has never heard of
    new["data"]["max_features"] = 800
    new["data"]["path"] = "b.csv"
    new["data"]["test_path"] = "t.csv"
    new["search"]["n_trials"] = 40
    new["search"]["sampler"] = {"name": "tpe", "options": {"n_startup_trials": 9}}
    new["space"]["learning_rate"]["log"] = False
    changed = [c.path for c in meaningful_changes(old, new)]
    assert changed == ["data.max_features", "data.text_column", "space.learning_rate.log"]
    assert {c.path for c in diff(old, new)} >= {"data.path", "search.n_trials"}
    assert is_free("search.pruner.options.n_startup_trials") and not is_free("seed")


def test_a_resume_that_changes_epochs_or_a_range_stops_with_one_line(
    tmp_path: Path, study_file: StudyFile
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _cli("create-study", str(study_file(**_doc())), "--storage", url).returncode == 0
    changed = _doc(training__epochs=3)
    changed["space"]["learning_rate"] = {"low": 1e-3, "high": 1e-2}  # log -> linear
    run = _cli("create-study", str(study_file(**changed, filename="c.yaml")), "--storage", url)
    assert run.returncode == 2, run.stderr
    line = run.stderr.strip()
    assert "\n" not in line and line.startswith("lstm-tune: error: study 's' in sqlite:////")
    assert "training.epochs: 2 -> 3" in line
    assert "space.learning_rate.log: True -> (absent)" in line
    assert "--study-name" in line and "--accept-changes" in line
    stored = optuna.load_study(study_name="s", storage=url).user_attrs[SPEC_ATTR]
    assert stored["training"]["epochs"] == 2  # nothing recorded


def test_budget_sampler_pruner_and_paths_may_change_freely(
    tmp_path: Path, study_file: StudyFile
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _cli("create-study", str(study_file(**_doc())), "--storage", url).returncode == 0
    free = _doc(search__n_trials=50, search__timeout=600, data__path="elsewhere/a.csv")
    free["search"]["sampler"] = {"name": "tpe", "options": {"n_startup_trials": 5}}
    free["search"]["pruner"] = {"name": "median"}
    run = _cli("create-study", str(study_file(**free, filename="f.yaml")), "--storage", url)
    assert run.returncode == 0, run.stderr


def _toy_trials(spec_path: Path, url: str, n: int, value: float, **kw: Any) -> None:
    """Run ``n`` trials of the real study set-up with a toy objective (no training)."""
    spec = load_spec(spec_path)
    study = open_study(spec, storage_url=url, study_name="s", **kw)
    from lstm_tune.config import spec_to_dict
    from lstm_tune.tuning.space import suggest

    def objective(trial: optuna.Trial) -> float:
        suggest(trial, spec.space)
        return value + trial.number / 1000

    study.optimize(tag_trials(objective, spec_to_dict(spec)), n_trials=n)


def test_accept_changes_applies_from_the_next_trial_and_export_writes_what_ran(
    tmp_path: Path, study_file: StudyFile
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = study_file(**_doc(data__path=str(tmp_path / "first.csv")))
    _toy_trials(first, url, 2, value=0.9)  # the best trials ran 2 epochs on first.csv
    fixed = _doc(data__path=str(tmp_path / "fixed.csv"), training__epochs=4)
    second = study_file(**fixed, filename="second.yaml")
    with pytest.raises(ConfigError, match="training.epochs: 2 -> 4"):
        _toy_trials(second, url, 1, value=0.5)
    _toy_trials(second, url, 2, value=0.5, accept_changes=True)

    study = optuna.load_study(study_name="s", storage=open_storage(url))
    assert study.user_attrs[SPEC_ATTR]["training"]["epochs"] == 4
    ran = [trial_spec(study, t) for t in study.trials]
    assert [r["training"]["epochs"] for r in ran if r] == [2, 2, 4, 4]
    assert len({t.user_attrs[SPEC_ID_ATTR] for t in study.trials}) == 2

    out = tmp_path / "best.yaml"
    run = _cli("export-best", "--study-name", "s", "--storage", url, "-o", str(out))
    assert run.returncode == 0, run.stderr
    best = yaml.safe_load(out.read_text())
    assert best["result"]["trial_number"] == 1
    assert (best["data"]["path"], best["training"]["epochs"]) == (str(tmp_path / "first.csv"), 2)

    # --data-path given to export-best wins over the stored path.
    local = tmp_path / "here.csv"
    run = _cli("export-best", "--study-name", "s", "--storage", url, "-o", str(out),
               "--data-path", str(local))  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert yaml.safe_load(out.read_text())["data"]["path"] == str(local)


def test_accept_changes_refuses_a_range_optuna_cannot_mix_in_one_study(
    tmp_path: Path, study_file: StudyFile
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    _toy_trials(study_file(**_doc()), url, 1, value=0.7)
    linear = _doc()
    linear["space"]["learning_rate"] = {"low": 1e-3, "high": 1e-2}
    run = _cli("create-study", str(study_file(**linear, filename="l.yaml")), "--storage", url,
               "--accept-changes")  # fmt: skip
    assert run.returncode == 2
    line = run.stderr.strip()
    assert "\n" not in line and "space.learning_rate" in line and "--study-name" in line
    assert "log configuration" in line


def test_an_accepted_compatible_range_change_is_searched_from_the_next_trial(
    tmp_path: Path, study_file: StudyFile
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    _toy_trials(study_file(**_doc()), url, 2, value=0.7)
    wider = _doc()
    wider["space"]["hidden_size"] = {"low": 16, "high": 24}
    _toy_trials(study_file(**wider, filename="w.yaml"), url, 3, value=0.6, accept_changes=True)
    study = optuna.load_study(study_name="s", storage=url)
    assert all(16 <= t.params["hidden_size"] <= 24 for t in study.trials[2:])
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 5
