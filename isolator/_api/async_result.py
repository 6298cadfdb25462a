"""``AsyncResult``: what ``IsolatedPool.apply_async`` and ``map_async`` return."""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .._errors import WorkerLost
from .pool_errors import ResultTimeout, pool_error, timeout_error

__all__ = ["AsyncResult", "ResultTimeout"]


class AsyncResult:
    """What ``apply_async`` and ``map_async`` return, as in ``multiprocessing.pool``."""

    def __init__(self, futures: list[Future[Any]],
                 callback: Callable[[Any], object] | None,
                 error_callback: Callable[[BaseException], object] | None,
                 sizes: list[int] | None = None) -> None:
        """One future (``apply_async``), or a map's chunks with their lengths in ``sizes``:
        their results are put in place as each chunk ends (in C, while the others still
        run) instead of joined at ``get``.

        It keeps no reference to its futures, as ``Pool``'s results keep none to their
        tasks: a future's done-callback points here, so a reference back would be a
        cycle, and what ``get`` returned would live on until the garbage collector found
        it (and as long as the engine still held the future)."""
        self._single = sizes is None
        self._callback = callback
        self._error_callback = error_callback
        self._done = threading.Event()
        self._left = len(futures)
        self._lock = threading.Lock()
        self._value: Any = [None] * sum(sizes) if sizes is not None else None
        self._error: tuple[int, BaseException] | None = None  # the first, in input order
        starts = list(itertools.accumulate(sizes, initial=0)) if sizes is not None else []
        if not futures:
            self._finish()
        for index, future in enumerate(futures):
            start = starts[index] if sizes is not None else None
            future.add_done_callback(functools.partial(self._one_done, index, start))

    def _one_done(self, index: int, start: int | None, future: Future[Any]) -> None:
        error: BaseException | None
        if future.cancelled():
            error = WorkerLost("the task was cancelled before it started: the pool was "
                               "terminated")
        else:
            error = future.exception()
        if error is None:
            value = future.result()
            if start is None:
                self._value = value
            else:
                self._value[start:start + len(value)] = value
        with self._lock:
            if error is not None and (self._error is None or index < self._error[0]):
                self._error = (index, pool_error(error))
            self._left -= 1
            last = self._left == 0
        if last:
            self._finish()

    def _finish(self) -> None:
        try:
            if self._error is None and self._callback is not None:
                self._callback(self._value)
            elif self._error is not None and self._error_callback is not None:
                self._error_callback(self._error[1])
        finally:
            if self._error is not None:
                self._value = None  # what the chunks that succeeded returned is not wanted
            self._done.set()

    def ready(self) -> bool:
        return self._done.is_set()

    def successful(self) -> bool:
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._error is None

    def wait(self, timeout: float | None = None) -> None:
        self._done.wait(timeout)

    def get(self, timeout: float | None = None) -> Any:
        """The result, or the first failure in input order; ``ResultTimeout`` (a
        ``multiprocessing.TimeoutError``) if not ready in time."""
        if not self._done.wait(timeout):
            raise timeout_error()
        if self._error is not None:
            raise self._error[1]
        return self._value
