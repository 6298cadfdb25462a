"""``IsolatedExecutor``: a ``concurrent.futures.Executor`` whose every task runs in a
fresh child process under a memory cap."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from multiprocessing.context import BaseContext
from types import TracebackType
from typing import Any, Protocol, TypeVar, Unpack

from .._child.calls import run_chunk, with_initializer
from .._errors import ConfigurationError, PoolClosed
from .._model.options import PoolOptions, docstring, show_options
from .._model.settings import settle
from .._model.statistics import Statistics
from .._model.values import Limits, Reporting
from .._wire import pickling
from .arguments import reuse_policy, start_context, worker_count
from .decorator import function_name
from .handle import PoolHandle
from .mpobjects import OBJECTS

T = TypeVar("T")
__all__ = ["IsolatedExecutor", "Work", "make_pool", "start_context", "worker_count"]


_interpreter_exiting = False


def _mark_exit() -> None:
    global _interpreter_exiting
    _interpreter_exiting = True


# As concurrent.futures.process does: once the interpreter has begun to exit (threading's
# own exit hooks run before any atexit handler), an executor takes no new work.
getattr(threading, "_register_atexit")(_mark_exit)  # noqa: B009 - private, as the stdlib's


def make_pool(where: str, workers: int, max_tasks: int | None, option_name: str,
              limits: Limits | None, reporting: Reporting | None,
              options: dict[str, Any]) -> PoolHandle:
    """The handle of a pool made with these (checked) arguments."""
    from .._engine.scheduler import Settings
    from .._model.admission import default_budget

    call, rest = settle(where, options, limits, reporting, PoolOptions)
    budget = rest["memory_budget"]
    settings = Settings(workers, call.limits, call.reporting, call.retry,
                        default_budget() if budget is None else budget,
                        reuse_policy(max_tasks, rest["recycle"], option_name),
                        rest["progress"], learn=call.learn)
    return PoolHandle(settings, call.preload)


class Work:
    """A pool's submissions, with its initializer run once in each worker process."""

    def __init__(self, pool: PoolHandle, initializer: Callable[..., Any] | None,
                 initargs: tuple[Any, ...]) -> None:
        if initializer is not None and not callable(initializer):
            raise ConfigurationError(f"initializer={initializer!r} is not callable")
        if initializer is not None:
            # Sent with every unit: what cannot go to a child (a Queue made in the fork
            # context) is said now, not by every task failing.
            pickling.dumps(tuple(initargs), what="initializer's arguments",
                           extension=OBJECTS)
        self.pool = pool
        self._initializer, self._initargs = initializer, tuple(initargs)
        self._token = f"{os.getpid()}:{id(self)}:{time.monotonic_ns()}"  # names this pool

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
               name: str, warm: tuple[str, ...] = ()) -> Future[Any]:
        if self._initializer is not None:
            fn, args = with_initializer, (self._token, self._initializer, self._initargs, fn,
                                          *args)
        return self.pool.submit(fn, args, kwargs, name, warm)

    def terminate(self) -> None:
        """Cancel pending work, kill every running child, and wait until they are gone."""
        self.pool.close()
        self.pool.cancel_pending()
        self.pool.kill_running()
        self.pool.join()


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class IsolatedExecutor(Executor):
    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: BaseContext | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        max_tasks_per_child: int | None = 1,
        limits: Limits | None = None,
        reporting: Reporting | None = None,
        **options: Unpack[PoolOptions],
    ) -> None:
        start_context(mp_context, "mp_context")
        workers = worker_count(max_workers, "max_workers")
        pool = make_pool("IsolatedExecutor", workers, max_tasks_per_child,
                         "max_tasks_per_child", limits, reporting, dict(options))
        self._work = Work(pool, initializer, initargs)
        self._pool = pool

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` in a fresh child; PoolClosed after shutdown."""
        return self._submit(fn, args, kwargs, function_name(fn))

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                name: str, warm: tuple[str, ...] = ()) -> Future[Any]:
        if _interpreter_exiting:
            raise PoolClosed("cannot schedule new futures after interpreter shutdown")
        return self._work.submit(fn, args, kwargs, name, warm)

    def map(self, fn: Callable[..., T], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1) -> Iterator[T]:
        """Results in input order. With ``chunksize`` > 1 each chunk is one child."""
        return map_in_units(self._submit, fn, iterables, timeout, chunksize)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work; optionally cancel what has not started; wait if asked."""
        self._pool.close()
        if cancel_futures:
            self._pool.cancel_pending()
        if wait:
            self._pool.join()

    def terminate(self) -> None:
        """Cancel pending work, kill every running child, and wait until they are gone."""
        self._work.terminate()

    def statistics(self) -> Statistics:
        """Counters so far: submitted, running, completed, failed by kind, peak RSS."""
        return self._pool.statistics()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        leave(self, exc_type)


IsolatedExecutor.__doc__ = """Like ``ProcessPoolExecutor``, but every task runs in a fresh, capped
child.

A task that exceeds ``max_mem``, crashes, is killed or times out fails alone with
isolator's typed exception; every other task runs and the executor stays usable.
``max_workers`` children run at once (default: one per CPU); ``mp_context`` is accepted
and ignored (every child is forked from isolator's zygote). By default every task gets
a fresh process (``max_tasks_per_child=1``). Workers are reused when
``max_tasks_per_child`` is above one (replaced after that many units), None (never
replaced, as in the stdlib) or a ``recycle`` policy is given: a worker runs
``gc.collect()`` and ``malloc_trim(0)`` between tasks and is replaced when its policy
says so, or after a memory breach, with its replacement started at once.
``initializer(*initargs)`` runs once in each worker process, before its first task (in
every child when each task has its own). Tasks whose caps add up to more than
``memory_budget`` never run at once. The options are ``isolated``'s and the pool's
below, as keywords or grouped in ``limits=`` and ``reporting=``. See docs/pools.md for
every deliberate difference from ``ProcessPoolExecutor``.

""" + docstring(PoolOptions)
show_options(IsolatedExecutor.__init__, PoolOptions)


def map_in_units(submit: Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any], str],
                                  Future[Any]],
                 fn: Callable[..., Any], iterables: tuple[Iterable[Any], ...],
                 timeout: float | None, chunksize: int) -> Iterator[Any]:
    """``Executor.map`` over ``submit(fn, args, kwargs, name)``: every unit submitted now,
    an item or a chunk of ``chunksize`` items each, and their results in input order."""
    if chunksize < 1:
        raise ValueError("chunksize must be >= 1.")
    end = None if timeout is None else time.monotonic() + timeout
    name = function_name(fn)
    if chunksize == 1:
        futures = [submit(fn, args, {}, name) for args in zip(*iterables, strict=False)]
    else:
        futures = [submit(run_chunk, (fn, chunk), {}, name)
                   for chunk in chunks(zip(*iterables, strict=False), chunksize)]
    return _results_in_order(futures, end, flatten=chunksize > 1)


def _results_in_order(futures: list[Future[Any]], end: float | None,
                      flatten: bool) -> Iterator[Any]:
    # As concurrent.futures does: neither a future nor a result is kept in this frame
    # while it waits at a yield, so what the caller has dropped is freed.
    try:
        futures.reverse()
        while futures:
            remaining = None if end is None else end - time.monotonic()
            if flatten:
                chunk = _result_or_cancel(futures.pop(), remaining)
                chunk.reverse()
                while chunk:
                    yield chunk.pop()
            else:
                yield _result_or_cancel(futures.pop(), remaining)
    finally:
        for future in futures:
            future.cancel()


def _result_or_cancel(future: Future[Any], timeout: float | None) -> Any:
    try:
        try:
            return future.result(timeout)
        finally:
            future.cancel()  # a timed-out one is not waited for any longer
    finally:
        del future  # no cycle through the exception's traceback


class _Terminable(Protocol):
    def terminate(self) -> None: ...
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...


def leave(executor: _Terminable, exc_type: type[BaseException] | None) -> None:
    """How a ``with`` block of an executor ends: Ctrl-C inside it terminates (nobody
    wants the rest of the batch to run on); anything else shuts down and waits."""
    if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
        executor.terminate()
    else:
        executor.shutdown(wait=True)
