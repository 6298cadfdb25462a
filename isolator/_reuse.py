"""Reused workers, the dispatcher's side: which worker takes the next unit, sending
ahead, recycling, leak suspicion. A mixin of ``Dispatcher``, which owns the state.

A worker is live from its start to its exit; idle when it has no unit; busy units can be
sent behind the one it runs (``AHEAD_WORK``). It is counted busy until its IDLE, so there
are never more live workers than asked, and it is let go (``retiring``) when its policy
says so, after a breach, or when the pool closes.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from typing import Any

from . import _serialize
from ._calls import leak_probe
from ._leakwatch import LeakWatch, leak_report
from ._options import Limits
from ._recycle import WorkerFacts, recycle_base
from ._supervisor import get_supervisor
from ._task import JobFuture, Task, TaskFuture

_log = logging.getLogger("isolator")

#: Work a busy reused worker may be given beyond its current task, in seconds of its
#: tasks' recent average: only short tasks are sent ahead, at most ``MAX_AHEAD``.
AHEAD_WORK = 0.002
MAX_AHEAD = 8


class ReusedWorkers:
    """The reused-worker half of ``Dispatcher`` (its ``WorkerHooks`` included)."""

    workers: int
    limits: Limits
    recycle: recycle_base | None
    _lock: threading.Lock
    _idle_workers: deque[Task]
    _workers: list[Task]  # live reused workers that may be sent a next unit
    _live_workers: int  # started and not yet exited, busy or idle
    _task_time: float | None  # seconds a reused worker spends per task, recently
    _ahead_now: int  # _ahead() for the current _task_time
    _leaks: LeakWatch
    _last_name: dict[int, str]
    _counts: Counter[str]
    _closed: bool
    _pending: deque[Any]

    def _pump(self) -> None:
        raise NotImplementedError

    def _reserve_worker(self, limits: Limits) -> tuple[bool, Task | None]:
        """Under the lock, with the admission that decided it: whether a unit can start
        now, and on which reused worker (None: a new child). A new worker is counted as
        live at once, so two pumps cannot both start one."""
        if self.recycle is None:
            return True, None
        chosen: Task | None = None
        if self._idle_workers:
            chosen = self._idle_workers.popleft()
        elif self._live_workers < self.workers:
            self._live_workers += 1
            return True, None
        else:  # the least loaded of the busy ones that may be sent more
            for worker in self._workers:
                if (chosen is None or worker.assigned < chosen.assigned) \
                        and self._takes_next(worker, limits):
                    chosen = worker
            if chosen is None:
                return False, None
        chosen.assigned += 1
        chosen.unfinished += 1
        return True, chosen

    def _ahead(self) -> int:
        """How many units a busy reused worker may hold behind its current one: enough
        that short tasks never wait for the supervisor between them, few enough that a
        unit stuck behind a slow one waits about ``AHEAD_WORK`` seconds at most."""
        if self._task_time is None:
            return 0
        return min(MAX_AHEAD, int(AHEAD_WORK / max(self._task_time, 1e-6)))

    def _takes_next(self, worker: Task, limits: Limits) -> bool:
        """A worker may be sent its next unit while its current one runs, unless it is to
        be let go after that one (judged on its last known facts: exact for task counts).
        Not once all it was given has ended: the worker's IDLE, with its new RSS for the
        recycle policy, is moments away. Not a unit with other limits (an escalated
        retry): it may start before the supervisor moves the worker's cap to it."""
        assert self.recycle is not None
        if worker.assigned > self._ahead_now or not worker.unfinished or worker.retiring \
                or worker.tainted or worker.done:
            return False
        if limits is not worker.limits and limits != worker.limits:
            return False
        return not self._recycles(WorkerFacts(worker.tasks_done + worker.assigned,
                                              worker.baseline_rss,
                                              worker.last_rss or worker.baseline_rss))

    def _recycles(self, facts: WorkerFacts) -> bool:
        """The policy's verdict; a policy that raises (a user's own) recycles the worker,
        logged, rather than leave it stuck between tasks."""
        assert self.recycle is not None
        try:
            return bool(self.recycle(facts))
        except Exception:  # noqa: BLE001 - user code, run in the supervisor thread
            _log.exception("isolator: the recycle policy %r raised", self.recycle)
            return True

    def _unreserve(self, worker: Task | None) -> None:
        if worker is not None:
            worker.assigned -= 1
            worker.unfinished -= 1
            if worker.assigned == 0:  # it came from the idle ones
                self._idle_workers.appendleft(worker)
        elif self.recycle is not None:
            self._live_workers -= 1

    def on_idle(self, worker: Task, rss: int) -> None:
        assert self.recycle is not None
        with self._lock:
            worker.assigned = max(0, worker.assigned - 1)
            worker.last_rss = rss
            if worker.tasks_done:
                last = self._task_time
                ran = worker.last_job_time
                self._task_time = ran if last is None else last + (ran - last) / 5
                self._ahead_now = self._ahead()
            if worker.retiring:  # let go already: it exits after what it was sent
                return
        if self.limits.forensics != "off" and not worker.tainted:
            history = self._leaks.suspect(worker, rss, self.limits.max_mem)
            if history is not None:
                self._examine(worker, history)
                return
        facts = WorkerFacts(worker.tasks_done, worker.baseline_rss, rss)
        with self._lock:
            closed = self._closed and not self._pending
            # A worker that has run nothing is as fresh as its replacement would be:
            # recycling it for what its policy sees would only start another.
            recycle = worker.tainted or (worker.tasks_done > 0 and self._recycles(facts))
            worker.retiring = recycle or (closed and worker.assigned == 0)
            if recycle and not closed:
                self._counts["recycled"] += 1
                # The replacement starts now, while it is not needed yet, not when it is.
                self._live_workers += 1
            elif not worker.retiring and worker.assigned == 0:
                self._idle_workers.append(worker)
        if worker.retiring:
            get_supervisor().retire(worker)
        if recycle and not closed:
            self._adopt(get_supervisor().submit(None, self.limits, (), "<worker>", worker=self))
        self._pump()

    def _adopt(self, started: TaskFuture) -> None:
        """List a worker just started (with a unit, or as a replacement): it may be sent
        units ahead from now on."""
        with self._lock:
            if started.worker is not None and not started.worker.done:
                self._workers.append(started.worker)

    def _examine(self, worker: Task, history: list[int]) -> None:
        """Walk a suspected leaker's heap as one more task, then report and warn."""
        level = "types" if self.limits.forensics == "types" else "default"
        payload = _serialize.dumps((leak_probe, (level,), {}))
        name = self._last_name.get(worker.id, "<task>")

        def done(future: JobFuture) -> None:
            heap = None if future.exception() is not None else future.result()
            with self._lock:
                worker.unfinished -= 1
                self._counts["leaks_suspected"] += 1
            leak_report(worker, name, history, heap, self.limits)

        with self._lock:
            worker.assigned += 1
            worker.unfinished += 1
        get_supervisor().run_on(worker, payload, self.limits, "<leak probe>", done)

    def on_exit(self, worker: Task) -> None:
        self._leaks.forget(worker)
        self._last_name.pop(worker.id, None)
        with self._lock:
            self._live_workers -= 1
            if worker in self._idle_workers:
                self._idle_workers.remove(worker)
            if worker in self._workers:
                self._workers.remove(worker)
            if worker.tainted and not self._closed:  # it left by itself after its breach
                self._counts["recycled"] += 1
        self._pump()

    def _retire_idle(self) -> None:
        with self._lock:
            idle, self._idle_workers = list(self._idle_workers), deque()
            for worker in idle:
                worker.retiring = True
        for worker in idle:
            get_supervisor().retire(worker)
