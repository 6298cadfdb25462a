"""A pool's scheduler: its units of work, in order, on the engine's thread.

A unit is one task, or one chunk of a ``map``. Units wait in a FIFO; the head starts
when there is a free slot (at most ``workers`` children, plus the units sent ahead to
busy reused workers) and its cap fits the memory budget (``_model.admission``). Each
start is a ``Job`` on a fresh child, or on a reused worker chosen by ``Workers``. When
a job ends the unit is complete, or is run again: on another worker when it never
started, or after a retry wait (an engine timer) with the retry's limits.

Every method runs on the engine thread: callers reach it through commands
(``isolator._api.handle``), so nothing here takes a lock. The rules are unit-tested
against a fake engine (tests/test_scheduling.py).
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, NamedTuple, Protocol

from .._errors import NotStarted, PoolClosed
from .._model import admission
from .._model.recycle import recycle_base
from .._model.retry import RetryPolicy, record_attempts
from .._model.statistics import RunningChild, Statistics, Tally
from .._model.values import Limits, Reporting
from .children import Child, Job, Outcome, Owner
from .timers import Timer
from .workers import Workers

_log = logging.getLogger("isolator")

class Port(Protocol):
    """What a scheduler asks of the engine (a fake one in the unit tests)."""

    def start_fresh(self, job: Job) -> None: ...

    def start_worker(self, owner: Owner, limits: Limits, reporting: Reporting,
                     warm: tuple[str, ...], job: Job | None = None) -> Child | None: ...

    def give(self, child: Child, job: Job) -> None: ...

    def retire(self, child: Child) -> None: ...

    def stop(self, job: Job, reason: str) -> None: ...

    def at(self, when: float, action: Callable[[], None]) -> Timer: ...

    def cancel_timer(self, timer: Timer | None) -> None: ...

    def post_callback(self, fn: Callable[..., Any], *args: Any) -> None: ...

    def post_report(self, fn: Callable[..., Any], *args: Any) -> None: ...

    def call_soon(self, run: Callable[[], object],
                  fail: Callable[[BaseException], object] | None = None) -> None: ...


class Settings(NamedTuple):
    """What a pool was made with, normalised."""

    workers: int
    limits: Limits
    reporting: Reporting
    retry: RetryPolicy | None
    budget: int | None
    recycle: recycle_base | None  # None: a fresh child per unit
    progress: Callable[[Future[Any]], None] | None
    learn: bool = True  # what tasks import is preloaded for the next (``preload=False``)


class Unit:
    """One unit of work and its user-facing future, across its attempts."""

    __slots__ = ("earlier", "future", "job", "limits", "name", "payload", "retry_state",
                 "started", "wait", "warm")

    def __init__(self, future: Future[Any], payload: bytes, warm: tuple[str, ...],
                 limits: Limits, name: str) -> None:
        self.future, self.payload, self.warm = future, payload, warm
        self.limits, self.name = limits, name
        self.job: Job | None = None  # the attempt running now
        self.started = False  # its future is running: it was started at least once
        self.retry_state: Any = None
        self.wait: Timer | None = None  # a retry's wait
        # Failed attempts: a tuple, so that a unit that never failed holds no list for the
        # garbage collector to track (a caller may hold thousands of pending units).
        self.earlier: tuple[BaseException, ...] = ()

    @property
    def cap(self) -> int:
        return self.limits.max_mem or 0


class Scheduler:
    """Queue and run one pool's units; engine thread only."""

    def __init__(self, port: Port, settings: Settings) -> None:
        self.port = port
        self.settings = settings
        self.misfit = admission.misfit(settings.limits, settings.budget)
        self.pending: deque[Unit] = deque()
        self.running: dict[Unit, None] = {}  # started and not complete, in start order
        self.admitted = 0  # the caps of the units running now, summed
        self.waiting: dict[Unit, None] = {}  # retries waiting out their wait
        self.tally = Tally()
        self.closed = False
        self.terminating = False
        self.abandoned = False  # its engine died: it takes and starts nothing more
        self.workers = Workers(port, self, settings) if settings.recycle is not None else None
        self._drained: list[Callable[[], None]] = []  # join()s waiting for the end
        self._confirming = False  # a drained check is on its way through the callbacks

    # -- commands from the pool's callers ------------------------------------------------

    def add(self, unit: Unit) -> None:
        if self.abandoned:
            unit.future.set_exception(PoolClosed("the isolator engine of this pool stopped"))
            return
        self.tally.counts["submitted"] += 1
        if self.settings.retry is not None:
            unit.retry_state = self.settings.retry.new_state()
        self.pending.append(unit)
        self.pump()

    def rejected(self, future: Future[Any]) -> None:
        """A submission that failed before it was queued (its arguments would not pickle)."""
        self.tally.counts["submitted"] += 1
        self._count(future, future.exception())

    def close(self) -> None:
        self.closed = True
        if self.workers is not None and self.drained:
            self.workers.retire_idle()
        self.check_drained()

    def cancel_pending(self) -> None:
        pending, self.pending = self.pending, deque()
        for unit in pending:
            if unit.future.cancel():
                self.tally.counts["cancelled"] += 1
        self.check_drained()

    def kill_running(self) -> None:
        """Kill every running unit's child; retries waiting fail with their last error."""
        self.terminating = True
        for unit in list(self.running):
            if unit.job is not None:
                self.port.stop(unit.job, "cancelled")
        for unit in list(self.waiting):
            self.port.cancel_timer(unit.wait)
            del self.waiting[unit]
            self._complete(unit, None, record_attempts(unit.earlier[-1], unit.earlier[:-1]))

    def when_drained(self, then: Callable[[], None]) -> None:
        """``then()`` once nothing is pending, running or waiting, and every progress hook
        call for what ended has returned."""
        self._drained.append(then)
        self.check_drained()

    def snapshot(self) -> Statistics:
        children = tuple(
            RunningChild(job.child.watch.pid, job.child.watch.last, job.limits.max_mem, job.name)
            for job in (unit.job for unit in self.running)
            if job is not None and job.child is not None and job.child.watch is not None
            and job.child.current is job)
        return self.tally.snapshot(len(self.running), len(self.pending) + len(self.waiting),
                                   children)

    def abandon(self, error: BaseException) -> None:
        """The engine died: every unit not complete fails with ``error``, at once."""
        self.abandoned = True
        for unit in [*self.pending, *self.running, *self.waiting]:
            future = unit.future
            if future.done() or (not unit.started
                                 and not future.set_running_or_notify_cancel()):
                continue
            future.set_exception(error)
        self.pending.clear()
        self.running.clear()
        self.admitted = 0
        self.waiting.clear()
        waiting, self._drained = self._drained, []
        for then in waiting:
            then()

    # -- starting units --------------------------------------------------------------------

    @property
    def drained(self) -> bool:
        # A suspected leaker's heap walk runs as one more job of no unit: its report
        # is part of the work a join() waits for.
        return not (self.pending or self.running or self.waiting
                    or (self.workers is not None and self.workers.probing))

    def pump(self) -> None:
        """Start units from the head of the queue while there is room for them."""
        slots = self.settings.workers * (1 + (self.workers.ahead if self.workers else 0))
        while self.pending and len(self.running) < slots:
            unit = self.pending[0]
            if not admission.admits(self.settings.budget, self.admitted, unit.cap):
                return  # the head waits for room: a big unit is never starved by small ones
            worker: Child | None = None
            if self.workers is not None:
                placed, worker = self.workers.place(unit.limits)
                if not placed:
                    return
            self.pending.popleft()
            # A retry, or a unit back from a worker that left before starting it, is
            # running already; a new one may have been cancelled while it waited.
            if not unit.started and not unit.future.set_running_or_notify_cancel():
                self.tally.counts["cancelled"] += 1
                if self.workers is not None:
                    self.workers.unplace(worker)
                continue
            unit.started = True
            self.running[unit] = None
            self.admitted += unit.cap
            self.tally.peak_admitted = max(self.tally.peak_admitted, self.admitted)
            self._start(unit, worker)

    def _start(self, unit: Unit, worker: Child | None) -> None:
        job = Job(unit.payload, unit.limits, self.settings.reporting, unit.name, unit.warm,
                  functools.partial(self._job_done, unit), self.settings.learn)
        unit.job = job
        if self.workers is not None:
            self.workers.run(job, worker, unit.warm)
        else:
            self.port.start_fresh(job)
        if self.terminating:
            self.port.stop(job, "cancelled")

    # -- units ending ----------------------------------------------------------------------

    def _job_done(self, unit: Unit, job: Job, outcome: Outcome) -> None:
        if unit.job is not job or self.abandoned:  # replaced, or failed with the engine
            return
        unit.job = None
        if self.running.pop(unit, 0) is None:
            self.admitted -= unit.cap
        exc: BaseException | None = None if outcome.ok else outcome.value
        if isinstance(exc, NotStarted) and not self.terminating:
            self.pending.appendleft(unit)  # it never ran: it goes first, elsewhere
            self.tally.counts["resent"] += 1
            self.pump()
            return
        self.tally.peak(outcome.peak)
        if isinstance(exc, Exception) and self._retry_later(unit, exc):
            self.pump()
            return
        if exc is not None and unit.earlier:
            record_attempts(exc, unit.earlier)
        self._complete(unit, outcome.value if exc is None else None, exc)
        self.pump()

    def _retry_later(self, unit: Unit, exc: Exception) -> bool:
        policy = self.settings.retry
        if policy is None or self.terminating:
            return False
        try:
            decision = policy.after_failure(unit.retry_state, exc, unit.limits)
        except BaseException as bug:  # noqa: BLE001 - the retry strategy's own error
            # The unit fails with it, as tenacity would raise it to its caller.
            bug.__context__ = exc
            self._complete(unit, None, bug)
            return True
        if decision is None:
            return False
        limits = decision.limits
        if self.settings.budget is not None and limits.max_mem is not None:
            limits = admission.clamped(limits, self.settings.budget)
        unit.earlier += (exc,)
        unit.limits = limits
        self.tally.counts["retried"] += 1
        if decision.delay > 0:
            self.waiting[unit] = None
            unit.wait = self.port.at(time.monotonic() + decision.delay,
                                      functools.partial(self._requeue, unit))
        else:
            self.pending.appendleft(unit)
        return True

    def _requeue(self, unit: Unit) -> None:
        unit.wait = None
        if self.waiting.pop(unit, 0) is None:
            self.pending.appendleft(unit)
            self.pump()

    def _complete(self, unit: Unit, value: Any, exc: BaseException | None) -> None:
        if exc is None:
            unit.future.set_result(value)
        else:
            unit.future.set_exception(exc)
        self._count(unit.future, exc)

    def _count(self, future: Future[Any], exc: BaseException | None) -> None:
        self.tally.outcome(exc)
        if self.settings.progress is not None:
            self.port.post_callback(_progress, self.settings.progress, future)
        self.check_drained()

    def check_drained(self) -> None:
        """Tell the join()s once drained, after the reports (a suspected leak's) and the
        progress hook calls posted so far have run: each of those threads runs in order,
        so a barrier goes through both. Confirmed on the engine thread, since a hook may
        have submitted more work meanwhile."""
        if self._drained and self.drained and not self._confirming:
            if self.workers is not None and self.closed:
                self.workers.retire_idle()
            self._confirming = True
            port = self.port
            port.post_report(port.post_callback, port.call_soon, self._confirm)

    def _confirm(self) -> None:
        self._confirming = False
        if self.drained:
            waiting, self._drained = self._drained, []
            for then in waiting:
                then()
        else:
            self.check_drained()


def _progress(hook: Callable[[Future[Any]], None], future: Future[Any]) -> None:
    try:
        hook(future)
    except Exception:  # noqa: BLE001 - a hook's bug must not stall the pool
        # As concurrent.futures does for a done-callback: log it and go on.
        _log.exception("isolator: the progress hook raised for %r", future)
