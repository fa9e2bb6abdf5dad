"""Per-trial artifacts and notes that optuna-dashboard shows on each trial's page.

:class:`TrialArtifacts` hooks into the objective while the trial is still running (Optuna
refuses artifact uploads to a finished trial): when a trial completes (``on_trained``) or is
pruned (``on_pruned``) it

* uploads a learning-curve plot (train/validation loss and the task's metric per epoch, an SVG
  image the dashboard previews) through Optuna's artifact store;
* writes a short markdown note with the trial's outcome, params and timings through
  optuna-dashboard's note API;
* for a completed trial that beats the study's best so far, uploads its Keras model as
  ``model-trial-N.keras``. Earlier bests keep theirs, so the best trial always has its model
  file and the artifact dir grows by one model per improvement, not per trial.

The artifact store is a directory (``FileSystemArtifactStore``), shared by workers and the
dashboard through a volume in the compose pool.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna_dashboard import save_note

from lstm_tune.errors import ConfigError
from lstm_tune.results.dashboard import open_artifact_store

__all__ = ["TrialArtifacts", "learning_curve_svg", "trial_curve_svg", "trial_note"]

CURVE_FILENAME = "learning-curve-trial-{number}.svg"
MODEL_FILENAME = "model-trial-{number}.keras"
TRAIN_COLOUR, VAL_COLOUR, BEST_COLOUR = "#1f77b4", "#ff7f0e", "#2ca02c"


class Recorder(Protocol):
    """What the hooks read from training's epoch recorder (``training.EpochRecorder``)."""

    history: dict[str, list[float]]
    seconds_per_epoch: list[float]

    @property
    def metric_name(self) -> str: ...

    @property
    def values(self) -> list[float]: ...

    @property
    def best_epoch(self) -> int: ...

    @property
    def best_value(self) -> float: ...


class TrialArtifacts:
    """Objective hooks that give each finished trial its plot and note, and the best its model.

    A file-system error while writing artifacts (a full disk, a volume gone read-only) does
    not cost the trial its result: the trial keeps its value, records the error in its
    ``artifact_error`` user attribute, and a warning is issued.
    """

    def __init__(self, artifact_dir: str | Path) -> None:
        self.store: FileSystemArtifactStore = open_artifact_store(artifact_dir)
        if not os.access(artifact_dir, os.W_OK):
            raise ConfigError(f"artifact dir {str(artifact_dir)!r} is not writable")

    def on_trained(self, trial: optuna.trial.Trial, model: Any, recorder: Recorder) -> None:
        """Hook for a completed trial: curve, note, and the model if it is the best so far."""
        with _artifact_errors_kept(trial):
            self._upload_curve(trial, recorder, pruned=False)
            if _beats_best(trial, recorder.best_value):
                with tempfile.TemporaryDirectory(prefix="lstm-tune-model-") as tmp:
                    path = Path(tmp) / MODEL_FILENAME.format(number=trial.number)
                    model.save(path)
                    upload_artifact(
                        artifact_store=self.store, file_path=str(path), study_or_trial=trial
                    )
        save_note(trial, trial_note(trial, recorder, pruned=False))

    def on_pruned(self, trial: optuna.trial.Trial, recorder: Recorder | None) -> None:
        """Hook for a trial the pruner stops: its curve so far and its note."""
        if recorder is not None:
            with _artifact_errors_kept(trial):
                self._upload_curve(trial, recorder, pruned=True)
        save_note(trial, trial_note(trial, recorder, pruned=True))

    def _upload_curve(
        self, trial: optuna.trial.Trial, recorder: Recorder, *, pruned: bool
    ) -> None:
        svg = trial_curve_svg(trial, recorder, pruned=pruned)
        if svg is None:
            return
        with tempfile.TemporaryDirectory(prefix="lstm-tune-curve-") as tmp:
            path = Path(tmp) / CURVE_FILENAME.format(number=trial.number)
            path.write_text(svg, encoding="utf-8")
            upload_artifact(artifact_store=self.store, file_path=str(path), study_or_trial=trial)


def trial_curve_svg(trial: optuna.trial.Trial, recorder: Recorder, *, pruned: bool) -> str | None:
    """The learning curve of ``trial`` so far as SVG (None before any epoch's history), as
    the artifact store and the trackers keep it."""
    if not any(recorder.history.values()):
        return None
    return learning_curve_svg(
        recorder.history,
        title=f"Trial {trial.number} ({'pruned' if pruned else 'complete'})",
        best_epoch=None if pruned else recorder.best_epoch,
        metric=recorder.metric_name.removeprefix("val_"),
    )


@contextlib.contextmanager
def _artifact_errors_kept(trial: optuna.trial.Trial) -> Iterator[None]:
    """Turn an OSError while writing artifacts into a trial attribute and a warning."""
    try:
        yield
    except OSError as exc:
        message = f"could not write artifacts of trial {trial.number}: {exc}"
        trial.set_user_attr("artifact_error", message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _beats_best(trial: optuna.trial.Trial, value: float) -> bool:
    """Whether ``value`` beats every completed trial of the study so far."""
    try:
        best = trial.study.best_value
    except ValueError:  # no completed trial yet
        return True
    if trial.study.direction == optuna.study.StudyDirection.MAXIMIZE:
        return value > best
    return value < best


def trial_note(trial: optuna.trial.Trial, recorder: Recorder | None, *, pruned: bool) -> str:
    """The markdown note of a trial: outcome, params, and timings."""
    secs: Sequence[float] = recorder.seconds_per_epoch if recorder is not None else []
    epochs = len(secs)
    val = recorder.values if recorder is not None else []
    metric = recorder.metric_name if recorder is not None else "value"
    if pruned:
        outcome = f"pruned after epoch {epochs}"
        if val:
            outcome += f" ({metric} {val[-1]:.4f})"
    else:
        assert recorder is not None
        outcome = (
            f"complete, {metric} **{recorder.best_value:.4f}** at epoch {recorder.best_epoch}"
        )
    lines = [f"### Trial {trial.number}: {outcome}", "", "| param | value |", "|---|---|"]
    lines += [f"| {name} | {_num(value)} |" for name, value in trial.params.items()]
    lines.append("")
    timing = []
    if secs:
        timing.append(
            f"{epochs} epochs, {sum(secs) / len(secs):.1f} s/epoch, {sum(secs):.1f} s training"
        )
    param_count = trial.user_attrs.get("param_count")
    if param_count is not None:
        timing.append(f"{int(param_count):,} weights")
    if timing:
        lines.append("**Timings:** " + "; ".join(timing) + ".")
    return "\n".join(lines) + "\n"


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


# --------------------------------------------------------------------------- SVG plot

# Two panels side by side, each with a left margin for its tick labels, 16px between them
# and on the right; readable in the dashboard's artifact card.
_PANEL_W, _TOP, _BOTTOM, _LEFT, _GAP = 340, 56, 42, 52, 16
CURVE_WIDTH = 2 * (_LEFT + _PANEL_W) + 2 * _GAP
_W, _H = CURVE_WIDTH, 320


def learning_curve_svg(
    history: Mapping[str, Sequence[float]],
    *,
    title: str,
    best_epoch: int | None = None,
    metric: str = "accuracy",
) -> str:
    """Draw loss and ``metric`` per epoch (train and validation) as a standalone SVG document.

    Hand-written SVG rather than matplotlib: the workers need no plotting stack, and the
    dashboard shows any ``image/*`` artifact inline.
    """
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="11">',
        f'<rect width="{_W}" height="{_H}" fill="white"/>',
        f'<text x="{_W / 2}" y="18" text-anchor="middle" font-size="14">{escape(title)}</text>',
        _legend(with_best=best_epoch is not None),
    ]
    for i, name in enumerate(dict.fromkeys(("loss", metric))):
        x0 = _LEFT + i * (_PANEL_W + _LEFT + _GAP)
        series = [
            (history.get(name) or [], TRAIN_COLOUR, ""),
            (history.get(f"val_{name}") or [], VAL_COLOUR, ' stroke-dasharray="5,3"'),
        ]
        parts.append(_panel(x0, name, series, best_epoch))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _legend(*, with_best: bool) -> str:
    y = 36
    items = [("train", TRAIN_COLOUR, ""), ("validation", VAL_COLOUR, ' stroke-dasharray="5,3"')]
    if with_best:
        items.append(("best epoch", BEST_COLOUR, ' stroke-dasharray="2,2"'))
    out, x = [], _W / 2 - 150
    for name, colour, dash in items:
        out.append(
            f'<line x1="{x}" y1="{y}" x2="{x + 22}" y2="{y}" stroke="{colour}" '
            f'stroke-width="2"{dash}/><text x="{x + 27}" y="{y + 4}">{name}</text>'
        )
        x += 100
    return "".join(out)


def _panel(
    x0: float,
    label: str,
    series: Sequence[tuple[Sequence[float], str, str]],
    best_epoch: Any,
) -> str:
    height = _H - _TOP - _BOTTOM
    finite = [v for values, _, _ in series for v in values if _finite(v)]
    n = max((len(values) for values, _, _ in series), default=0)
    out = [
        f'<rect x="{x0}" y="{_TOP}" width="{_PANEL_W}" height="{height}" '
        'fill="none" stroke="#bbb"/>',
        f'<text x="{x0 + _PANEL_W / 2}" y="{_H - 8}" text-anchor="middle">epoch</text>',
        f'<text x="{x0 - 38}" y="{_TOP + height / 2}" text-anchor="middle" '
        f'transform="rotate(-90 {x0 - 38} {_TOP + height / 2})">{label}</text>',
    ]
    if not finite or n == 0:
        out.append(f'<text x="{x0 + 10}" y="{_TOP + 20}">no values</text>')
        return "".join(out)
    lo, hi = min(finite), max(finite)
    pad = (hi - lo) * 0.08 or 0.05  # a flat curve still gets a visible band
    lo, hi = lo - pad, hi + pad

    def px(epoch: int) -> float:  # epochs are 1-based on the axis
        return x0 + (0.5 if n == 1 else (epoch - 1) / (n - 1)) * _PANEL_W

    def py(v: float) -> float:
        return _TOP + (hi - v) / (hi - lo) * height

    for k in range(5):  # five horizontal gridlines with labels
        v = lo + (hi - lo) * k / 4
        out.append(
            f'<line x1="{x0}" y1="{py(v):.1f}" x2="{x0 + _PANEL_W}" y2="{py(v):.1f}" '
            f'stroke="#eee"/><text x="{x0 - 4}" y="{py(v) + 4:.1f}" text-anchor="end">'
            f"{v:.3g}</text>"
        )
    step = max(1, math.ceil(n / 10))  # at most ~10 epoch labels
    for epoch in range(1, n + 1, step):
        out.append(
            f'<text x="{px(epoch):.1f}" y="{_TOP + height + 14}" text-anchor="middle">'
            f"{epoch}</text>"
        )
    if isinstance(best_epoch, int) and 1 <= best_epoch <= n:
        out.append(
            f'<line x1="{px(best_epoch):.1f}" y1="{_TOP}" x2="{px(best_epoch):.1f}" '
            f'y2="{_TOP + height}" stroke="{BEST_COLOUR}" stroke-dasharray="2,2"/>'
        )
    for values, colour, dash in series:
        points = [(px(i + 1), py(v)) for i, v in enumerate(values) if _finite(v)]
        if not points:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        out.extend(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>' for x, y in points
        )
    return "".join(out)


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)
