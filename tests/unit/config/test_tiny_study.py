"""The tests' study-file factory writes files that the study-file rules accept."""

from __future__ import annotations

import yaml

from lstm_tune.config import PARAM_NAMES, load_spec
from tests.helpers.studies import StudyFile


def test_the_default_study_is_a_valid_two_trial_one_epoch_search(study_file: StudyFile) -> None:
    path = study_file()
    spec = load_spec(path)
    assert path.name == "tiny.yaml" and spec.name == "tiny"
    assert (spec.search.n_trials, spec.training.epochs) == (2, 1)
    assert set(spec.space) == set(PARAM_NAMES)


def test_a_part_given_as_none_is_left_out_and_params_replace_the_space(
    study_file: StudyFile,
) -> None:
    params = {
        "hidden_size": 4,
        "num_layers": 1,
        "learning_rate": 0.01,
        "dropout_rate": 0.0,
        "sequence_length": 20,
        "batch_size": 8,
    }
    path = study_file(filename="one.yaml", name="one", search=None, params=params)
    assert path.name == "one.yaml"
    doc = yaml.safe_load(path.read_text())
    assert set(doc) == {"name", "training", "params"}
    assert load_spec(path).fixed_params() == params
