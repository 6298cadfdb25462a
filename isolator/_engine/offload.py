"""Off the loop: threads for what must never block the engine, and futures whose
callbacks run there.

Building and writing a breach report (three fsyncs), reading a memray capture and the
user's hooks take from milliseconds to as long as the user's code likes; meanwhile the
engine must go on reading every other child's outcome and firing timeouts. So the engine
hands them to an ``Offload`` thread and goes on: one for reports, one for user callbacks
(a callback that waits for a breached task must not wait behind that task's report).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

_log = logging.getLogger("isolator")
T = TypeVar("T")

_engine_thread = threading.local()  # .callbacks: set on an engine's thread only


def mark_engine_thread(callbacks: Offload) -> None:
    """Called once by an engine's thread: callbacks of futures it completes go to
    ``callbacks``."""
    _engine_thread.callbacks = callbacks


def engine_callbacks() -> Offload | None:
    """The callbacks thread of the engine whose thread this is; None elsewhere."""
    return getattr(_engine_thread, "callbacks", None)


class Offload:
    """One daemon thread running posted calls in order; a call that raises is logged."""

    def __init__(self, name: str) -> None:
        self._queue: deque[tuple[Callable[..., Any], tuple[Any, ...]] | None] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the thread, after everything posted before it (any thread)."""
        with self._ready:
            self._queue.append((fn, args))
            self._ready.notify()

    def stop(self, timeout: float | None = None) -> None:
        """Run what was posted, then end the thread; wait up to ``timeout`` for it."""
        with self._ready:
            self._queue.append(None)
            self._ready.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                item = self._queue.popleft()
            if item is None:
                return
            fn, args = item
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001 - one failed call must not end the thread
                _log.exception("isolator: %r raised on the %s thread", fn,
                               self._thread.name)
            # Not held while waiting for the next: the last call's future (and its result)
            # would live on here after the caller dropped it.
            del item, fn, args


class IsolatorFuture(Future[T]):
    """A ``concurrent.futures.Future`` whose done-callbacks never run on the engine's
    thread: a callback that would (the future completed there) is handed to the
    callbacks thread instead; one added after completion runs at once in the adding
    thread, as ``Future`` does. ``job`` is the engine's record of the work behind it
    (for cancelling it), ``peak`` the child's highest memory use once it is done."""

    job: Any = None
    peak: int = 0

    def add_done_callback(self, fn: Callable[[Future[T]], object]) -> None:
        def hand_off(future: Future[T]) -> None:
            callbacks = engine_callbacks()
            if callbacks is not None:
                callbacks.post(_invoke, fn, future)
            else:
                fn(future)

        super().add_done_callback(hand_off)


def _invoke(fn: Callable[[Future[Any]], object], future: Future[Any]) -> None:
    try:
        fn(future)
    except Exception:
        logging.getLogger("concurrent.futures").exception(
            "exception calling callback for %r", future)
