"""Finished trials carry a learning-curve plot and a note; the best one keeps its model."""

from __future__ import annotations

import contextlib
import io
import math
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import keras
import optuna
import pytest
from optuna.artifacts import download_artifact, get_all_artifact_meta
from optuna.trial import TrialState

from lstm_tune.cli import main
from lstm_tune.results.artifacts import CURVE_WIDTH, TrialArtifacts, learning_curve_svg
from lstm_tune.training.fit import EpochRecorder
from lstm_tune.types import Objective
from tests.helpers import require_or_skip
from tests.helpers.browser import Browser, find_browser, keep_screenshot
from tests.helpers.servers import api_url, dashboard_process, get_json
from tests.helpers.studies import write_study

ACCURACY = Objective("val_accuracy", "maximize")

EPOCHS = 3


def drive_recorder(recorder: EpochRecorder, epoch: int, val_accuracy: float) -> None:
    """Feed one epoch of logs to the real recorder, as keras does after each epoch."""
    recorder.on_epoch_begin(epoch)
    recorder.on_epoch_end(
        epoch,
        {"loss": 0.7 - 0.1 * epoch, "accuracy": val_accuracy + 0.03,
         "val_loss": 0.72 - 0.08 * epoch, "val_accuracy": val_accuracy},
    )  # fmt: skip


def tiny_model() -> keras.Model:
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])


@pytest.fixture(scope="module")
def hooked_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[optuna.Study, Path, str]:
    """A real study whose objective calls the hooks the way the LSTM objective does."""
    tmp = tmp_path_factory.mktemp("hooks")
    artifacts = TrialArtifacts(tmp / "artifacts")
    url = f"sqlite:///{tmp / 'h.db'}"
    study = optuna.create_study(
        storage=url,
        study_name="hooks",
        direction="maximize",
        pruner=optuna.pruners.ThresholdPruner(lower=0.6),  # prunes the weak trials at once
    )
    # Trial 0 completes, 1 is pruned after one epoch, 2 completes better, 3 completes worse.
    quality = [0.75, 0.5, 0.85, 0.7]

    def objective(trial: optuna.Trial) -> float:
        q = quality[trial.number]
        trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
        trial.set_user_attr("param_count", 5)
        recorder = EpochRecorder(ACCURACY)
        for epoch in range(EPOCHS):
            drive_recorder(recorder, epoch, q - 0.05 * (EPOCHS - 1 - epoch))
            trial.report(recorder.history["val_accuracy"][-1], epoch)
            if trial.should_prune():
                artifacts.on_pruned(trial, recorder)
                raise optuna.TrialPruned()
        artifacts.on_trained(trial, tiny_model(), recorder)
        return recorder.best_value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=len(quality))
    return study, tmp / "artifacts", url


def artifact_names(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> list[str]:
    return sorted(m.filename for m in get_all_artifact_meta(trial, storage=study._storage))


def test_every_finished_trial_has_its_curve_and_new_bests_their_model(
    hooked_study: tuple[optuna.Study, Path, str], tmp_path: Path
) -> None:
    study, store_dir, _ = hooked_study
    assert [t.state for t in study.trials] == [
        TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE, TrialState.COMPLETE
    ]  # fmt: skip
    names = [artifact_names(study, t) for t in study.trials]
    assert names == [
        ["learning-curve-trial-0.svg", "model-trial-0.keras"],  # best so far when it finished
        ["learning-curve-trial-1.svg"],
        ["learning-curve-trial-2.svg", "model-trial-2.keras"],  # the study's best
        ["learning-curve-trial-3.svg"],  # worse than trial 2: no model kept
    ]
    best = study.best_trial
    metas = get_all_artifact_meta(best, storage=study._storage)
    meta = next(m for m in metas if m.filename.endswith(".keras"))
    store = optuna.artifacts.FileSystemArtifactStore(store_dir)
    out = tmp_path / "best.keras"
    download_artifact(artifact_store=store, file_path=str(out), artifact_id=meta.artifact_id)
    assert keras.saving.load_model(out).count_params() == tiny_model().count_params()


def test_notes_and_artifacts_reach_the_dashboard(
    hooked_study: tuple[optuna.Study, Path, str],
) -> None:
    study, store_dir, url = hooked_study
    with dashboard_process(url, store_dir) as base:
        detail = get_json(api_url(base, f"studies/{study._study_id}?after=0"))
        trials = {t["number"]: t for t in detail["trials"]}
        assert "Trial 1: pruned after epoch 1 (val_accuracy 0.4000)" in trials[1]["note"]["body"]
        body = trials[2]["note"]["body"]
        assert "Trial 2: complete, val_accuracy **0.8500** at epoch 3" in body
        assert "| learning_rate |" in body and "3 epochs" in body and "5 weights" in body
        art = next(a for a in trials[2]["artifacts"] if a["filename"].endswith(".svg"))
        assert art["mimetype"] == "image/svg+xml"
        with urllib.request.urlopen(
            base.removesuffix("dashboard/") + f"artifacts/{study._study_id}/"
            f"{trials[2]['trial_id']}/{art['artifact_id']}"
        ) as resp:
            svg = resp.read().decode()
    root = ET.fromstring(svg)  # well-formed SVG the browser can draw
    assert root.tag.endswith("svg") and svg.count("<polyline") == 4  # 2 panels x train/val


def test_learning_curve_skips_non_finite_values() -> None:
    svg = learning_curve_svg(
        {"loss": [0.7, math.nan], "val_loss": [0.6, 0.5], "accuracy": [], "val_accuracy": []},
        title="t",
    )
    ET.fromstring(svg)
    assert "nan" not in svg.lower() and "no values" in svg  # empty accuracy panel says so


# --------------------------------------------------------------------------- real search

GOOD = {"hidden_size": 16, "num_layers": 1, "learning_rate": 0.01, "dropout_rate": 0.1,
        "sequence_length": 60, "batch_size": 32}  # fmt: skip
# Learning rate 1e-7 leaves the model at chance after one epoch, below the completed trial's
# accuracy, so the median pruner stops it: a real pruned trial every run.
HOPELESS = {**GOOD, "learning_rate": 1e-7}


@pytest.fixture(scope="module")
def real_search(imdb_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run `lstm-tune search` once on a slice of IMDB: one complete, one pruned trial."""
    tmp = tmp_path_factory.mktemp("search")
    study_file = write_study(
        tmp,
        name="artifacts",
        seed=7,
        data={"path": str(imdb_slice), "max_features": 2000, "validation_split": 0.25,
              "cache_dir": str(tmp / "cache")},
        training={"epochs": 2},
        search={
            "n_trials": 2,
            "sampler": {"name": "random"},
            "pruner": {"name": "median", "options": {"n_startup_trials": 1, "n_warmup_steps": 0}},
            "enqueue": [GOOD, HOPELESS],
        },
        space={name: {"choices": [GOOD[name], HOPELESS[name]]} if name == "learning_rate"
               else value for name, value in GOOD.items()},
    )  # fmt: skip
    storage = f"sqlite:///{tmp / 's.db'}"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # not a terminal: progress prints plain lines
        code = main(["search", str(study_file), "--storage", storage,
                     "--artifact-dir", str(tmp / "artifacts")])  # fmt: skip
    return {"tmp": tmp, "storage": storage, "code": code, "out": out.getvalue(),
            "artifact_dir": tmp / "artifacts"}  # fmt: skip


@pytest.mark.slow
def test_real_search_leaves_curves_notes_and_the_best_model(real_search: dict[str, Any]) -> None:
    out = real_search["out"]
    assert real_search["code"] == 0, out
    assert "epoch 2/2 of trial 0: val_accuracy=" in out and "\r" not in out
    assert "trials [####################]   2/2" in out
    study = optuna.load_study(study_name="artifacts", storage=real_search["storage"])
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    done, pruned = study.trials
    assert artifact_names(study, done) == ["learning-curve-trial-0.svg", "model-trial-0.keras"]
    assert artifact_names(study, pruned) == ["learning-curve-trial-1.svg"]
    notes = study._storage.get_study_system_attrs(study._study_id)  # where the dashboard reads
    assert any(
        k.startswith(f"dashboard:{done._trial_id}:note_str") and "complete" in str(v)
        for k, v in notes.items()
    )
    assert any(
        k.startswith(f"dashboard:{pruned._trial_id}:note_str") and "pruned after epoch 1" in str(v)
        for k, v in notes.items()
    )
    assert len(list(real_search["artifact_dir"].iterdir())) == 3


@pytest.mark.slow
@pytest.mark.browser
def test_trial_page_shows_the_learning_curve_and_note(
    real_search: dict[str, Any], tmp_path: Path
) -> None:
    executable = find_browser()
    if executable is None:
        require_or_skip("no Chromium found (apt-get install chromium, or set LSTM_TUNE_CHROMIUM)")
    assert executable is not None and real_search["code"] == 0
    with (
        dashboard_process(real_search["storage"], real_search["artifact_dir"]) as base,
        Browser(executable) as browser,
    ):
        page = browser.page()
        page.set_viewport(1400, 1500)  # note, details and artifacts in one picture
        page.navigate(f"{base}studies/1/trials")  # trial 0, the complete one, is shown first
        page.wait_for("document.body.innerText.includes('Trial 0: complete, val_accuracy')")
        # The curve is an <img> of the SVG artifact; wait until the browser has decoded it.
        width = page.wait_for(
            "[...document.images].filter(i => i.src.includes('/artifacts/') && i.complete)"
            ".map(i => i.naturalWidth)[0]"
        )
        assert width == CURVE_WIDTH
        text = page.evaluate("document.body.innerText")
        assert "learning-curve-trial-0.svg" in text and "model-trial-0.keras" in text
        keep_screenshot(page.screenshot(tmp_path / "dashboard-trial-artifacts.png"))
        assert page.errors == [], page.errors


def test_a_broken_artifact_dir_costs_the_trial_nothing_but_its_artifacts(tmp_path: Path) -> None:
    artifacts = TrialArtifacts(tmp_path / "gone")
    (tmp_path / "gone").rmdir()  # e.g. a volume unmounted under a running worker
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'b.db'}", direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        recorder = EpochRecorder(ACCURACY)
        drive_recorder(recorder, 0, 0.7)
        artifacts.on_trained(trial, tiny_model(), recorder)
        return recorder.best_value

    with pytest.warns(RuntimeWarning, match="could not write artifacts of trial 0"):
        study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE and trial.value == 0.7
    assert "No such file or directory" in trial.user_attrs["artifact_error"]
