"""What many tests share: the repository's root, the real IMDB corpus, a tiny search space,
slices of the corpus, and the rule for a missing service (skip here, fail in CI).

Modules beside this one: ``pg`` (PostgreSQL servers and databases), ``servers`` (a dashboard
process and its API), ``browser`` (headless Chromium over the DevTools Protocol), ``engine``
(the container engine for compose), ``toy_study`` (a study with fake trials), ``start_at`` (copies
of a CLI command started at one instant), ``studies`` (study files written from keyword parts),
``workers`` (worker processes of the pool tests), ``ledger`` (the held-trial ledger on an
in-memory storage).
"""

from __future__ import annotations

import csv
import gzip
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data" / "imdb_50k.csv.gz"
REQUIRE_SERVICES_ENV = "LSTM_TUNE_REQUIRE_SERVICES"
# A search space whose trials take seconds: for tests of workers, pools and compose services,
# where what is checked is the plumbing, not what the model learns.
TINY_SPACE = {
    "hidden_size": {"low": 4, "high": 8},
    "num_layers": {"low": 1, "high": 1},
    "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
    "dropout_rate": {"low": 0.0, "high": 0.2},
    "sequence_length": {"low": 40, "high": 60, "step": 20},
    "batch_size": {"choices": [16]},
}
# A tiny text model with a large learning rate: on a few hundred reviews its validation loss
# bottoms out within a few epochs and then rises as it overfits (tests of early stopping).
OVERFITTING_PARAMS = {
    "hidden_size": 8,
    "num_layers": 1,
    "learning_rate": 0.05,
    "dropout_rate": 0.0,
    "sequence_length": 40,
    "batch_size": 25,
}


def require_or_skip(reason: str) -> None:
    """Skip the test for ``reason``, or fail it when CI demands every service be present."""
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(f"{reason} (and {REQUIRE_SERVICES_ENV}=1 forbids skipping)")
    pytest.skip(reason)


def write_slice(source: Path, out: Path, per_class_and_split: int) -> Path:
    """Write the first ``per_class_and_split`` reviews of each (split, sentiment) to ``out``."""
    counts: dict[tuple[str, str], int] = {}
    with (
        gzip.open(source, "rt", encoding="utf-8", newline="") as src,
        out.open("w", encoding="utf-8", newline="") as dst,
    ):
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=["review", "sentiment", "split"])
        writer.writeheader()
        for row in reader:
            key = (row["split"], row["sentiment"])
            if counts.get(key, 0) < per_class_and_split:
                counts[key] = counts.get(key, 0) + 1
                writer.writerow({k: row[k] for k in ("review", "sentiment", "split")})
            if len(counts) == 4 and min(counts.values()) >= per_class_and_split:
                break
    return out


def etth1_forecaster(directory: Path, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A config document (``params:``) forecasting ETTh1's ``OT`` 6 hours ahead from ``OT``
    and ``HUFL`` for one epoch, on the series' first 900 rows written into ``directory``
    (600 fit, 150 validation, 150 test); and the series' lines, header first, for histories.
    Skips (or fails, see :func:`require_or_skip`) without ``../shared/data/ETTh1.csv``."""
    etth1 = ROOT.parent / "shared" / "data" / "ETTh1.csv"
    if not etth1.exists():
        require_or_skip(f"the ETTh1 series is not at {etth1}")
    lines = etth1.read_text(encoding="utf-8").splitlines(keepends=True)
    data = directory / "etth1.csv"
    data.write_text("".join(lines[: 1 + 900]))
    doc = {
        "name": "ot",
        "task": "forecasting",
        "seed": 1,
        "data": {
            "path": str(data),
            "time_column": "date",
            "target_columns": ["OT"],
            "input_columns": ["OT", "HUFL"],
            "horizon": 6,
            "split_rows": [600, 150, 150],
        },
        "training": {"epochs": 1},
        "params": params,
    }
    return doc, lines
