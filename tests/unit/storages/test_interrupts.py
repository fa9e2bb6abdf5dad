"""lstm_tune.storages.interrupts: a stop asked for inside a storage call waits until the
outermost call has returned; outside one, or in a pause between retries, it is raised at once."""

from __future__ import annotations

import threading
import time

import pytest

from lstm_tune.storages import in_storage_call, raise_when_safe
from lstm_tune.storages.interrupts import pause, storage_call


class _Stop(Exception):
    pass


def test_outside_a_storage_call_the_stop_is_raised_at_once() -> None:
    assert not in_storage_call()
    with pytest.raises(_Stop):
        raise_when_safe(_Stop())


def test_inside_nested_storage_calls_the_stop_waits_for_the_outermost_to_return() -> None:
    reached = []
    with pytest.raises(_Stop):
        with storage_call():
            with storage_call():
                assert in_storage_call()
                raise_when_safe(_Stop())
                reached.append("after the stop, inside")
            reached.append("after the inner call")
        reached.append("never: the outer call's end raised the stop")
    assert reached == ["after the stop, inside", "after the inner call"]
    assert not in_storage_call()


def test_a_pause_between_retries_raises_a_deferred_stop_promptly() -> None:
    started = time.monotonic()
    with pytest.raises(_Stop):
        with storage_call():
            raise_when_safe(_Stop())
            pause(30)
    assert time.monotonic() - started < 1


def test_a_deferred_stop_is_raised_in_the_main_thread_only() -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with storage_call():
                pass
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    with pytest.raises(_Stop):
        with storage_call():
            raise_when_safe(_Stop())
            thread = threading.Thread(target=worker)
            thread.start()
            thread.join()
    assert errors == []  # the heartbeat thread's own calls never receive the main thread's stop
