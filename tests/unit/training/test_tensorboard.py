"""TensorBoard logs of each trial (lstm_tune.training.tensorboard): Keras's callback writes the
epoch metrics and the pruner's checkpoints into <dir>/<study>/trial-<n>, read back with
TensorFlow's event reader; without the tensorboard package the search stops before it starts."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import optuna
import pytest

from lstm_tune.cli import main
from tests.helpers.studies import StudyFile

pytest.importorskip("tensorboard")


def _scalars(run: Path) -> dict[str, dict[str, list[int]]]:
    """Folder (train, validation) -> tag -> the steps it was written at."""
    import tensorflow as tf

    found: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for events in sorted(run.glob("*/events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                found[events.parent.name][value.tag].append(event.step)
    return {folder: dict(tags) for folder, tags in found.items()}


@pytest.mark.slow
def test_each_trial_writes_its_epoch_and_checkpoint_metrics(
    tmp_path: Path,
    imdb_slice: Path,
    study_file: StudyFile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LSTM_TUNE_CACHE_DIR", str(tmp_path / "cache"))
    # A checkpoint every 100 of the ~200 training reviews: a few per epoch.
    study = study_file(
        name="tb",
        data={"path": str(imdb_slice), "train_limit": 200},
        training={"epochs": 2, "report_every": 100, "report_sample": 50},
        search={"n_trials": 2, "sampler": {"name": "random"}, "pruner": {"name": "none"}},
    )
    board = tmp_path / "boards"
    assert main(["search", str(study), "--tensorboard", str(board)]) == 0
    assert sorted(p.name for p in (board / "tb").iterdir()) == ["trial-0", "trial-1"]
    trials = optuna.load_study(study_name="tb", storage=f"sqlite:///{tmp_path / 'tb.db'}").trials
    for trial in trials:
        scalars = _scalars(board / "tb" / f"trial-{trial.number}")
        assert scalars["train"]["epoch_loss"] == [0, 1]
        assert scalars["train"]["epoch_accuracy"] == [0, 1]
        assert scalars["validation"]["epoch_accuracy"] == [0, 1]
        # The values the pruner was given, at the same steps.
        reported = sorted(trial.intermediate_values)
        assert len(reported) >= 3
        assert scalars["validation"]["checkpoint_val_accuracy"] == reported


def test_the_study_files_directory_is_relative_to_it_and_left_out_of_its_spec(
    study_file: StudyFile,
) -> None:
    from lstm_tune.config import load_spec, spec_to_dict

    path = study_file(name="rel", training={"epochs": 1, "tensorboard": "logs"})
    spec = load_spec(path)
    assert spec.training.tensorboard == str(path.parent / "logs")
    assert "tensorboard" not in spec_to_dict(spec)["training"]  # stored spec, exports
    assert spec_to_dict(spec, local=True)["training"]["tensorboard"] == str(path.parent / "logs")


def test_tensorboard_logs_need_the_package_and_say_how(
    study_file: StudyFile,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorboard" else real(name, *a),
    )
    study = study_file(name="n", training={"epochs": 1, "tensorboard": "logs"})
    assert main(["search", str(study)]) == 2
    assert capsys.readouterr().err == (
        f"lstm-tune: error: {study}: training.tensorboard: TensorBoard logs need the "
        f"tensorboard package, which is not installed; pip install 'lstm-tune[tensorboard]'\n"
    )
    assert not (tmp_path / "n.db").exists()  # stopped before anything was written
