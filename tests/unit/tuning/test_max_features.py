"""``max_features`` in the space: each trial's model has the sampled vocabulary, and the corpus
is tokenized once, at the largest size, whatever the trials sample."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import optuna
import pytest

from lstm_tune.config import parse_spec, with_data
from lstm_tune.tasks import get_task
from lstm_tune.tasks.text_classification import data as text_data
from lstm_tune.tuning.objective import make_objective

SPACE = {
    "hidden_size": 4,
    "num_layers": 1,
    "learning_rate": 0.01,
    "dropout_rate": 0.0,
    "sequence_length": 30,
    "batch_size": 64,
    "max_features": {"choices": [50, 300]},
}


@pytest.mark.slow
def test_max_features_models_have_the_sampled_vocabulary_from_one_tokenization(
    imdb_slice: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenized: list[str] = []
    tokenize = text_data.tokenize

    def counting(text: str) -> list[str]:
        tokenized.append(text)
        return tokenize(text)

    monkeypatch.setattr(text_data, "tokenize", counting)
    spec = parse_spec(
        {
            "name": "vocab",
            "data": {"path": str(imdb_slice)},
            "training": {"epochs": 1},
            "space": SPACE,
        }
    )
    assert spec.data.max_features == 300
    task = get_task(spec.task)
    prepared = task.load(spec.data, spec.seed)
    assert len(tokenized) == 800  # every review once
    embedding_rows: list[tuple[int, int]] = []

    def on_trained(trial: optuna.trial.Trial, model: keras.Model, _recorder: object) -> None:
        embedding = next(x for x in model.layers if isinstance(x, keras.layers.Embedding))
        embedding_rows.append((trial.params["max_features"], embedding.input_dim))

    study = optuna.create_study(direction="maximize")
    for size in (50, 300):
        study.enqueue_trial({"max_features": size})
    study.optimize(make_objective(spec, prepared, on_trained=on_trained), n_trials=2)
    assert embedding_rows == [(50, 50), (300, 300)]
    assert len(tokenized) == 800  # the trials tokenized nothing
    # One cut per size, kept for the next trial of that size.
    small = task.for_params(prepared, {"max_features": 50})
    assert small is task.for_params(prepared, {"max_features": 50})
    assert task.for_params(prepared, {"max_features": 300}) is prepared
    # The cut is what tokenizing at that size gives.
    direct = task.load(with_data(spec, max_features=50).data, spec.seed)
    assert small.meta["vocab_size"] == direct.meta["vocab_size"] == 50
    assert small.meta["vocabulary"] == direct.meta["vocabulary"]
    for name in ("fit", "validation", "test"):
        cut, tokenized_at_50 = getattr(small, name), getattr(direct, name)
        assert len(cut.sequences) == len(tokenized_at_50.sequences)
        for a, b in zip(cut.sequences, tokenized_at_50.sequences, strict=True):
            np.testing.assert_array_equal(a, b)
    assert max(int(s.max(initial=0)) for s in small.fit.sequences) == 49
