"""The Python API (:mod:`lstm_tune.api`): a search from Python is the search ``lstm-tune
search`` runs (same storage, same best trial, same exported file), its errors are the CLI's
lines as exceptions, and its result exports, trains and predicts.

Runs on a slice of the real IMDB corpus with a tiny space and one-epoch trials.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

import lstm_tune
from lstm_tune.cli import main
from lstm_tune.config import load_spec
from tests.helpers import TINY_SPACE
from tests.helpers.studies import StudyFile, write_study

CLI_PREFIX = "lstm-tune: error: "


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one line ``lstm-tune argv`` prints for its error (exit code 2)."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(CLI_PREFIX), err
    return err[0].removeprefix(CLI_PREFIX)


def _data(tmp: Path, csv: Path) -> dict[str, Any]:
    return {"path": str(csv), "max_features": 2000, "cache_dir": str(tmp / "cache")}


@pytest.fixture(scope="module")
def searched(imdb_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two trials searched from Python on the default storage (beside the study file), with
    the progress lines and standard output the search gave."""
    tmp = tmp_path_factory.mktemp("api")
    study = write_study(tmp, name="api", seed=3, data=_data(tmp, imdb_slice))
    lines: list[str] = []
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        result = lstm_tune.search(study, n_trials=2, progress=lines.append)
    return {
        "tmp": tmp,
        "study": study,
        "result": result,
        "lines": lines,
        "printed": printed.getvalue(),
    }


@pytest.mark.slow
def test_search_uses_the_clis_default_storage_and_prints_nothing(searched: dict) -> None:
    result = searched["result"]
    assert result.storage == f"sqlite:///{searched['tmp'] / 'api.db'}"
    assert (searched["tmp"] / "api.db").is_file()
    assert searched["printed"] == ""
    assert any(re.match(r"trial +0 COMPLETE ", line) for line in searched["lines"])
    assert "2/2 finished trials in " in searched["lines"][-1]


@pytest.mark.slow
def test_the_cli_resumes_the_api_study_and_exports_the_same_best_trial(
    searched: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    result, tmp = searched["result"], searched["tmp"]
    # The CLI takes the study the API made as its own (same spec: no "changed" refusal).
    assert main(["search", str(searched["study"]), "--n-trials", "3"]) == 0
    capsys.readouterr()
    cli_file = tmp / "cli_best.yaml"
    argv = ["export-best", "--study-name", "api", "--storage", result.storage, "-o", str(cli_file)]
    assert main(argv) == 0
    exported = load_spec(cli_file)
    assert exported.result is not None
    best = result.best_trial  # read again: the CLI's third trial counts
    assert len(result.study.trials) == 3
    assert best.number == exported.result.trial_number
    assert result.best_value == pytest.approx(exported.result.value)
    assert result.best_params == exported.fixed_params()
    api_file = result.export_best(tmp / "api_best.yaml")
    assert api_file.read_text() == cli_file.read_text()


@pytest.mark.slow
def test_trials_has_one_row_per_trial_with_or_without_pandas(
    searched: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = searched["result"]
    count = len(result.study.trials)
    table = result.trials
    assert len(table) == count
    assert list(table["number"]) == list(range(count))
    assert "params_hidden_size" in table.columns
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now fails
    records = result.trials
    assert isinstance(records, list) and len(records) == count
    assert [r["number"] for r in records] == list(range(count))
    assert records[0]["state"] in {"COMPLETE", "PRUNED"}
    assert set(TINY_SPACE) <= {k.removeprefix("params_") for k in records[0]}


@pytest.mark.slow
def test_export_best_writes_a_file_lstm_tune_train_accepts(
    searched: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    tmp = searched["tmp"]
    path = searched["result"].export_best(tmp / "for_train.yaml")
    assert main(["train", str(path), "--out", str(tmp / "cli_run")]) == 0
    assert (tmp / "cli_run" / "model.keras").is_file()
    capsys.readouterr()


@pytest.mark.slow
def test_train_returns_a_model_that_predicts_raw_text(searched: dict) -> None:
    tmp, result = searched["tmp"], searched["result"]
    model = result.train(tmp / "api_run")
    assert (tmp / "api_run" / "metrics.json").is_file()
    assert (tmp / "api_run" / "report.html").is_file()
    rows = model.predict(["A wonderful, moving film.", "Dull and far too long."])
    assert len(rows) == 2
    assert {row["label"] for row in rows} <= {"negative", "positive"}
    assert rows[0]["probability_positive"] + rows[0]["probability_negative"] == pytest.approx(1)
    assert model.params == result.best_params


@pytest.mark.slow
def test_a_spec_built_in_code_searches_on_studies_under_the_cwd(
    imdb_slice: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = lstm_tune.StudySpec(
        name="inline",
        data=_data(tmp_path, imdb_slice),
        training={"epochs": 1},
        search={"n_trials": 1, "sampler": {"name": "random"}, "pruner": {"name": "none"}},
        space=TINY_SPACE,
    )
    result = lstm_tune.search(spec, progress=lambda line: None)
    assert result.storage == f"sqlite:///{tmp_path / 'studies' / 'inline.db'}"
    assert len(result.study.trials) == 1
    assert (tmp_path / "studies" / "artifacts").is_dir()


def test_a_bad_study_file_raises_the_clis_line_as_config_error(
    study_file: StudyFile, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = study_file(name="bad", space={**TINY_SPACE, "hidden_size": {"low": 64, "high": 16}})
    line = _cli_error(["search", str(bad)], capsys)
    with pytest.raises(lstm_tune.ConfigError) as raised:
        lstm_tune.search(bad)
    assert str(raised.value) == line
    with pytest.raises(lstm_tune.ConfigError) as raised:
        lstm_tune.load_study_file(bad)
    assert str(raised.value) == line
    assert "space.hidden_size" in line and "low <= high" in line
    assert not (bad.parent / "bad.db").exists()


def test_a_bad_data_file_raises_the_clis_line_as_data_error(
    study_file: StudyFile, imdb_slice: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = study_file(name="nolabel", data={**_data(tmp_path, imdb_slice), "label_column": "x"})
    line = _cli_error(["search", str(bad)], capsys)
    with pytest.raises(lstm_tune.DataError) as raised:
        lstm_tune.search(bad)
    assert str(raised.value) == line
    assert "data.label_column: no column 'x'" in line
    assert not (tmp_path / "nolabel.db").exists()


def test_data_path_replaces_the_study_files_data_as_the_flag_does(
    study_file: StudyFile, imdb_slice: Path, tmp_path: Path
) -> None:
    study = study_file(name="moved", data={"path": "nowhere.csv"})
    spec = lstm_tune.load_study_file(study, data_path=imdb_slice)
    assert spec.data.path == str(imdb_slice.resolve())
    assert spec == load_spec(study).model_copy(update={"data": spec.data})
    missing = tmp_path / "missing.csv"
    with pytest.raises(lstm_tune.DataError, match="missing.csv"):
        lstm_tune.search(study, data_path=missing)


def test_a_spec_built_in_code_is_checked_as_a_file_is() -> None:
    spec = lstm_tune.StudySpec(name="inline", data={"path": "x.csv"}, space=TINY_SPACE)
    assert type(spec.data).__name__ == "TextClassificationData"
    assert spec.search.metric == "val_accuracy"
    with pytest.raises(lstm_tune.ConfigError) as raised:
        lstm_tune.StudySpec(name="inline", data={"pth": "x.csv"}, space=TINY_SPACE)
    assert str(raised.value).startswith("<study>: data.pth: got 'pth'; expected one of the keys")


def test_a_bad_worker_count_raises_config_error(study_file: StudyFile) -> None:
    study = study_file(name="workers", data={"path": "x.csv"})
    with pytest.raises(lstm_tune.ConfigError, match="workers: got 0; expected a count >= 1"):
        lstm_tune.search(study, workers=0)


def test_an_unknown_study_raises_storage_error(tmp_path: Path) -> None:
    from lstm_tune.api import SearchResult

    storage = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(study_name="empty", storage=storage)
    spec = lstm_tune.StudySpec(name="empty", data={"path": "x.csv"}, space=TINY_SPACE)
    result = SearchResult(spec=spec, storage=storage, study_name="empty", ended="")
    with pytest.raises(lstm_tune.StorageError, match="has no complete trial yet"):
        _ = result.best_params
    with pytest.raises(lstm_tune.StorageError, match="has no complete trial yet"):
        result.export_best(tmp_path / "best.yaml")


@pytest.mark.slow
def test_finalize_writes_the_winner_with_every_finalists_revalidation(searched: dict) -> None:
    tmp, result = searched["tmp"], searched["result"]
    with pytest.raises(lstm_tune.ConfigError, match=r"^--budget 1 s is below the estimated"):
        result.finalize(tmp / "never.yaml", finalists=2, seeds=50, budget=1)
    assert not (tmp / "never.yaml").exists()
    path = result.finalize(tmp / "final.yaml", finalists=2, seeds=1)
    final = load_spec(path)
    assert final.result is not None and len(final.result.finalists) == 2
    assert final.result.trial_number in {f["trial_number"] for f in final.result.finalists}
