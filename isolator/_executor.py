"""``IsolatedExecutor``: a ``concurrent.futures.Executor`` whose every task runs in a
fresh child process under a memory cap."""

from __future__ import annotations

import atexit
import itertools
import os
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from multiprocessing.context import BaseContext
from types import TracebackType
from typing import Any, TypeVar

from ._admission import default_budget
from ._calls import run_chunk, with_initializer
from ._decorator import function_name
from ._dispatch import Dispatcher
from ._errors import ConfigurationError
from ._options import DEFAULT_REPORT_DIR, CgroupMode, ForensicsLevel, make_limits
from ._recycle import recycle_after_tasks, recycle_base
from ._retry import escalate_memory, make_retry_policy
from ._statistics import Statistics
from ._units import parse_size

T = TypeVar("T")

_live: weakref.WeakSet[Dispatcher] = weakref.WeakSet()  # every pool's engine in this process


def start_context(value: object, name: str) -> None:
    """Accept a stdlib pool's start-method context and ignore it: every child is forked
    from isolator's zygote, a fresh interpreter, whatever it says (docs/pools.md)."""
    if value is not None and not isinstance(value, BaseContext):
        raise ConfigurationError(f"{name}={value!r} is not a multiprocessing context")


def worker_count(value: int | None, name: str) -> int:
    """Validate a pool size; None means one per CPU, as the stdlib pools do."""
    if value is None:
        return os.cpu_count() or 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name}={value!r} must be a positive int or None")
    return value


def reuse_policy(max_tasks: int | None, recycle: recycle_base | None,
                 name: str) -> recycle_base | None:
    """None for a fresh child per unit (the default); else when to replace a worker."""
    if max_tasks is not None:
        worker_count(max_tasks, name)
    if recycle is not None and not isinstance(recycle, recycle_base):
        raise ConfigurationError(f"recycle={recycle!r}; expected a policy such as "
                                 "recycle_after_tasks(100) | recycle_on_growth('200MB')")
    after = recycle_after_tasks(max_tasks) if max_tasks is not None and max_tasks > 1 else None
    if after is not None and recycle is not None:
        return after | recycle
    return after or recycle


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class IsolatedExecutor(Executor):
    """Like ``ProcessPoolExecutor``, but every task runs in a fresh, capped child.

    A task that exceeds ``max_mem``, crashes, is killed or times out fails alone with
    isolator's typed exception; every other task runs and the executor stays usable. By
    default every task gets a fresh process. Workers are reused, opt-in, when
    ``max_tasks_per_child`` is above one or a ``recycle`` policy is given: a worker runs
    ``gc.collect()`` and ``malloc_trim(0)`` between tasks and is replaced when the policy
    says so, or after a memory breach, with its replacement started at once.
    ``initializer(*initargs)`` runs once in each worker process, before its first task
    (in every child when each task has its own).
    ``progress`` is called with each future as it completes (an exception from it is
    logged, and ``shutdown(wait=True)`` waits for the last call). ``retry``/``stop``/``wait``
    are tenacity strategies and ``escalate`` an ``escalate_memory``: a failed unit is
    retried in a fresh child, with a larger cap after a breach. Tasks whose caps add up
    to more than ``memory_budget`` (default: four fifths of the memory available when
    the pool is made) never run at once. See docs/pools.md for every deliberate
    difference from ``ProcessPoolExecutor``.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        max_mem: int | str | None = None,
        timeout: float | None = None,
        max_tasks_per_child: int | None = 1,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        soft_mem: int | str | None = None,
        rlimit_data: bool = False,
        cgroup: CgroupMode = False,
        kill_grace: float = 0.5,
        preload: tuple[str, ...] | list[str] = (),
        progress: Callable[[Future[Any]], None] | None = None,
        retry: Any = None,
        stop: Any = None,
        wait: Any = None,
        escalate: escalate_memory | None = None,
        memory_budget: int | str | None = None,
        report_dir: str | os.PathLike[str] | None = DEFAULT_REPORT_DIR,
        on_report: Callable[[Any], object] | None = None,
        forensics: ForensicsLevel = "default",
        recycle: recycle_base | None = None,
        mp_context: BaseContext | None = None,
    ) -> None:
        start_context(mp_context, "mp_context")
        workers = worker_count(max_workers, "max_workers")
        policy_of_reuse = reuse_policy(max_tasks_per_child, recycle, "max_tasks_per_child")
        if initializer is not None and not callable(initializer):
            raise ConfigurationError(f"initializer={initializer!r} is not callable")
        limits = make_limits(max_mem=max_mem, soft_mem=soft_mem, timeout=timeout,
                             rlimit_data=rlimit_data, cgroup=cgroup, kill_grace=kill_grace,
                             preload=preload, report_dir=report_dir, on_report=on_report,
                             forensics=forensics)
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._token = f"{os.getpid()}:{id(self)}:{time.monotonic_ns()}"  # names this pool
        budget = default_budget() if memory_budget is None else \
            parse_size(memory_budget, name="memory_budget")
        policy = make_retry_policy(retry, stop, wait, escalate)
        self._dispatcher = Dispatcher(workers, limits, progress, policy, budget, policy_of_reuse)
        _live.add(self._dispatcher)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` in a fresh child; PoolClosed after shutdown."""
        return self._submit(fn, args, kwargs, function_name(fn))

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                name: str) -> Future[Any]:
        if self._initializer is not None:
            fn, args = with_initializer, (self._token, self._initializer, self._initargs, fn,
                                          *args)
        return self._dispatcher.submit(fn, args, kwargs, name)

    def map(self, fn: Callable[..., T], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1) -> Iterator[T]:
        """Results in input order. With ``chunksize`` > 1 each chunk is one child."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        end = None if timeout is None else time.monotonic() + timeout
        name = function_name(fn)
        if chunksize == 1:
            futures = [self._submit(fn, args, {}, name) for args in zip(*iterables, strict=False)]
        else:
            futures = [self._submit(run_chunk, (fn, chunk), {}, name)
                       for chunk in chunks(zip(*iterables, strict=False), chunksize)]
        return _results_in_order(futures, end, flatten=chunksize > 1)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work; optionally cancel what has not started; wait if asked."""
        self._dispatcher.close()
        if cancel_futures:
            self._dispatcher.cancel_pending()
        if wait:
            self._dispatcher.join()

    def terminate(self) -> None:
        """Cancel pending work, kill every running child, and wait until they are gone."""
        self._dispatcher.close()
        self._dispatcher.cancel_pending()
        self._dispatcher.kill_running()
        self._dispatcher.join()

    def statistics(self) -> Statistics:
        """Counters so far: submitted, running, completed, failed by kind, peak RSS."""
        return self._dispatcher.statistics()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # Ctrl-C inside the block: nobody wants the rest of the batch to run on.
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.terminate()
        else:
            self.shutdown(wait=True)


def _results_in_order(futures: list[Future[Any]], end: float | None,
                      flatten: bool) -> Iterator[Any]:
    try:
        futures.reverse()
        while futures:
            remaining = None if end is None else end - time.monotonic()
            result = futures[-1].result(remaining)
            futures.pop()
            if flatten:
                yield from result
            else:
                yield result
    finally:
        for future in futures:
            future.cancel()


def _finish_at_exit() -> None:
    # As concurrent.futures does: the program does not exit before the work it handed to
    # a pool has run (unless the pool was terminated). Registered after the supervisor's
    # own exit handler (this module imports that one's), so it runs first, while the
    # supervisor still serves. Not after Ctrl-C: then the supervisor's handler kills
    # every child at once, as terminate() does.
    last = getattr(sys, "last_type", None)  # what ended the program, if an exception did
    if last is not None and issubclass(last, KeyboardInterrupt):
        return
    for dispatcher in list(_live):
        dispatcher.join()


atexit.register(_finish_at_exit)
