"""``IsolatedPool``: the ``multiprocessing.Pool`` API, every unit of work in a fresh,
capped child. A worker death fails only its own task: no hang, no broken pool."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from multiprocessing.context import BaseContext
from types import TracebackType
from typing import Any, Unpack

from .._child.calls import run_chunk, run_items
from .._errors import PoolClosed, WorkerLost
from .._model.options import PoolOptions, docstring, show_options
from .._model.statistics import Statistics
from .._model.values import Limits, Reporting
from .async_result import AsyncResult
from .decorator import function_name
from .executor import Work, make_pool, start_context, worker_count
from .pool_errors import pool_error, timeout_error


class IsolatedPool:
    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        maxtasksperchild: int | None = 1,
        context: BaseContext | None = None,
        *,
        limits: Limits | None = None,
        reporting: Reporting | None = None,
        **options: Unpack[PoolOptions],
    ) -> None:
        start_context(context, "context")
        self._processes = worker_count(processes, "processes")
        pool = make_pool("IsolatedPool", self._processes, maxtasksperchild,
                         "maxtasksperchild", limits, reporting, dict(options))
        self._work = Work(pool, initializer, initargs)
        self._closed = False

    def apply(self, func: Callable[..., Any], args: tuple[Any, ...] = (),
              kwds: dict[str, Any] | None = None) -> Any:
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func: Callable[..., Any], args: tuple[Any, ...] = (),
                    kwds: dict[str, Any] | None = None,
                    callback: Callable[[Any], object] | None = None,
                    error_callback: Callable[[BaseException], object] | None = None,
                    ) -> AsyncResult:
        self._check_running()
        future = self._work.submit(func, tuple(args), dict(kwds or {}), function_name(func))
        return AsyncResult([future], callback, error_callback)

    def map(self, func: Callable[..., Any], iterable: Iterable[Any],
            chunksize: int | None = None) -> list[Any]:
        result: list[Any] = self.map_async(func, iterable, chunksize).get()
        return result  # a list of its own already: no copy

    def map_async(self, func: Callable[..., Any], iterable: Iterable[Any],
                  chunksize: int | None = None,
                  callback: Callable[[Any], object] | None = None,
                  error_callback: Callable[[BaseException], object] | None = None,
                  ) -> AsyncResult:
        return self._map_async(func, list(iterable), chunksize, callback, error_callback,
                               runner=run_items)

    def starmap(self, func: Callable[..., Any], iterable: Iterable[Iterable[Any]],
                chunksize: int | None = None) -> list[Any]:
        result: list[Any] = self.starmap_async(func, iterable, chunksize).get()
        return result

    def starmap_async(self, func: Callable[..., Any], iterable: Iterable[Iterable[Any]],
                      chunksize: int | None = None,
                      callback: Callable[[Any], object] | None = None,
                      error_callback: Callable[[BaseException], object] | None = None,
                      ) -> AsyncResult:
        return self._map_async(func, [tuple(x) for x in iterable], chunksize, callback,
                               error_callback)

    def _map_async(self, func: Callable[..., Any], argtuples: list[Any],
                   chunksize: int | None, callback: Callable[[Any], object] | None,
                   error_callback: Callable[[BaseException], object] | None,
                   runner: Callable[..., list[Any]] = run_chunk) -> AsyncResult:
        self._check_running()
        if chunksize is None:  # as Pool.map: about four chunks per process
            chunksize, extra = divmod(len(argtuples), self._processes * 4)
            chunksize += 1 if extra else 0
        name = function_name(func)
        size = max(chunksize, 1)
        pieces = [argtuples[i:i + size] for i in range(0, len(argtuples), size)]
        futures = [self._work.submit(runner, (func, piece), {}, name) for piece in pieces]
        return AsyncResult(futures, callback, error_callback, [len(piece) for piece in pieces])

    def imap(self, func: Callable[..., Any], iterable: Iterable[Any],
             chunksize: int = 1) -> Iterator[Any]:
        """Lazy, in order: reads ``iterable`` only as children free up."""
        return self._imap(func, iterable, chunksize, ordered=True)

    def imap_unordered(self, func: Callable[..., Any], iterable: Iterable[Any],
                       chunksize: int = 1) -> Iterator[Any]:
        """Lazy, in completion order."""
        return self._imap(func, iterable, chunksize, ordered=False)

    def _imap(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int,
              ordered: bool) -> Iterator[Any]:
        self._check_running()
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize:n}")
        return _Window(self._work, func, _read(iterable, chunksize), 2 * self._processes,
                       ordered)

    def close(self) -> None:
        """No more work; what was submitted runs to its end."""
        self._closed = True
        self._work.pool.close()

    def terminate(self) -> None:
        """Cancel what has not started and kill every running child now."""
        self._closed = True
        self._work.terminate()

    def join(self) -> None:
        """Wait for the work submitted to end, after ``close()`` or ``terminate()``."""
        if not self._closed:
            raise ValueError("Pool is still running")
        self._work.pool.join()

    def statistics(self) -> Statistics:
        """Counters so far: submitted, running, completed, failed by kind, peak RSS."""
        return self._work.pool.statistics()

    def _check_running(self) -> None:
        if self._closed:
            raise PoolClosed("Pool not running")  # a ValueError, like Pool's

    def __enter__(self) -> IsolatedPool:
        self._check_running()  # as Pool: a terminated pool is not entered again
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.terminate()  # as multiprocessing.Pool does


class _InputFailed:
    """The input iterator of a lazy map raised: its error takes the next place."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _read(items: Iterable[Any], size: int) -> Iterator[list[Any] | _InputFailed]:
    """Chunks of ``items``; if reading them raises, the items read so far, then the
    error, then the end (as ``Pool``'s task feeder puts the error in the next place)."""
    chunk: list[Any] = []
    try:
        for item in items:
            chunk.append(item)
            if len(chunk) == size:
                yield chunk
                chunk = []
    except Exception as error:  # noqa: BLE001 - the user's iterator's own error, in its place
        if chunk:
            yield chunk
        yield _InputFailed(error)
        return
    if chunk:
        yield chunk


class _Window:
    """The results of a lazy map, at most ``size`` units submitted ahead of the consumer.

    Like ``Pool.imap``'s iterator, an item whose unit failed raises its error from
    ``next()`` and the iterator goes on with the next unit; with chunks, the whole chunk's
    items are that one error. An error of the input iterator itself is raised in its
    place, after the items read before it, and ends the iteration. Dropped before the
    end, it cancels what has not started.
    """

    def __init__(self, submitter: Work, func: Callable[..., Any],
                 work: Iterator[list[Any] | _InputFailed], size: int, ordered: bool) -> None:
        self._submitter, self._func, self._work = submitter, func, work
        self._size, self._ordered = size, ordered
        self._name = function_name(func)
        self._pending: deque[Future[Any]] = deque()
        self._ready: deque[Any] = deque()  # a finished chunk's items not handed out yet

    def __iter__(self) -> _Window:
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout: float | None = None) -> Any:
        """The next item, as ``Pool.imap``'s ``next(timeout)``: ``ResultTimeout`` (a
        ``multiprocessing.TimeoutError``) when none comes within ``timeout`` seconds."""
        while not self._ready:
            for piece in itertools.islice(self._work, self._size - len(self._pending)):
                if isinstance(piece, _InputFailed):
                    failed: Future[Any] = Future()
                    failed.set_exception(piece.error)
                    self._pending.append(failed)
                else:
                    self._pending.append(self._submitter.submit(run_items, (self._func, piece),
                                                                {}, self._name))
            if not self._pending:
                raise StopIteration
            future = self._take(timeout)
            if future.cancelled():
                raise WorkerLost("the task was cancelled before it started: the pool was "
                                 "terminated")
            error = future.exception()
            if error is not None:
                raise pool_error(error)
            # Handed out one by one, popped as they go: an item the caller has dropped
            # is not kept alive here.
            self._ready.extend(future.result())
            del future
        return self._ready.popleft()

    def _take(self, timeout: float | None) -> Future[Any]:
        candidates = [self._pending[0]] if self._ordered else list(self._pending)
        done, _ = wait(candidates, timeout, return_when=FIRST_COMPLETED)
        if not done:
            raise timeout_error()
        future = next(iter(done))
        self._pending.remove(future)
        return future

    def __del__(self) -> None:
        for future in self._pending:
            future.cancel()


IsolatedPool.__doc__ = """Like ``multiprocessing.Pool``, but every task or chunk runs in a fresh,
capped child.

``processes`` children run at once (default: one per CPU). By default each unit gets a
process of its own (``maxtasksperchild=1``); ``maxtasksperchild=N`` reuses a worker for
N units and ``None`` for as long as the pool lives, as in the stdlib. ``context`` is
accepted and ignored. ``initializer(*initargs)`` runs once in each worker process,
before its first unit. The options are ``isolated``'s and the pool's below (retries,
memory escalation and the memory budget work as in :class:`IsolatedExecutor`), as
keywords or grouped in ``limits=`` and ``reporting=``.

""" + docstring(PoolOptions)
show_options(IsolatedPool.__init__, PoolOptions)
