"""Terminal progress for a search: a trial bar and an epoch bar, or plain lines in a log.

In a terminal (stream is a TTY) one status line is redrawn in place::

    trials [######--------]  6/14  best 0.8712 | 3:05 elapsed, ETA 4:10 | trial 7 epoch [##---] 2/5

and the per-trial lines the CLI prints appear above it. In a non-interactive log (CI,
``docker logs``) nothing is redrawn: each epoch and each finished trial prints one plain line
(``epoch 2/5 of trial 7: val_accuracy=0.8123 (41.0s)``, then the status line).

Written here rather than taken from tqdm/rich: two bars in one line, a study whose trials are
also finished by other workers, and a plain-line mode for logs are ~150 lines, while either
library would need wrapping to do the same.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = ["SearchProgress", "Stream", "format_duration", "format_params", "trial_line"]

TRIAL_BAR_WIDTH = 20
EPOCH_BAR_WIDTH = 10
TICK_SECONDS = 1.0  # redraw the elapsed clock once a second in a terminal
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class Stream(Protocol):
    """Where progress is written: a text stream; one that is a terminal is redrawn in place."""

    def write(self, text: str, /) -> int:
        """Write ``text``; return the characters written."""
        ...

    def flush(self) -> None:
        """Push what was written to the reader."""
        ...

    def isatty(self) -> bool:
        """Whether the stream is a terminal."""
        ...


def format_duration(seconds: float) -> str:
    """``75`` → ``1:15``, ``3700`` → ``1:01:40``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_params(params: dict[str, object]) -> str:
    """``{"hidden_size": 64, "learning_rate": 0.00123}`` → ``hidden_size=64 learning_rate=0.00123``
    (floats to 3 significant digits)."""
    return " ".join(
        f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in params.items()
    )


def trial_line(trial: FrozenTrial) -> str:
    """One finished trial as a worker prints it: number, state, value (or the last reported
    value of a pruned trial), params, duration and the reason it failed, if it did."""
    seconds = trial.duration.total_seconds() if trial.duration else float("nan")
    value = f"{trial.value:.4f}" if trial.value is not None else "-"
    if trial.value is None and trial.intermediate_values:
        last = max(trial.intermediate_values)
        value = f"({trial.intermediate_values[last]:.4f} at step {last})"
    reason = trial.user_attrs.get("fail_reason")
    tail = f" reason: {reason}" if reason else ""
    return (
        f"trial {trial.number:>3} {trial.state.name:<8} value={value} "
        f"{format_params(trial.params)} {seconds:.1f}s{tail}"
    )


def _bar(done: int, total: int, width: int) -> str:
    filled = 0 if total <= 0 else min(width, round(width * done / total))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


class SearchProgress:
    """Progress of one worker's search; pass it as a study callback and an epoch hook.

    ``budget`` is the study's total of finished trials the search runs to; ``epochs`` the
    epochs a trial trains unless pruned. ``interactive`` defaults to ``stream.isatty()``.
    """

    def __init__(
        self,
        *,
        budget: int,
        epochs: int,
        stream: Stream,
        interactive: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if budget < 1:
            raise ValueError(f"budget must be >= 1, got {budget}")
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        self.budget = budget
        self.epochs = epochs
        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self._clock = clock
        self._started = clock()
        self._done_at_start: int | None = None
        self.done = 0
        self.best: float | None = None
        self.trial_number: int | None = None
        self.epoch = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._drawn = False

    # ---- lifecycle

    def start(self, study: optuna.Study | None = None) -> SearchProgress:
        """Read the study's finished trials (a resumed search) and start the clock."""
        self._started = self._clock()
        if study is not None:
            self._update_from_study(study, trial_finished=False)
        if self.interactive:
            self._redraw()
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()
        return self

    def close(self) -> None:
        """Stop redrawing and end the status line so later output starts on a fresh line."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2 * TICK_SECONDS)
        with self._lock:
            if self.interactive and self._drawn:
                # Keep the last status as a line of its own; if no trial ever ran (a resumed
                # study already at its budget) just wipe the placeholder.
                final = self.status_line() + "\n" if self._done_at_start is not None else ""
                self.stream.write("\r\x1b[K" + final)
                self.stream.flush()
                self._drawn = False

    def __enter__(self) -> SearchProgress:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- hooks

    def log(self, line: str) -> None:
        """Print ``line`` for the user; in a terminal it appears above the status line."""
        with self._lock:
            if self.interactive:
                self.stream.write("\r\x1b[K" + line + "\n")
                self._draw_unlocked()
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    def on_epoch(self, trial: optuna.trial.Trial, recorder: Any) -> None:
        """Objective hook after each epoch: advance the epoch bar of the running trial."""
        seconds: list[float] = list(getattr(recorder, "seconds_per_epoch", []))
        val: list[float] = list(getattr(recorder, "values", []))
        metric = getattr(recorder, "metric_name", "value")
        if self._done_at_start is None and hasattr(trial, "study"):
            # First news of the study: learn how many trials a resumed study already holds.
            self._update_from_study(trial.study, trial_finished=False)
        with self._lock:
            self.trial_number = trial.number
            self.epoch = len(seconds) or self.epoch + 1
            if self.interactive:
                self._draw_unlocked()
            else:
                acc = f" {metric}={val[-1]:.4f}" if val else ""
                took = f" ({seconds[-1]:.1f}s)" if seconds else ""
                self.stream.write(
                    f"epoch {self.epoch}/{self.epochs} of trial {trial.number}:{acc}{took}\n"
                )
            self.stream.flush()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Study callback after each trial: advance the trial bar, best value and ETA."""
        self._update_from_study(study, trial_finished=True)
        with self._lock:
            self.trial_number = None
            self.epoch = 0
            if self.interactive:
                self._draw_unlocked()
            else:
                self.stream.write(self.status_line() + "\n")
            self.stream.flush()

    # ---- rendering

    def status_line(self) -> str:
        """The one-line summary: trial bar, best, elapsed, ETA and the running trial's epochs."""
        elapsed = self._clock() - self._started
        done = f"{self.done:>3}" if self._done_at_start is not None else "  ?"  # not read yet
        parts = [
            f"trials {_bar(self.done, self.budget, TRIAL_BAR_WIDTH)} {done}/{self.budget}",
            f"best {self.best:.4f}" if self.best is not None else "best -",
        ]
        eta = self.eta_seconds(elapsed)
        timing = f"{format_duration(elapsed)} elapsed"
        timing += f", ETA {format_duration(eta)}" if eta is not None else ", ETA -"
        parts.append(timing)
        if self.trial_number is not None:
            parts.append(
                f"trial {self.trial_number} epoch "
                f"{_bar(self.epoch, self.epochs, EPOCH_BAR_WIDTH)} {self.epoch}/{self.epochs}"
            )
        return " | ".join(parts)

    def eta_seconds(self, elapsed: float) -> float | None:
        """Remaining time at this run's pace of finished trials (all workers), or None yet."""
        finished_here = self.done - (self._done_at_start or 0)
        if finished_here <= 0 or elapsed <= 0:
            return None
        remaining = max(0, self.budget - self.done)
        return elapsed / finished_here * remaining

    def _update_from_study(self, study: optuna.Study, *, trial_finished: bool) -> None:
        done = len(study.get_trials(deepcopy=False, states=FINISHED))
        try:
            best: float | None = study.best_value
        except ValueError:  # no completed trial yet
            best = None
        with self._lock:
            self.done = done
            self.best = best
            if self._done_at_start is None:
                # After a trial finished, that trial is already in the count.
                self._done_at_start = max(0, done - 1) if trial_finished else done

    def _draw_unlocked(self) -> None:
        width = shutil.get_terminal_size((100, 20)).columns
        line = self.status_line()
        if len(line) >= width:
            line = line[: max(0, width - 1)]
        self.stream.write("\r\x1b[K" + line)
        self._drawn = True

    def _redraw(self) -> None:
        with self._lock:
            self._draw_unlocked()
            self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            self._redraw()
