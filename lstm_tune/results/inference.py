"""A trained model's directory, and using it on new, raw input.

``lstm-tune train`` writes a self-contained directory:

``model.keras``
    the Keras model (it reads what the task's preprocessing makes: token ids, or a window of
    z-scored numbers);
``preprocessing.json``
    everything that turns raw input into the model's input and its output back into answers:
    ``format`` (this file's layout version), ``task``, ``params`` (the six hyperparameters
    and the knobs the config names),
    ``versions`` (of the packages that trained it), ``state`` (the task's: vocabulary and
    tokenizer rules and class names; columns, window, horizon and the scaler; vocabulary and
    level). Plain JSON, so it can be read without lstm-tune;
``config.yaml``
    the config the model was trained from (``lstm-tune train config.yaml`` retrains it);
``metrics.json``, ``report.html``
    its test metrics beside the task's trivial baseline.

:func:`load_model` reads the directory back (checking the format and saying when the
installed packages differ from the ones that trained it) and returns a :class:`TrainedModel`
whose :meth:`~TrainedModel.predict` takes raw input. Keras-only loading of a model that takes
raw strings (a ``TextVectorization`` layer) is not offered: our tokenizer (HTML tags dropped,
words with apostrophes kept) is not one of ``TextVectorization``'s built-in rules, and a
custom rule would make loading need lstm-tune anyway.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lstm_tune.config import StudySpec, spec_to_dict
from lstm_tune.errors import ConfigError
from lstm_tune.tasks import get_task
from lstm_tune.tasks.base import Task
from lstm_tune.types import Prepared

FORMAT = 1
MODEL_FILE = "model.keras"
PREPROCESSING_FILE = "preprocessing.json"
CONFIG_FILE = "config.yaml"
# Packages whose versions decide what a saved model computes.
CHECKED_PACKAGES = ("keras", "tensorflow", "tensorflow-cpu", "lstm-tune")
# Raw examples predicted per batch when streaming a file.
DEFAULT_BATCH = 256


def save_model_dir(
    out: Path,
    model: Any,
    spec: StudySpec,
    prepared: Prepared,
    versions: Mapping[str, str],
) -> None:
    """Write ``model.keras``, ``preprocessing.json`` and ``config.yaml`` into ``out``."""
    task = get_task(spec.task)
    params = spec.fixed_params()
    model.save(out / MODEL_FILE)
    preprocessing = {
        "format": FORMAT,
        "task": task.name,
        "params": params,
        "versions": dict(versions),
        "state": task.inference_state(prepared, spec.data),
    }
    (out / PREPROCESSING_FILE).write_text(json.dumps(preprocessing), encoding="utf-8")
    header = "# The config this model was trained from; `lstm-tune train` retrains it.\n"
    doc = spec_to_dict(spec, params=params)
    (out / CONFIG_FILE).write_text(header + yaml.safe_dump(doc, sort_keys=False), "utf-8")


@dataclass
class TrainedModel:
    """A loaded model directory: its task, params and preprocessing state; the Keras model is
    loaded on first use, so inputs are checked before TensorFlow starts."""

    directory: Path
    task: Task
    params: dict[str, int | float | bool | str]
    state: dict[str, Any]
    _model: Any = None

    @property
    def model(self) -> Any:
        """The Keras model (loaded on first access)."""
        if self._model is None:
            self._model = _load_keras_model(self.directory / MODEL_FILE)
        return self._model

    def predict(self, inputs: Iterable[Any], **options: Any) -> list[dict[str, Any]]:
        """Output rows for raw ``inputs``: texts (classification), histories (forecasting: a
        ``Path`` to a CSV), prompts (language model, with ``length``, ``temperature`` and
        ``seed``). A ``Path`` anywhere stands for the inputs in that file."""
        rows: list[dict[str, Any]] = []
        for batch in self.predict_batches(inputs, **options):
            rows.extend(batch)
        return rows

    def predict_batches(
        self,
        inputs: Iterable[Any],
        batch_size: int = DEFAULT_BATCH,
        on_batch: Callable[[int], None] | None = None,
        **options: Any,
    ) -> Iterator[list[dict[str, Any]]]:
        """Output rows batch by batch (``on_batch`` gets the examples done so far)."""
        done = 0
        for batch in _chunks(self._expand(inputs), batch_size):
            yield self.task.predict(self.model, self.state, self.params, batch, options)
            done += len(batch)
            if on_batch is not None:
                on_batch(done)

    def read_inputs(self, path: str | Path) -> Iterator[Any]:
        """Raw examples of the file at ``path``, as the task reads them."""
        return self.task.read_inputs(self.state, Path(path))

    def _expand(self, inputs: Iterable[Any]) -> Iterator[Any]:
        # A Path stands for the examples in that file (e.g. a forecasting history CSV).
        items = [inputs] if isinstance(inputs, Path) else inputs
        for item in items:
            for raw in self.read_inputs(item) if isinstance(item, Path) else [item]:
                yield self.task.check_input(self.state, self.params, raw)


def load_model(directory: str | Path) -> TrainedModel:
    """Load a directory written by ``lstm-tune train``; see the module docstring."""
    path = Path(directory)
    preprocessing_file = path / PREPROCESSING_FILE
    try:
        preprocessing = json.loads(preprocessing_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no {PREPROCESSING_FILE}; give a directory written by `lstm-tune train`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{preprocessing_file}: unreadable: {exc}") from None
    if not isinstance(preprocessing, dict) or preprocessing.get("format") != FORMAT:
        found = preprocessing.get("format") if isinstance(preprocessing, dict) else None
        raise ConfigError(
            f"{preprocessing_file}: format {found!r}; this lstm-tune reads format {FORMAT}"
        )
    try:
        task = get_task(str(preprocessing["task"]))
    except KeyError:
        raise ConfigError(
            f"{preprocessing_file}: task {preprocessing.get('task')!r} is not one this "
            f"lstm-tune knows"
        ) from None
    _warn_on_version_change(preprocessing_file, preprocessing.get("versions") or {})
    if not (path / MODEL_FILE).is_file():
        raise ConfigError(
            f"{path}: no {MODEL_FILE}; give a directory written by `lstm-tune train`"
        )
    return TrainedModel(path, task, dict(preprocessing["params"]), preprocessing["state"])


def _load_keras_model(path: Path) -> Any:
    import keras

    try:
        # compile=False: the model only predicts, so its loss and metrics (and any custom
        # metric class) are not needed to load it.
        return keras.saving.load_model(path, compile=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot load the model: {exc}") from None


def _warn_on_version_change(where: Path, saved: Mapping[str, str]) -> None:
    from lstm_tune.tuning.export import installed_versions

    here = installed_versions()
    changed = [
        f"{name} {saved[name]} -> {here[name]}"
        for name in CHECKED_PACKAGES
        if name in saved and name in here and saved[name] != here[name]
    ]
    if changed:
        warnings.warn(
            f"{where}: trained with other package versions than installed here "
            f"({', '.join(changed)}); predictions may differ slightly",
            RuntimeWarning,
            stacklevel=3,
        )


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
