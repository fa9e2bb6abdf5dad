"""Signals do not interrupt a storage call halfway: a stop asked for inside one is deferred.

A signal handler (which runs in the main thread) calls :func:`raise_when_safe`; while the
main thread is inside a storage call (:func:`storage_call`) the exception waits until the
outermost call has returned, so a commit is never cut in the middle and no trial is left
half-written. Waits between retries (:func:`pause`) raise it promptly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["in_storage_call", "pause", "raise_when_safe", "storage_call"]

# How late a stop requested during a pause may be noticed.
_PAUSE_STEP = 0.2

_call_state = threading.local()
_pending_interrupt: BaseException | None = None


def in_storage_call() -> bool:
    """True while the calling thread is inside a storage call (a transaction may be open)."""
    return getattr(_call_state, "depth", 0) > 0


def raise_when_safe(exc: BaseException) -> None:
    """Raise ``exc`` now, or, inside a storage call, as soon as that call has returned.

    Meant for signal handlers (which run in the main thread): raising in the middle of a
    commit could leave a trial half-written, raising between calls cannot.
    """
    global _pending_interrupt
    if in_storage_call():
        _pending_interrupt = exc
        return
    raise exc


@contextmanager
def storage_call() -> Iterator[None]:
    """Mark the calling thread as inside a storage call while the block runs; when the
    outermost such block ends, raise the stop deferred meanwhile, if any."""
    _call_state.depth = getattr(_call_state, "depth", 0) + 1
    try:
        yield
    finally:
        _call_state.depth -= 1
        if _call_state.depth == 0:
            _raise_pending()


def pause(seconds: float) -> None:
    """Sleep in short steps, so a stop requested meanwhile is raised promptly."""
    deadline = time.monotonic() + seconds
    while True:
        _raise_pending()
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, _PAUSE_STEP))


def _raise_pending() -> None:
    global _pending_interrupt
    if _pending_interrupt is not None and threading.current_thread() is threading.main_thread():
        exc, _pending_interrupt = _pending_interrupt, None
        raise exc
