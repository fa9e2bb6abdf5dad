"""Terminal progress: a redrawn status line in a terminal, plain lines in a log, and the line
each finished trial prints."""

from __future__ import annotations

import io
import os
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from lstm_tune.runtime.progress import SearchProgress, format_duration, format_params, trial_line

EPOCHS = 3


def run_study(
    progress: SearchProgress, db: Path, n_trials: int = 4, *, tell_start: bool = True
) -> optuna.Study:
    """A real study whose objective feeds the progress epoch hook like the LSTM objective."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=f"sqlite:///{db}",
        study_name="progress",
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.NopPruner(),
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        values: list[float] = []
        recorder = SimpleNamespace(
            history={"val_accuracy": values},
            values=values,
            metric_name="val_accuracy",
            seconds_per_epoch=[],
        )
        for epoch in range(EPOCHS):
            recorder.history["val_accuracy"].append(x * (epoch + 1) / EPOCHS)
            recorder.seconds_per_epoch.append(0.01)
            progress.on_epoch(trial, recorder)
        return x

    progress.start(study if tell_start else None)
    study.optimize(objective, n_trials=n_trials, callbacks=[progress])
    progress.close()
    return study


def test_plain_lines_when_not_a_terminal(tmp_path: Path) -> None:
    out = io.StringIO()
    progress = SearchProgress(budget=4, epochs=EPOCHS, stream=out)
    assert not progress.interactive
    study = run_study(progress, tmp_path / "p.db")
    text = out.getvalue()
    assert "\r" not in text and "\x1b[" not in text  # nothing redrawn in a log
    lines = text.splitlines()
    assert sum(line.startswith("epoch ") for line in lines) == 4 * EPOCHS
    assert "epoch 2/3 of trial 0: val_accuracy=" in text
    status = [line for line in lines if line.startswith("trials [")]
    assert len(status) == 4
    assert status[-1].startswith("trials [####################]   4/4")
    assert f"best {study.best_value:.4f}" in status[-1]
    assert "ETA 0:00" in status[-1]


def test_a_resumed_study_counts_its_earlier_trials(tmp_path: Path) -> None:
    run_study(SearchProgress(budget=4, epochs=EPOCHS, stream=io.StringIO()), tmp_path / "r.db")
    out = io.StringIO()
    # Like the CLI: the progress learns of the study from the first epoch of the new run.
    progress = SearchProgress(budget=6, epochs=EPOCHS, stream=out, interactive=False)
    run_study(progress, tmp_path / "r.db", n_trials=2, tell_start=False)
    status = [line for line in out.getvalue().splitlines() if line.startswith("trials [")]
    assert [line.split("|")[0].split("]")[1].strip() for line in status] == ["5/6", "6/6"]
    assert "ETA 0:00" in status[-1]


def test_redrawn_status_line_with_epoch_bar_in_a_terminal(tmp_path: Path) -> None:
    master, slave = os.openpty()  # a real terminal, so isatty() decides the mode
    with os.fdopen(slave, "w", encoding="utf-8") as tty:
        progress = SearchProgress(budget=4, epochs=EPOCHS, stream=tty)
        assert progress.interactive
        progress.log("trial line above the bar")
        running = cast(optuna.Trial, SimpleNamespace(number=2))  # only .number is read
        recorder = SimpleNamespace(
            history={"val_accuracy": [0.6]},
            values=[0.6],
            metric_name="val_accuracy",
            seconds_per_epoch=[1.0],
        )
        progress.on_epoch(running, recorder)
        line = progress.status_line()
        progress.close()
    text = os.read(master, 65536).decode()
    os.close(master)
    assert "\r\x1b[K" in text and "trial line above the bar" in text
    assert "trial 2 epoch [###-------] 1/3" in line
    assert line.startswith("trials [--------------------]   ?/4 | best - |")


def test_format_duration_and_validation() -> None:
    assert format_duration(75) == "1:15"
    assert format_duration(3700) == "1:01:40"
    with pytest.raises(ValueError, match="budget must be >= 1, got 0"):
        SearchProgress(budget=0, epochs=1, stream=io.StringIO())


def _finished(state: TrialState, value: float | None, **attrs: Any) -> FrozenTrial:
    """Trial 7, hidden_size 64 and learning_rate 0.001234, run for 12.34 s."""
    start = datetime(2025, 1, 1, 12, 0, 0)
    return FrozenTrial(
        number=7,
        trial_id=8,
        state=state,
        value=value,
        datetime_start=start,
        datetime_complete=start + timedelta(seconds=12.34),
        params={"hidden_size": 64, "learning_rate": 0.001234},
        distributions={
            "hidden_size": IntDistribution(8, 128),
            "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
        },
        user_attrs=attrs.get("user_attrs", {}),
        system_attrs={},
        intermediate_values=attrs.get("intermediate_values", {}),
    )


def test_a_trial_line_says_state_value_params_time_and_why_it_failed() -> None:
    assert format_params({"hidden_size": 64, "learning_rate": 0.001234, "x": 2.0}) == (
        "hidden_size=64 learning_rate=0.00123 x=2"
    )
    assert trial_line(_finished(TrialState.COMPLETE, 0.87654)) == (
        "trial   7 COMPLETE value=0.8765 hidden_size=64 learning_rate=0.00123 12.3s"
    )
    pruned = _finished(TrialState.PRUNED, None, intermediate_values={0: 0.5, 1: 0.61})
    assert trial_line(pruned) == (
        "trial   7 PRUNED   value=(0.6100 at step 1) hidden_size=64 learning_rate=0.00123 12.3s"
    )
    failed = _finished(TrialState.FAIL, None, user_attrs={"fail_reason": "loss became nan"})
    assert trial_line(failed).endswith("value=- hidden_size=64 learning_rate=0.00123 12.3s "
                                       "reason: loss became nan")  # fmt: skip
