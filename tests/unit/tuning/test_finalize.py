"""Finalists re-validated: the top configs retrained over seeds, the best mean exported."""

from __future__ import annotations

import statistics
from pathlib import Path

import optuna
import pytest

from lstm_tune.cli import main
from lstm_tune.config import StudySpec, load_spec, parse_spec
from lstm_tune.tasks import get_task
from lstm_tune.tuning.finalize import Finalist, estimated_seconds, revalidate
from tests.helpers import OVERFITTING_PARAMS
from tests.helpers.studies import write_study


@pytest.fixture(scope="module")
def searched(imdb_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("finalize")
    study_file = write_study(
        tmp,
        name="fin",
        seed=5,
        data={"path": str(imdb_slice), "max_features": 500, "cache_dir": str(tmp / "c")},
        training={"epochs": 1},
        search={"n_trials": 3, "sampler": {"name": "random"}, "pruner": {"name": "none"}},
        space={
            "hidden_size": {"low": 4, "high": 12},
            "num_layers": 1,
            "learning_rate": {"low": 3e-3, "high": 3e-2, "log": True},
            "dropout_rate": 0.0,
            "sequence_length": 40,
            "batch_size": 32,
        },
    )
    storage = f"sqlite:///{tmp / 'fin.db'}"
    assert main(["search", str(study_file), "--storage", storage]) == 0
    return {"tmp": tmp, "storage": Path(storage.removeprefix("sqlite:///"))}


@pytest.mark.slow
def test_finalize_exports_the_finalist_with_the_best_mean(
    searched: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{searched['storage']}"
    out = searched["tmp"] / "final.yaml"
    args = ["finalize", "--study-name", "fin", "--storage", storage, "-o", str(out)]
    assert main([*args, "--finalists", "2", "--seeds", "2"]) == 0
    printed = capsys.readouterr().out
    assert "re-validating 2 finalists x 2 seeds: about" in printed
    spec = load_spec(out)
    assert spec.result is not None
    finalists = spec.result.finalists
    study = optuna.load_study(study_name="fin", storage=storage)
    ranked = sorted(study.trials, key=lambda t: t.value or 0.0, reverse=True)
    assert [f["trial_number"] for f in finalists] == [t.number for t in ranked[:2]]
    for f in finalists:
        assert len(f["values"]) == 2
        assert f["mean"] == pytest.approx(statistics.fmean(f["values"]))
        assert f["std"] == pytest.approx(statistics.stdev(f["values"]))
    best = max(finalists, key=lambda f: f["mean"])
    assert spec.result.trial_number == best["trial_number"]
    assert spec.fixed_params() == best["params"]
    assert study.user_attrs["lstm_tune_finalists"] == list(finalists)
    # The report shows them.
    page = searched["tmp"] / "report.html"
    assert main(["report", "--study-name", "fin", "--storage", storage, "-o", str(page)]) == 0
    assert 'id="finalists"' in page.read_text()


@pytest.mark.slow
def test_a_budget_below_the_estimate_refuses_before_training(
    searched: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{searched['storage']}"
    out = searched["tmp"] / "refused.yaml"
    args = ["finalize", "--study-name", "fin", "--storage", storage, "-o", str(out)]
    assert main([*args, "--seeds", "1000", "--budget", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--budget 1 s is below the estimated" in err[0]
    assert not out.exists()


def _config(data: Path, tmp: Path, training: dict[str, object]) -> StudySpec:
    return parse_spec(
        {
            "name": "f",
            "data": {"path": str(data), "max_features": 1000, "cache_dir": str(tmp / "c")},
            "training": training,
            "search": {"metric": "val_loss"},
            "params": OVERFITTING_PARAMS,
        }
    )


def _trial(best_epoch: int) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        params=OVERFITTING_PARAMS,
        distributions={
            k: optuna.distributions.CategoricalDistribution([v])
            for k, v in OVERFITTING_PARAMS.items()
        },
        value=0.6,
        user_attrs={"best_epoch": best_epoch},
    )


def test_with_early_stopping_the_estimate_counts_the_maximum_epochs(
    imdb_slice: Path, tmp_path: Path
) -> None:
    plain = _config(imdb_slice, tmp_path, {"epochs": 10})
    stopping = _config(imdb_slice, tmp_path, {"epochs": 10, "early_stopping": {"patience": 2}})
    prepared = get_task(plain.task).load(plain.data, plain.seed)
    trials = [_trial(best_epoch=2)]
    by_best_epoch = estimated_seconds(plain, prepared, trials, seeds=3)
    assert estimated_seconds(stopping, prepared, trials, seeds=3) == pytest.approx(
        by_best_epoch * 10 / 2
    )


@pytest.mark.slow
def test_with_early_stopping_a_run_keeps_its_best_epoch(imdb_slice: Path, tmp_path: Path) -> None:
    spec = _config(imdb_slice, tmp_path, {"epochs": 30, "early_stopping": {"patience": 2}})
    prepared = get_task(spec.task).load(spec.data, spec.seed)
    kept: list[float] = []

    def rescore(finalist: Finalist, seed: int, model: object) -> None:
        kept.append(
            get_task(spec.task).score(model, prepared.validation, OVERFITTING_PARAMS, "val_loss")
        )

    (finalist,) = revalidate(
        spec, prepared, [_trial(best_epoch=2)], seeds=1, budget=None, on_run=rescore
    )
    (best_epoch,) = finalist.best_epochs
    assert best_epoch < 28  # it stopped 2 epochs after its best, short of 30
    # The run's value is its best epoch's, and the model it leaves holds that epoch's weights.
    assert finalist.values[0] == pytest.approx(kept[0], rel=1e-4)
    assert finalist.as_dict()["best_epochs"] == [best_epoch]
