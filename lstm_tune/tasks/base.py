"""The contract every task fulfils; everything above the tasks asks a task, never assumes one.

A task is one job an LSTM does (text classification, forecasting, language modelling). The
shared parts of lstm-tune (worker, objective, training loop, export, ``train``, report,
artifacts, progress, CLI) know only this contract:

``data_model``
    the pydantic model of the study file's ``data:`` section for this task (its fields, their
    defaults and limits; ``lstm-tune schema`` prints it).
``objectives``
    the metrics a study may optimise (``search.metric``), each with its direction; the first
    is the default. The compiled model logs ``<name without "val_">`` so that Keras reports
    the validation value under ``name`` at every epoch end.
``load(data, seed) -> Prepared``
    read and validate the data into fit / validation / test splits, plus what the model
    needs (vocabulary size, classes, scaler, ...) in ``Prepared.meta``. Raises
    :class:`~lstm_tune.errors.DataError` naming the file, the column or field and the value.
``batches(split, params, shuffle_seed)``
    a ``tf.data`` pipeline of (inputs, targets) for training and validation.
``build(params, prepared)``
    the compiled ``keras.Model``: the task's input side and output head around the shared
    :func:`lstm_tune.training.lstm_stack.lstm_stack`, its loss, its metric.
``score(model, split, params, metric)``
    the value of ``metric`` on ``split`` (checkpoints within an epoch report it to the
    pruner; it must agree with what Keras logs at epoch ends).
``evaluate(model, prepared, params)``
    test-set metrics (JSON-ready) including the task's trivial ``baseline``.
``report_sections(metrics)``
    figures and tables of those metrics for the HTML report.
``summary(metrics)``
    a short text of those metrics for the terminal.
``estimate_memory(params, prepared)`` / ``estimate_epoch_seconds(params, prepared, ...)``
    the pre-flight estimate of a config's peak memory and time per epoch.
``with_validation_in_fit(prepared)``
    the same data with the validation split added to the fit split (``train --refit-full``:
    the final model learns from every training example once its epochs are chosen).
``inference_state(prepared, data)``
    what turns raw input into the model's input and its output back into answers (the
    vocabulary and tokenizer rules, the class names, the scaler, the columns...), JSON-ready;
    ``lstm-tune train`` saves it beside the model (``preprocessing.json``).
``read_inputs(state, path)`` / ``check_input(state, params, item)`` /
``predict(model, state, params, inputs, options)``
    raw examples streamed from a file, each checked (before the model is loaded, so a bad
    input costs no wait and gets one line), and a batch of them turned into output rows
    (``lstm-tune predict`` and ``lstm_tune.load_model(dir).predict(...)``).

A new task is one module in this package that defines a :class:`Task` subclass and calls
:func:`lstm_tune.tasks.register` on an instance of it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from lstm_tune.types import MemoryEstimate, Objective, Params, Prepared, ReportSection

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


class Task(ABC):
    """One job an LSTM does; see the module docstring for the contract."""

    name: ClassVar[str]
    # Other values of ``task:`` that mean this task (older study files keep working).
    aliases: ClassVar[tuple[str, ...]] = ()
    data_model: ClassVar[type[BaseModel]]
    objectives: ClassVar[tuple[Objective, ...]]
    # What one training example is called in messages (reviews, windows, ...).
    example_noun: ClassVar[str] = "examples"

    def objective(self, metric: str | None) -> Objective:
        """The objective named ``metric`` (None: the task's default)."""
        if metric is None:
            return self.objectives[0]
        for objective in self.objectives:
            if objective.name == metric:
                return objective
        allowed = ", ".join(o.name for o in self.objectives)
        raise ValueError(f"metric {metric!r} is not one of this task's: {allowed}")

    @abstractmethod
    def load(self, data: Any, seed: int) -> Prepared:
        """Read, validate and split the data ``data`` (this task's ``data_model``) names."""

    @abstractmethod
    def batches(self, split: Any, params: Params, *, shuffle_seed: int | None) -> tf.data.Dataset:
        """(inputs, targets) batches of ``split``; shuffled anew each pass when seeded."""

    @abstractmethod
    def build(self, params: Params, prepared: Prepared) -> keras.Model:
        """The compiled model for ``params``: input side, shared LSTM stack, head, loss."""

    @abstractmethod
    def score(self, model: keras.Model, split: Any, params: Params, metric: str) -> float:
        """The value of ``metric`` on ``split``."""

    @abstractmethod
    def sample(self, split: Any, size: int, seed: int) -> Any:
        """A fixed sample of ``size`` examples of ``split`` (checkpoint scoring)."""

    @abstractmethod
    def size(self, split: Any) -> int:
        """Number of examples in ``split``."""

    @abstractmethod
    def evaluate(self, model: keras.Model, prepared: Prepared, params: Params) -> dict[str, Any]:
        """Test-set metrics, JSON-ready, with the trivial ``baseline`` beside them."""

    @abstractmethod
    def report_sections(self, metrics: Mapping[str, Any]) -> list[ReportSection]:
        """Figures and tables of ``metrics`` for the HTML report."""

    @abstractmethod
    def summary(self, metrics: Mapping[str, Any]) -> str:
        """A short text report of ``metrics`` for the terminal."""

    @abstractmethod
    def estimate_memory(self, params: Params, prepared: Prepared) -> MemoryEstimate:
        """Estimated peak memory of training ``params``."""

    @abstractmethod
    def with_validation_in_fit(self, prepared: Prepared) -> Prepared:
        """``prepared`` whose fit split also holds the validation examples."""

    @abstractmethod
    def inference_state(self, prepared: Prepared, data: Any) -> dict[str, Any]:
        """JSON-ready state that turns raw input into model input and outputs into answers."""

    @abstractmethod
    def read_inputs(self, state: Mapping[str, Any], path: Path) -> Iterator[Any]:
        """Raw examples from the file at ``path``, streamed (DataError on a bad file)."""

    @abstractmethod
    def check_input(self, state: Mapping[str, Any], params: Params, item: Any) -> Any:
        """``item`` ready for :meth:`predict`, or DataError saying why it cannot be used."""

    @abstractmethod
    def predict(
        self,
        model: keras.Model,
        state: Mapping[str, Any],
        params: Params,
        inputs: Sequence[Any],
        options: Mapping[str, Any],
    ) -> list[dict[str, Any]]:
        """Output rows (JSON-ready dicts) for one batch of raw ``inputs``."""

    @abstractmethod
    def estimate_epoch_seconds(
        self, params: Params, prepared: Prepared, checkpoints: int, sample_size: int
    ) -> float:
        """Estimated seconds of one training epoch, ``checkpoints`` samples scored within it."""
