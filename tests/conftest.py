"""Shared fixtures: the real IMDB corpus from ../shared/data and slices of it."""

from __future__ import annotations

import csv
import gzip
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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


def require_or_skip(reason: str) -> None:
    """Skip the test for ``reason``, or fail it when CI demands every service be present."""
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(f"{reason} (and {REQUIRE_SERVICES_ENV}=1 forbids skipping)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full IMDB corpus (50,000 labelled reviews) shared with the project."""
    if not SHARED_DATA.exists():
        require_or_skip(f"the IMDB corpus is not at {SHARED_DATA}")
    return SHARED_DATA


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


@pytest.fixture(scope="session")
def imdb_slice(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """800 real reviews (200 per split and class) as a plain CSV."""
    return write_slice(shared_data, tmp_path_factory.mktemp("data") / "imdb_slice.csv", 200)


# --- PostgreSQL (storage, pool and compose tests); helpers live in tests/_pg.py -------------

from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh database on the shared PostgreSQL server, dropped after the test."""
    import _pg

    problem = _pg.shared_server_problem()
    if problem:
        require_or_skip(problem)
    url, drop = _pg.create_database()
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def private_pg() -> Iterator[Any]:
    """A started private PostgreSQL cluster (``_pg.PrivateCluster``) the test may restart."""
    import _pg

    bin_dir = _pg.find_pg_bin()
    if bin_dir is None:
        require_or_skip("no PostgreSQL server binaries (initdb, pg_ctl) found")
        return
    cluster = _pg.PrivateCluster(bin_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
