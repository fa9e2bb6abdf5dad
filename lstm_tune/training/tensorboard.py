"""A trial's TensorBoard run: Keras's TensorBoard callback, plus the pruner's checkpoints.

Keras's callback writes the epoch metrics (``epoch_loss``, ``epoch_<metric>`` in the run's
``train`` and ``validation`` folders); :meth:`TrialTensorBoard.log_checkpoint` adds the value
reported at each ``report_every`` checkpoint (``checkpoint_<metric>`` in ``validation``, the
step the pruner sees). Events are flushed at every epoch end and the files closed by
:meth:`TrialTensorBoard.close`, so a pruned or failed trial keeps its curve (Keras closes its
writers only at the end of a fit that was not interrupted).

Keras writes scalars with ``tf.summary.scalar``, which TensorFlow implements only when the
``tensorboard`` package is installed (tensorflow-cpu does not bring it):
:func:`require_tensorboard` says so before a search starts.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import keras

from lstm_tune.errors import ConfigError

__all__ = ["CHECKPOINT_TAG", "TrialTensorBoard", "require_tensorboard", "trial_log_dir"]

CHECKPOINT_TAG = "checkpoint_{metric}"


def require_tensorboard(where: str) -> None:
    """Raise :class:`ConfigError` naming ``where`` (the setting that asks for TensorBoard
    logs) when the ``tensorboard`` package is not installed."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            f"{where}: TensorBoard logs need the tensorboard package, which is not installed; "
            f"pip install 'lstm-tune[tensorboard]'"
        )


def trial_log_dir(root: str | Path, study_name: str, trial_number: int) -> Path:
    """The run folder of one trial: ``<root>/<study>/trial-<n>``."""
    return Path(root) / study_name / f"trial-{trial_number}"


class TrialTensorBoard(keras.callbacks.TensorBoard):  # type: ignore[misc]
    """Keras's TensorBoard callback for one trial, flushed every epoch, with checkpoints.

    No graph, histograms or profile: a trial's curves are what a search is compared by, and
    the graph of every trial would be the same few layers.
    """

    def __init__(self, log_dir: str | Path, metric: str) -> None:
        super().__init__(log_dir=str(log_dir), write_graph=False, profile_batch=0)
        self.checkpoint_tag = CHECKPOINT_TAG.format(metric=metric)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        for writer in self._writers.values():
            writer.flush()

    def log_checkpoint(self, step: int, value: float) -> None:
        """Write the validation value reported to the pruner at checkpoint ``step``."""
        # The validation writer is Keras's own (created on first use), so the checkpoints
        # sit beside the epoch metrics in the trial's `validation` run.
        with self._val_writer.as_default():
            self.summary.scalar(self.checkpoint_tag, value, step=step)
        self._val_writer.flush()

    def close(self) -> None:
        """Close the event files (again, if Keras's ``on_train_end`` already did)."""
        self._close_writers()
