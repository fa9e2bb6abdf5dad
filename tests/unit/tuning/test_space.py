"""Sampling the six hyperparameters: every value a trial gets lies inside its range."""

from __future__ import annotations

import optuna

from lstm_tune.config import PARAM_NAMES, Fixed, load_spec
from lstm_tune.tuning.space import contains, suggest
from tests.helpers import ROOT

STUDIES = ROOT / "studies"


def test_sampled_params_hold_all_six_names_inside_their_ranges() -> None:
    spec = load_spec(STUDIES / "imdb.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(200):
        trial = study.ask()
        params = suggest(trial, spec.space)
        assert set(params) == set(PARAM_NAMES)
        assert contains(spec.space, params), params
        assert isinstance(params["hidden_size"], int) and isinstance(
            params["learning_rate"], float
        )
        assert params["sequence_length"] % 50 == 0
        study.tell(trial, 0.5)
    rates = [t.params["learning_rate"] for t in study.trials]
    # log-uniform: about half the draws fall below the geometric midpoint 1e-3.
    assert 0.35 < sum(r < 1e-3 for r in rates) / len(rates) < 0.65


def test_fixed_values_are_passed_through_and_contains_rejects_outsiders() -> None:
    spec = load_spec(STUDIES / "seed_config.yaml")
    trial = optuna.create_study().ask()
    params = suggest(trial, spec.space)
    assert params == {name: p.value for name, p in spec.space.items() if isinstance(p, Fixed)}
    assert contains(spec.space, params)
    assert not contains(spec.space, {**params, "batch_size": 65})
    smoke = load_spec(STUDIES / "imdb_smoke.yaml")
    assert not contains(smoke.space, {**params, "hidden_size": 1000})
