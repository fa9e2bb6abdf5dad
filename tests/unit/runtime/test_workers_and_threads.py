"""The machine layout: workers x TensorFlow threads, ``--workers auto``, ``LSTM_TUNE_THREADS``."""

from __future__ import annotations

from pathlib import Path

import pytest

from lstm_tune.errors import ConfigError
from lstm_tune.runtime.workers_and_threads import (
    Threads,
    auto_layout,
    parse_threads,
    threads_for,
    usable_cores,
)

GIB = 2**30


@pytest.mark.parametrize(
    ("text", "threads"),
    [("1", Threads(1, 0)), ("2,1", Threads(2, 1)), (" 4 , 2 ", Threads(4, 2)), ("0", Threads())],
)
def test_threads_are_intra_op_then_inter_op(text: str, threads: Threads) -> None:
    assert parse_threads(text) == threads
    assert parse_threads(threads.as_env()) == threads


@pytest.mark.parametrize("text", ["", "x", "-1", "1.5", "1,2,3", "2000", "1,"])
def test_bad_thread_counts_name_the_variable_and_what_is_allowed(text: str) -> None:
    with pytest.raises(ConfigError, match=r"LSTM_TUNE_THREADS: got .*; expected N or N,M"):
        parse_threads(text)


def test_threads_say_default_for_zero() -> None:
    assert str(Threads(1, 0)) == "intra-op 1, inter-op default"


def test_the_cores_are_split_among_workers_and_a_lone_worker_keeps_the_default() -> None:
    assert threads_for(1, 8) == Threads()
    assert threads_for(2, 2) == Threads(1)
    assert threads_for(3, 8) == Threads(2)
    assert threads_for(4, 2) == Threads(1)  # more workers than cores: one thread each


def test_auto_puts_one_single_threaded_worker_on_each_core() -> None:
    layout = auto_layout(cores=2, worker_bytes=GIB, available_bytes=20 * GIB, max_share=0.8,
                         trials=40)  # fmt: skip
    assert (layout.workers, layout.threads) == (2, Threads(1))
    assert "2 usable cores" in layout.reason


def test_auto_takes_fewer_workers_when_memory_is_short_and_gives_them_the_cores() -> None:
    # 0.8 * 10 GiB holds 2 workers of 3.5 GiB: 8 cores split over 2 workers.
    layout = auto_layout(cores=8, worker_bytes=3.5 * GIB, available_bytes=10 * GIB,
                         max_share=0.8, trials=40)  # fmt: skip
    assert (layout.workers, layout.threads) == (2, Threads(4))
    assert "memory for 2 workers" in layout.reason


def test_auto_never_starts_more_workers_than_trials_nor_fewer_than_one() -> None:
    few = auto_layout(cores=16, worker_bytes=GIB, available_bytes=None, max_share=0.8, trials=1)
    assert (few.workers, few.threads) == (1, Threads())
    huge = auto_layout(cores=4, worker_bytes=100 * GIB, available_bytes=8 * GIB,
                       max_share=0.8, trials=10)  # fmt: skip
    assert huge.workers == 1


def test_usable_cores_follow_a_cgroup_quota(tmp_path: Path) -> None:
    unlimited, quota = tmp_path / "unlimited", tmp_path / "quota"
    unlimited.write_text("max 100000\n")
    quota.write_text("150000 100000\n")  # docker run --cpus 1.5
    assert usable_cores(unlimited) == usable_cores(tmp_path / "missing") >= 1
    assert usable_cores(quota) == 1
