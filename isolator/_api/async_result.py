"""``AsyncResult``: what ``IsolatedPool.apply_async`` and ``map_async`` return."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .._errors import WorkerLost


class ResultTimeout(multiprocessing.TimeoutError, TimeoutError):
    """No result in time: ``multiprocessing.TimeoutError``, what code written for ``Pool``
    catches, and the builtin ``TimeoutError`` as well."""


class AsyncResult:
    """What ``apply_async`` and ``map_async`` return, as in ``multiprocessing.pool``."""

    def __init__(self, futures: list[Future[Any]],
                 callback: Callable[[Any], object] | None,
                 error_callback: Callable[[BaseException], object] | None,
                 sizes: list[int] | None = None) -> None:
        """One future (``apply_async``), or a map's chunks with their lengths in ``sizes``:
        their results are put in place as each chunk ends (in C, while the others still
        run) instead of joined at ``get``."""
        self._futures = futures
        self._single = sizes is None
        self._callback = callback
        self._error_callback = error_callback
        self._done = threading.Event()
        self._left = len(futures)
        self._lock = threading.Lock()
        self._items: list[Any] = [None] * sum(sizes) if sizes is not None else []
        self._offsets: dict[Future[Any], int] = {}
        if sizes is not None:
            starts = list(itertools.accumulate(sizes, initial=0))[:-1]
            self._offsets = dict(zip(futures, starts, strict=True))
        if not futures:
            self._finish()
        for future in futures:
            future.add_done_callback(self._one_done)

    def _one_done(self, future: Future[Any]) -> None:
        start = self._offsets.get(future)
        if start is not None and not future.cancelled() and future.exception() is None:
            chunk = future.result()
            self._items[start:start + len(chunk)] = chunk
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._finish()

    def _finish(self) -> None:
        error = self._error()
        try:
            if error is None and self._callback is not None:
                self._callback(self._value())
            elif error is not None and self._error_callback is not None:
                self._error_callback(error)
        finally:
            self._done.set()

    def _error(self) -> BaseException | None:
        for future in self._futures:
            if future.cancelled():
                return WorkerLost("the task was cancelled before it started: the pool was "
                                  "terminated")
            if future.exception() is not None:
                return future.exception()
        return None

    def _value(self) -> Any:
        if self._single:
            return self._futures[0].result()
        return self._items

    def ready(self) -> bool:
        return self._done.is_set()

    def successful(self) -> bool:
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._error() is None

    def wait(self, timeout: float | None = None) -> None:
        self._done.wait(timeout)

    def get(self, timeout: float | None = None) -> Any:
        """The result, or the first failure in input order; ``ResultTimeout`` if not ready."""
        if not self._done.wait(timeout):
            raise ResultTimeout
        error = self._error()
        if error is not None:
            raise error
        return self._value()
