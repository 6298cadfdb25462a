"""The engine behind both pools: FIFO units of work, at most ``workers`` children at once.

Each unit is one supervisor task, that is one fresh child, unless the pool reuses
workers: then each worker is given its next unit while it runs the current one (never
more than that one), so it goes from one to the next without waiting for the supervisor,
and a unit sent to a worker that leaves before starting it runs on another. The
dispatcher is event driven: a unit starts when one is submitted into a free slot or when
a running unit finishes (the supervisor's future callback); nothing polls.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from . import _serialize
from ._admission import clamped, misfit
from ._decorator import warm_modules
from ._errors import (
    ConfigurationError,
    MemoryLimitExceeded,
    NotStarted,
    PoolClosed,
    SerializationError,
)
from ._leakwatch import LeakWatch
from ._options import Limits
from ._recycle import recycle_base
from ._retry import RetryPolicy, record_attempts
from ._reuse import ReusedWorkers
from ._statistics import KIND, Statistics, failure_kind, snapshot
from ._supervisor import Supervisor, get_supervisor
from ._task import AnyFuture, Task, TaskFuture

_log = logging.getLogger("isolator")

@dataclass
class _Unit:
    future: Future[Any]
    payload: bytes
    warm: tuple[str, ...]
    limits: Limits
    name: str
    inner: AnyFuture | None = None
    started: bool = False  # its future is running: it was started once (a retry, or resent)
    retry_state: Any = None
    # Failed attempts: a tuple, so that a unit that never failed holds no list for the
    # garbage collector to track (a caller may hold thousands of pending units).
    earlier: tuple[BaseException, ...] = ()

    @property
    def cap(self) -> int:
        return self.limits.max_mem or 0


class Dispatcher(ReusedWorkers):
    """Queue and run units of work; thread-safe."""

    def __init__(self, workers: int, limits: Limits,
                 on_done: Callable[[Future[Any]], None] | None = None,
                 retry: RetryPolicy | None = None, budget: int | None = None,
                 recycle: recycle_base | None = None) -> None:
        self.workers = workers
        self.limits = limits
        self.retry = retry
        self.budget = budget
        self._misfit = misfit(limits, budget)  # known once: the limits are the pool's
        self.recycle = recycle  # None: a fresh child per unit; else reused workers
        self._idle_workers: deque[Task] = deque()
        self._workers: list[Task] = []  # reused workers that may be sent a next unit
        self._live_workers = 0  # started and not yet exited, busy or idle
        self._task_time: float | None = None  # seconds a reused worker spends per task
        self._ahead_now = 0  # _ahead() for the current _task_time
        self._leaks = LeakWatch()
        self._last_name: dict[int, str] = {}
        self._admitted = 0
        self._delayed = 0  # retries waiting out their tenacity wait
        self._peak_admitted = 0
        self._on_done = on_done
        self._pending: deque[_Unit] = deque()
        self._running: dict[Future[Any], _Unit] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._hooks_due = 0  # outcomes counted whose progress hook has not returned yet
        self._joiners = 0  # threads in join(): an outcome wakes them only when there are
        self._closed = False
        self._terminating = False
        self._counts: Counter[str] = Counter()
        self._peaks: list[int] = []

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...],
               kwargs: dict[str, Any], name: str) -> Future[Any]:
        if self._misfit is not None:  # no task of this pool could ever be admitted
            raise ConfigurationError(self._misfit)
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise PoolClosed("cannot submit to a pool that has been shut down or closed")
            self._counts["submitted"] += 1
        try:
            payload = _serialize.dumps((fn, args, kwargs), what="function and its arguments")
        except SerializationError as exc:
            future.set_exception(exc)
            self._finish_counts(future)
            return future
        unit = _Unit(future, payload, warm_modules(fn, payload, self.limits.preload),
                     self.limits, name)
        if self.retry is not None:
            unit.retry_state = self.retry.new_state()
        with self._lock:
            self._pending.append(unit)
        self._pump()
        return future

    def _admits(self, unit: _Unit) -> bool:
        # Head of line waits for room: FIFO, so a big task is never starved by small ones.
        return self.budget is None or self._admitted + unit.cap <= self.budget

    def statistics(self) -> Statistics:
        with self._lock:
            return snapshot(self._counts, len(self._running), len(self._pending),
                            self._peak_admitted, self._peaks)

    def _pump(self) -> None:
        while True:
            with self._lock:
                if len(self._running) >= self.workers * (1 + self._ahead_now) \
                        or not self._pending:
                    return
                if not self._admits(self._pending[0]):
                    return
                free, worker = self._reserve_worker(self._pending[0].limits)
                if not free:
                    return
                unit = self._pending.popleft()
                # A retry, or a unit back from a worker that left before starting it.
                again = unit.started
                if not again and not unit.future.set_running_or_notify_cancel():
                    self._counts["cancelled"] += 1
                    self._unreserve(worker)
                    self._idle.notify_all()
                    continue
                unit.started = True
                self._running[unit.future] = unit
                self._admitted += unit.cap
                self._peak_admitted = max(self._peak_admitted, self._admitted)
            supervisor = get_supervisor()
            try:
                inner = self._start(supervisor, unit, worker)
            except BaseException as exc:  # noqa: BLE001 - the unit fails, the pool goes on
                self._complete(unit, None, exc)
                continue
            # A reused worker's job may have ended already (its worker had just gone) and
            # the unit been started again elsewhere: only a live first handle is kept.
            if unit.inner is None and not inner.done():
                unit.inner = inner
            if self._terminating:
                supervisor.cancel(inner)
            if isinstance(inner, TaskFuture):  # a reused worker's job has its callback
                inner.add_done_callback(functools.partial(self._inner_done, unit))

    def _start(self, supervisor: Supervisor, unit: _Unit, worker: Task | None) -> AnyFuture:
        if self.recycle is None:
            return supervisor.submit(unit.payload, unit.limits, unit.warm, unit.name)
        if worker is not None:
            return supervisor.run_on(worker, unit.payload, unit.limits, unit.name,
                                     functools.partial(self._inner_done, unit))
        try:
            inner = supervisor.submit(unit.payload, unit.limits, unit.warm, unit.name,
                                      worker=self)
        except BaseException:
            with self._lock:
                self._live_workers -= 1
            raise
        self._adopt(inner)
        return inner

    def _inner_done(self, unit: _Unit, inner: AnyFuture) -> None:
        exc = inner.exception()
        worker = getattr(inner, "worker", None)
        if worker is not None:
            self._last_name[worker.id] = unit.name
            if isinstance(exc, MemoryLimitExceeded):
                worker.tainted = True
        resend = isinstance(exc, NotStarted) and not self._terminating
        with self._lock:
            if worker is not None:
                worker.unfinished -= 1
            self._running.pop(unit.future, None)
            self._admitted -= unit.cap
            if resend:
                self._pending.appendleft(unit)  # it never ran: it goes first, elsewhere
                self._counts["resent"] += 1
                unit.inner = None
            else:
                self._peaks.append(getattr(inner, "peak", 0))
        if resend:
            self._pump()
            return
        if exc is not None and isinstance(exc, Exception):
            try:
                again = self._retry_later(unit, exc)
            except Exception as bug:  # noqa: BLE001 - the retry strategy's own error
                # The unit fails with it, as tenacity would raise it to its caller.
                bug.__context__ = exc
                again, exc = False, bug
            if again:
                self._pump()
                return
        if exc is not None and unit.earlier:
            record_attempts(exc, unit.earlier)
        self._complete(unit, None if exc is not None else inner.result(), exc)
        if self.recycle is None:  # a reused worker frees its slot at IDLE or at its exit
            self._pump()

    def _retry_later(self, unit: _Unit, exc: Exception) -> bool:
        if self.retry is None or self._terminating:
            return False
        decision = self.retry.after_failure(unit.retry_state, exc, unit.limits)
        if decision is None:
            return False
        delay, limits = decision
        if self.budget is not None and limits.max_mem is not None:
            limits = clamped(limits, self.budget)
        unit.earlier += (exc,)
        unit.limits, unit.inner = limits, None
        with self._lock:
            self._counts["retried"] += 1
        if delay > 0:
            with self._lock:
                self._delayed += 1
            timer = threading.Timer(delay, self._requeue, (unit, True, True))
            timer.daemon = True
            timer.start()
        else:
            self._requeue(unit, pump=False)
        return True

    def _requeue(self, unit: _Unit, pump: bool = True, delayed: bool = False) -> None:
        with self._lock:
            self._pending.appendleft(unit)
            self._delayed -= delayed
        if pump:
            self._pump()

    def _complete(self, unit: _Unit, value: Any, exc: BaseException | None) -> None:
        if exc is None:
            unit.future.set_result(value)
        else:
            unit.future.set_exception(exc)
        with self._lock:
            if self._running.pop(unit.future, None) is not None:
                self._admitted -= unit.cap
            self._count_outcome(exc)
        self._progress(unit.future)

    def _finish_counts(self, future: Future[Any]) -> None:
        with self._lock:
            self._count_outcome(future.exception())
        self._progress(future)

    def _progress(self, future: Future[Any]) -> None:
        """Run the progress hook; join() waits for it, as shutdown() waits for a stdlib
        executor's done-callbacks."""
        if self._on_done is None:
            return
        try:
            self._on_done(future)
        except Exception:  # noqa: BLE001 - a hook's bug must not stall the pool
            # As concurrent.futures does for a done-callback: log it and go on.
            _log.exception("isolator: the progress hook raised for %r", future)
        finally:
            with self._lock:
                self._hooks_due -= 1
                if self._joiners:
                    self._idle.notify_all()

    def _count_outcome(self, exc: BaseException | None) -> None:
        self._hooks_due += self._on_done is not None  # run (and counted down) next
        if exc is None:
            self._counts["completed"] += 1
        else:
            self._counts["failed"] += 1
            self._counts[KIND + failure_kind(exc)] += 1
        if self._joiners:
            self._idle.notify_all()

    def cancel_pending(self) -> None:
        with self._lock:
            pending, self._pending = list(self._pending), deque()
        for unit in pending:
            if unit.future.cancel():
                with self._lock:
                    self._counts["cancelled"] += 1
        with self._lock:
            self._idle.notify_all()

    def kill_running(self) -> None:
        """Kill every running unit's child (SIGTERM, grace, SIGKILL); they fail WorkerLost."""
        with self._lock:
            self._terminating = True
            running = list(self._running.values())
        supervisor = get_supervisor()
        for unit in running:
            if unit.inner is not None:
                supervisor.cancel(unit.inner)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            drained = not self._pending and not self._running
        if drained:
            self._retire_idle()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until nothing is pending or running; False on timeout."""
        with self._lock:
            self._joiners += 1
            try:
                done = self._idle.wait_for(
                    lambda: not (self._pending or self._running or self._delayed
                                 or self._hooks_due),
                    timeout,
                )
            finally:
                self._joiners -= 1
        if done and self._closed:
            self._retire_idle()
        return done
