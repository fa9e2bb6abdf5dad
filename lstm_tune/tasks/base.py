"""The contract every task fulfils; everything above the tasks asks a task, never assumes one.

A task is one job an LSTM does (text classification, forecasting, language modelling). The
shared parts of lstm-tune (worker, objective, training loop, export, ``train``, report,
artifacts, progress, CLI) know only this contract. A task gives data, a model, scores and
evaluations, all as data; it draws nothing (:mod:`lstm_tune.results.draw` does).

Class attributes:

``name`` (and ``aliases``)
    the study file's ``task:`` values that mean this task.
``data_model``
    the pydantic model of the study file's ``data:`` section (its fields, defaults and
    limits; ``lstm-tune schema`` prints it).
``objectives``
    the metrics a study may optimise (``search.metric``), each with its direction; the first
    is the default. The compiled model logs ``<name without "val_">`` so that Keras reports
    the validation value under ``name`` at every epoch end.
``example_noun``
    what one training example is called in messages (texts, windows, ...).
``knobs``
    the optional knobs beyond the six a study of this task may name in ``space:``
    (:data:`lstm_tune.config.space.KNOBS` describes each; :data:`COMMON_KNOBS` by default).
    A study naming another stops with one line. A knob the study leaves out is absent from
    ``params``, and the task builds today's model for it.
``data_knobs``
    those of ``knobs`` that are also fields of ``data_model`` (the vocabulary size...): a
    study that names one has its data loaded at the knob's largest value, and
    :meth:`Task.for_params` gives each config its own.

The ten methods a task writes:

``load(data, seed) -> Prepared``
    read and validate the data into fit / validation / test splits (any type the task likes)
    plus what the model needs in ``Prepared.meta`` (vocabulary size, classes, scaler, ...).
    Raises :class:`~lstm_tune.errors.DataError` naming the file, the field and the value.
``batches(split, params, shuffle_seed)``
    a ``tf.data`` pipeline of (inputs, targets); shuffled anew each pass when seeded.
``build(params, prepared)``
    the compiled ``keras.Model``: the task's input side and output head around the shared
    :func:`lstm_tune.training.lstm_stack.lstm_stack`, its loss, its metrics.
``score(model, split, params, metric)``
    the value of ``metric`` on ``split``; checkpoints within an epoch report it to the
    pruner, so it must agree with what Keras logs at epoch ends.
``evaluate(model, prepared, params)``
    test-set metrics, JSON-ready (``metrics.json``), with the task's trivial ``baseline``.
``report(metrics) -> Report``
    those metrics as figures (:mod:`lstm_tune.figures`: tables, sentences, confusion matrix,
    curves, forecast plot, samples): the sections of the HTML report and the lines of the
    terminal summary. It must read every ``metrics.json`` this task ever wrote.
``estimate(params, prepared, checkpoints, sample_size) -> Estimate``
    a config's peak memory and seconds per epoch (``checkpoints`` samples of
    ``sample_size`` scored within it), before anything is built; raises
    :class:`~lstm_tune.training.preflight.ConfigTooLarge` for a config that cannot run.
``inference_state(prepared, data)``
    what turns raw input into the model's input and its output back into answers (the
    vocabulary, the class names, the scaler, ...), JSON-ready: ``lstm-tune train`` saves it
    beside the model as ``preprocessing.json``'s ``state``.
``read_inputs(state, path)``
    raw examples streamed from a file (``lstm-tune predict``); DataError on a bad file.
``predict(model, state, params, inputs, options)``
    output rows (JSON-ready dicts) for a batch of raw examples (each through ``check_input``).

Five more have defaults, which a task overrides when its data needs it:

``for_params(prepared, params)``
    the data as config ``params`` uses it (its own vocabulary size...), when the task has
    ``data_knobs``; by default ``prepared`` itself. Everything that builds, trains, scores or
    saves a model for ``params`` asks for it first.

``size(split)``
    examples in a split (``train_size`` etc. in ``metrics.json``): ``len(split)``.
``sample(split, size, seed)`` / ``with_validation_in_fit(prepared)``
    a fixed sample of a split (checkpoint scoring), and the data with the validation split
    added to the fit split (``train --refit-full``). Done for splits of type
    :class:`Examples`; a task with its own split type writes them.
``check_input(state, params, item)``
    ``item`` ready for ``predict``, or DataError saying why not, before the model is loaded
    (a bad input costs no wait and gets one line); by default every item is taken as it is.

A new task is one module (or package) in this package that defines a :class:`Task` subclass
and calls :func:`lstm_tune.tasks.register` on an instance of it. This module also gives it
:class:`Examples` (a split the defaults handle), :func:`sample_index` (a seeded sample's
positions) and :func:`baseline_warning` (the report's "does not beat the baseline").
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

import numpy as np
from pydantic import BaseModel

from lstm_tune.figures import Report, Text
from lstm_tune.types import Estimate, Objective, Params, Prepared

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

__all__ = [
    "COMMON_KNOBS",
    "Examples",
    "Options",
    "State",
    "Task",
    "baseline_warning",
    "sample_index",
]

# The knobs every task accepts: they change the optimizer, not the model's shape.
COMMON_KNOBS = ("weight_decay", "clipnorm", "lr_schedule", "lr_warmup")

# A task's inference state, as ``preprocessing.json`` keeps it (JSON-ready).
State = Mapping[str, Any]
# The keyword options of a prediction (a language model's ``length``, ``temperature``...).
Options = Mapping[str, Any]

InputsT = TypeVar("InputsT", bound=np.ndarray | list[Any])


def sample_index(count: int, size: int, seed: int) -> np.ndarray:
    """Positions of a fixed random sample of ``size`` of ``count`` items (all of them if
    fewer), in ascending order: the same positions for the same seed."""
    chosen = np.random.default_rng(seed).choice(count, min(size, count), replace=False)
    return np.sort(chosen)


def baseline_warning(metrics: Mapping[str, Any], baseline: str, score: str) -> tuple[Text, ...]:
    """The report's warning that the model does not beat ``baseline`` on the test ``score``
    when ``metrics`` say so (``beats_baseline`` false), else nothing."""
    if metrics.get("beats_baseline", True):
        return ()
    return (Text("the model does not beat the {} on test {}.", (baseline, score), warning=True),)


@dataclass(frozen=True)
class Examples(Generic[InputsT]):
    """A split held as examples side by side: ``inputs[i]`` and ``targets[i]`` are example
    ``i``; ``inputs`` is an array (examples of one shape) or a list (of different lengths).

    The base class counts, samples and merges splits of this type, so a task whose splits
    are ``Examples`` writes no split method of its own.
    """

    inputs: InputsT
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, index: np.ndarray) -> Self:
        """The examples at positions ``index``, in that order (same type as this split)."""
        if isinstance(self.inputs, np.ndarray):
            inputs: Any = self.inputs[index]
        else:
            inputs = [self.inputs[i] for i in index]
        return dataclasses.replace(self, inputs=inputs, targets=self.targets[index])

    def followed_by(self, other: Self) -> Self:
        """These examples, then ``other``'s."""
        if isinstance(self.inputs, np.ndarray):
            inputs: Any = np.concatenate([self.inputs, other.inputs])
        else:
            inputs = [*self.inputs, *other.inputs]
        targets = np.concatenate([self.targets, other.targets])
        return dataclasses.replace(self, inputs=inputs, targets=targets)


def _examples(task: Task, split: Any, method: str) -> Examples[Any]:
    if not isinstance(split, Examples):
        raise TypeError(
            f"{type(task).__name__}.{method}: the split is a {type(split).__name__}; the "
            f"base class handles Examples splits only, so a task with another split type "
            f"overrides {method}()"
        )
    return split


class Task(ABC):
    """One job an LSTM does; see the module docstring for the contract."""

    name: ClassVar[str]
    # Other values of ``task:`` that mean this task (older study files keep working).
    aliases: ClassVar[tuple[str, ...]] = ()
    data_model: ClassVar[type[BaseModel]]
    objectives: ClassVar[tuple[Objective, ...]]
    # What one training example is called in messages (reviews, windows, ...).
    example_noun: ClassVar[str] = "examples"
    # Optional knobs this task accepts in ``space:``, and those of them that are data fields.
    knobs: ClassVar[tuple[str, ...]] = COMMON_KNOBS
    data_knobs: ClassVar[tuple[str, ...]] = ()

    def objective(self, metric: str | None) -> Objective:
        """The objective named ``metric`` (None: the task's default)."""
        if metric is None:
            return self.objectives[0]
        for objective in self.objectives:
            if objective.name == metric:
                return objective
        allowed = ", ".join(o.name for o in self.objectives)
        raise ValueError(f"metric {metric!r} is not one of this task's: {allowed}")

    # -- the contract ----------------------------------------------------------------------

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
        """The value of ``metric`` on ``split``, as Keras logs it."""

    @abstractmethod
    def evaluate(self, model: keras.Model, prepared: Prepared, params: Params) -> dict[str, Any]:
        """Test-set metrics, JSON-ready, with the trivial ``baseline`` beside them."""

    @abstractmethod
    def report(self, metrics: Mapping[str, Any]) -> Report:
        """``metrics`` (of any version of this task) as figures: report sections, summary."""

    @abstractmethod
    def estimate(
        self, params: Params, prepared: Prepared, checkpoints: int = 0, sample_size: int = 0
    ) -> Estimate:
        """Estimated peak memory and seconds per epoch of training ``params``, with
        ``checkpoints`` samples of ``sample_size`` scored within each epoch."""

    @abstractmethod
    def inference_state(self, prepared: Prepared, data: Any) -> dict[str, Any]:
        """JSON-ready state that turns raw input into model input and outputs into answers."""

    @abstractmethod
    def read_inputs(self, state: State, path: Path) -> Iterator[Any]:
        """Raw examples from the file at ``path``, streamed (DataError on a bad file)."""

    @abstractmethod
    def predict(
        self, model: keras.Model, state: State, params: Params, inputs: list[Any], options: Options
    ) -> list[dict[str, Any]]:
        """Output rows (JSON-ready dicts) for one batch of checked raw ``inputs``."""

    # -- defaults --------------------------------------------------------------------------

    def for_params(self, prepared: Prepared, params: Params) -> Prepared:
        """The data as ``params`` uses it; by default ``prepared`` (no data knobs)."""
        return prepared

    def size(self, split: Any) -> int:
        """Number of examples in ``split``: ``len(split)``."""
        return len(split)

    def sample(self, split: Any, size: int, seed: int) -> Any:
        """A fixed random sample of ``size`` examples of an :class:`Examples` split, in their
        order (checkpoint scoring)."""
        examples = _examples(self, split, "sample")
        return examples.take(sample_index(len(examples), size, seed))

    def with_validation_in_fit(self, prepared: Prepared) -> Prepared:
        """``prepared`` whose fit split (of :class:`Examples`) also holds the validation
        examples, after its own."""
        fit = _examples(self, prepared.fit, "with_validation_in_fit")
        validation = _examples(self, prepared.validation, "with_validation_in_fit")
        return dataclasses.replace(prepared, fit=fit.followed_by(validation))

    def check_input(self, state: State, params: Params, item: Any) -> Any:
        """``item`` ready for :meth:`predict` (DataError if it cannot be used); by default
        every item is taken as it is."""
        return item
