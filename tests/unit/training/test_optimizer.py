"""The optimizer knobs: weight_decay (AdamW), clipnorm, lr_schedule and lr_warmup; without
them, the seed's Adam at a constant rate."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from lstm_tune.tasks.forecasting import build_forecaster
from lstm_tune.tasks.language_model import build_language_model
from lstm_tune.tasks.text_classification.task import build_classifier
from lstm_tune.training.fit import fit
from lstm_tune.training.lstm_stack import optimizer, plan_learning_rate, scheduled_rate
from lstm_tune.types import Objective

TINY = {
    "hidden_size": 4,
    "num_layers": 1,
    "learning_rate": 0.01,
    "dropout_rate": 0.0,
    "sequence_length": 8,
    "batch_size": 4,
}


def _rate(schedule: keras.optimizers.schedules.LearningRateSchedule, step: int) -> float:
    return float(schedule(step))


def test_without_knobs_every_task_keeps_adam_at_a_constant_rate() -> None:
    for model in (
        build_classifier(TINY, 20),
        build_forecaster(TINY, 2, 3, [0]),
        build_language_model(TINY, 20),
    ):
        assert type(model.optimizer) is keras.optimizers.Adam
        assert scheduled_rate(model) is None
        assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    # The language model keeps its clipping at 1.0; the others clip nothing.
    assert build_language_model(TINY, 20).optimizer.global_clipnorm == 1.0
    assert build_classifier(TINY, 20).optimizer.global_clipnorm is None


def test_adamw_is_used_when_weight_decay_is_above_zero() -> None:
    decayed = {**TINY, "weight_decay": 0.05}
    for model in (
        build_classifier(decayed, 20),
        build_forecaster(decayed, 2, 3, [0]),
        build_language_model(decayed, 20),
    ):
        assert type(model.optimizer) is keras.optimizers.AdamW
        assert model.optimizer.weight_decay == pytest.approx(0.05)
    assert type(optimizer({**TINY, "weight_decay": 0.0})) is keras.optimizers.Adam


def test_clipnorm_clips_the_global_norm_and_zero_turns_the_language_models_off() -> None:
    assert build_classifier({**TINY, "clipnorm": 0.5}, 20).optimizer.global_clipnorm == 0.5
    assert build_language_model({**TINY, "clipnorm": 2.0}, 20).optimizer.global_clipnorm == 2.0
    assert build_language_model({**TINY, "clipnorm": 0.0}, 20).optimizer.global_clipnorm is None


def test_cosine_schedule_with_warmup_at_chosen_steps() -> None:
    params = {**TINY, "lr_schedule": "cosine", "lr_warmup": 0.1}
    schedule = optimizer(params)._learning_rate
    plan_learning_rate(schedule, 100)
    assert (schedule.warmup_steps, schedule.decay_steps) == (10, 90)
    # Linear warm-up from 0 to the rate over 10 steps, then half a cosine down to 0 over 90.
    expected = {0: 0.0, 5: 0.005, 10: 0.01, 55: 0.005, 100: 0.0, 150: 0.0}
    expected[32] = 0.01 * 0.5 * (1 + np.cos(np.pi * 22 / 90))
    for step, rate in expected.items():
        assert _rate(schedule, step) == pytest.approx(rate, abs=1e-7), step


def test_cosine_without_warmup_and_a_constant_rate_after_warmup() -> None:
    cosine = optimizer({**TINY, "lr_schedule": "cosine"})._learning_rate
    plan_learning_rate(cosine, 40)
    assert [_rate(cosine, s) for s in (0, 20, 40)] == pytest.approx([0.01, 0.005, 0.0], abs=1e-7)
    warm = optimizer({**TINY, "lr_warmup": 0.25})._learning_rate  # schedule left constant
    plan_learning_rate(warm, 40)
    assert [_rate(warm, s) for s in (0, 5, 10, 25, 40)] == pytest.approx(
        [0.0, 0.005, 0.01, 0.01, 0.01], abs=1e-7
    )


def _tiny_batches(count: int) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 20, size=(count * 4, 6)).astype(np.int32)
    labels = rng.integers(0, 2, size=count * 4).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((ids, labels)).batch(4)


@pytest.mark.slow
def test_fit_spreads_the_schedule_over_the_planned_epochs() -> None:
    keras.utils.set_random_seed(0)
    model = build_classifier({**TINY, "lr_schedule": "cosine"}, 20)
    train, validation = _tiny_batches(5), _tiny_batches(2)
    objective = Objective("val_accuracy", "maximize")
    fit(model, train, validation, objective=objective, epochs=1, planned_epochs=2)
    schedule = scheduled_rate(model)
    assert schedule is not None and schedule.decay_steps == 2 * 5  # 2 planned epochs of 5
    assert int(model.optimizer.iterations) == 5
    # Halfway through the plan after the one epoch run: half the rate.
    assert float(model.optimizer.learning_rate) == pytest.approx(0.005, abs=1e-7)
