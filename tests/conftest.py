"""Shared fixtures: the real IMDB corpus from ../shared/data and slices of it, study files,
PostgreSQL databases and private clusters. Plain helpers live in :mod:`tests.helpers`."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SHARED_DATA, require_or_skip, write_slice
from tests.helpers import engine as _engine
from tests.helpers import pg as _pg
from tests.helpers.studies import StudyFile, write_study


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how long the container test spent building the project's image: README's
    10-minute budget for the suite excludes that build (a cache hit once the image exists, as
    after .ci/run's own build)."""
    reports = [r for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])]
    for report in reports:
        for name, seconds in getattr(report, "user_properties", ()):
            if name == _engine.BUILD_SECONDS:
                terminalreporter.write_line(
                    f"container image build: {seconds} s of {report.duration:.0f} s in "
                    f"{report.nodeid.split('::')[0]} (the suite's 10-minute budget excludes it)"
                )


@pytest.fixture(autouse=True)
def own_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ledger of held trials (lstm_tune.storages.ledger, process-wide) of each test's own:
    a trial another test left held, in a storage since gone (a stopped proxy), would else be
    released at this test's stop, against that storage."""
    from lstm_tune.storages import ledger

    for table in ("_held", "_last_beat", "_taken", "_longest_gap"):
        monkeypatch.setattr(ledger, table, {})


@pytest.fixture(autouse=True)
def training_is_marked_slow(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that trains a model in this process without the ``slow`` marker, so
    ``-m "not slow"`` stays the fast suite. (Training in a child process is not seen here.)"""
    if request.node.get_closest_marker("slow"):
        yield
        return
    import keras

    fits: list[str] = []
    original = keras.Model.fit

    def counting_fit(self: keras.Model, *args: Any, **kwargs: Any) -> Any:
        fits.append(self.name)
        return original(self, *args, **kwargs)

    keras.Model.fit = counting_fit  # type: ignore[method-assign]
    try:
        yield
    finally:
        keras.Model.fit = original  # type: ignore[method-assign]
    if fits:
        pytest.fail(f"trains a model ({fits[0]}) but is not marked slow", pytrace=False)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full IMDB corpus (50,000 labelled reviews) shared with the project."""
    if not SHARED_DATA.exists():
        require_or_skip(f"the IMDB corpus is not at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def imdb_slice(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """800 real reviews (200 per split and class) as a plain CSV."""
    return write_slice(shared_data, tmp_path_factory.mktemp("data") / "imdb_slice.csv", 200)


@pytest.fixture
def study_file(tmp_path: Path) -> StudyFile:
    """Write a study YAML into ``tmp_path`` from keyword parts over a tiny two-trial study:
    ``study_file(name="s", data={"path": ...}, training={"epochs": 2})``; a part given as
    None is left out. See :func:`tests.helpers.studies.write_study`."""
    return functools.partial(write_study, tmp_path)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh database on the shared PostgreSQL server, dropped after the test."""
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
    """A started private PostgreSQL cluster (``tests.helpers.pg.PrivateCluster``) the test may
    restart."""
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
