"""Files written by the release before the package layout still work, unchanged.

``tests/fixtures/before_layout/`` holds what that release (commit a640442) wrote with
``make.py`` beside them: three trained model directories (one per task) with the answers
``lstm-tune predict`` gave, a two-trial study database and the config ``export-best`` wrote
from it. Today's code must load each one and give the same answers.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

import lstm_tune
from lstm_tune.cli import main
from lstm_tune.config import load_spec
from tests.fixtures.before_layout import make
from tests.helpers import require_or_skip
from tests.helpers.toy_study import METRIC_SECTIONS, STUDY_SECTIONS

FIXTURES = Path(make.__file__).resolve().parent


@pytest.fixture(autouse=True)
def _shared_data() -> None:
    for name in ("imdb_50k.csv.gz", "ETTh1.csv"):
        if not (make.SHARED / name).exists():
            require_or_skip(f"{name} is not in {make.SHARED}")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _copy(name: str, tmp_path: Path) -> Path:
    """A copy of a fixture: the tests must not change what the old release wrote."""
    source = FIXTURES / name
    target = tmp_path / name
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy(source, target)
    return target


def test_an_old_text_model_predicts_what_it_predicted_then(tmp_path: Path) -> None:
    model_dir = _copy("text_model", tmp_path)
    out = tmp_path / "out.csv"
    assert main(["predict", str(model_dir), str(make.text_inputs(tmp_path)), "-o", str(out)]) == 0
    got, expected = _rows(out), _rows(FIXTURES / "text_expected.csv")
    assert [r["label"] for r in got] == [r["label"] for r in expected] and len(got) == 20
    columns = ["probability_negative", "probability_positive"]
    np.testing.assert_allclose(
        [[float(r[c]) for c in columns] for r in got],
        [[float(r[c]) for c in columns] for r in expected],
        atol=1e-6,
    )
    # The Python API loads it too.
    assert lstm_tune.load_model(str(model_dir)).predict(["a fine film"])  # type: ignore[attr-defined]


def test_an_old_forecaster_forecasts_what_it_forecast_then(tmp_path: Path) -> None:
    model_dir = _copy("forecast_model", tmp_path)
    out = tmp_path / "out.csv"
    history = make.forecast_history(tmp_path)
    assert main(["predict", str(model_dir), str(history), "-o", str(out)]) == 0
    got, expected = _rows(out), _rows(FIXTURES / "forecast_expected.csv")
    assert [(r["step"], r["date"]) for r in got] == [(r["step"], r["date"]) for r in expected]
    np.testing.assert_allclose(
        [float(r["OT"]) for r in got], [float(r["OT"]) for r in expected], rtol=1e-5
    )


def test_an_old_language_model_writes_what_it_wrote_then(tmp_path: Path) -> None:
    model_dir = _copy("language_model", tmp_path)
    out = tmp_path / "out.csv"
    assert main(["predict", str(model_dir), *make.LANGUAGE_ARGS, "-o", str(out)]) == 0
    assert _rows(out) == _rows(FIXTURES / "language_expected.csv")


def test_an_old_study_database_exports_the_same_config(tmp_path: Path) -> None:
    database = _copy("study.db", tmp_path)
    out = tmp_path / "best.yaml"
    storage = f"sqlite:///{database}"
    assert (
        main(["export-best", "--study-name", "before", "--storage", storage, "-o", str(out)]) == 0
    )
    then = yaml.safe_load((FIXTURES / "best.yaml").read_text())
    now = yaml.safe_load(out.read_text())
    assert now["params"] == then["params"] and now["result"]["value"] == then["result"]["value"]
    assert now["data"] == then["data"] and now["search"] == then["search"]
    # The study report renders the old study with an old model's test metrics.
    page = tmp_path / "report.html"
    metrics = FIXTURES / "text_model" / "metrics.json"
    args = ["report", "--study-name", "before", "--storage", storage, "--metrics", str(metrics)]
    assert main([*args, "-o", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    for section in (*STUDY_SECTIONS, *METRIC_SECTIONS):
        assert f'id="{section}"' in html, section


@pytest.mark.slow
def test_an_old_exported_config_retrains(tmp_path: Path) -> None:
    config = _copy("best.yaml", tmp_path)
    spec = load_spec(config)
    assert spec.fixed_params() == yaml.safe_load(config.read_text())["params"]
    # The file names the old run's data slice (a temporary file): give the same slice again.
    data = make.texts(tmp_path)
    out = tmp_path / "model"
    assert main(["train", str(config), "--out", str(out), "--data-path", str(data)]) == 0
    assert {p.name for p in out.iterdir()} >= {"model.keras", "preprocessing.json", "metrics.json"}
