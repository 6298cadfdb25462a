"""A pool's reused workers: which one takes the next unit, sending ahead, recycling and
leak suspicion. A part of the ``Scheduler`` (composed, not mixed in), on the engine
thread.

A worker is live from its start to its exit; idle when it has no job; a busy one can be
sent units behind the one it runs (``AHEAD_WORK``) so that it goes from one to the next
without waiting for the engine. It counts as busy until its IDLE, so there are never
more live workers than asked (but for a replacement, started as soon as the worker it
replaces is let go), and it is let go when its policy says so, after a breach, or when
the pool closes.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from .._child.calls import leak_probe
from .._model.leaks import LeakWatch
from .._model.recycle import WorkerFacts
from .._model.values import Limits
from .._wire import pickling
from .children import Child, Job, Outcome, State
from .postmortem import leak_report

if TYPE_CHECKING:
    from .scheduler import Port, Scheduler, Settings

#: Work a busy reused worker may be given beyond its current job, in seconds of the
#: pool's recent time per job: only short tasks are sent ahead, at most ``MAX_AHEAD``.
AHEAD_WORK = 0.002
MAX_AHEAD = 8


class Workers:
    """The reused workers of one pool; the ``Owner`` the engine tells about them."""

    def __init__(self, port: Port, scheduler: Scheduler, settings: Settings) -> None:
        assert settings.recycle is not None
        self.port, self.scheduler = port, scheduler
        self.count = settings.workers
        self.limits, self.reporting = settings.limits, settings.reporting
        self.recycle = settings.recycle
        self.live: list[Child] = []  # started and not exited, in any state
        self.idle: deque[Child] = deque()
        self.task_time: float | None = None  # seconds a job takes, recently (a moving mean)
        self.ahead = 0  # how many jobs a busy worker may hold behind its current one
        self.leaks = LeakWatch()
        # Functions whose leak was reported: the next worker that grows the same way is
        # counted (``leaks_suspected``) but not walked, warned about and reported again.
        self.examined: set[str] = set()
        self.probing = 0  # leak probes running (see Scheduler.drained)

    # -- the scheduler's questions -------------------------------------------------------

    def place(self, limits: Limits) -> tuple[bool, Child | None]:
        """Whether a unit under ``limits`` can start now, and on which worker (None: on a
        new one)."""
        if self.idle:
            return True, self.idle.popleft()
        if len(self.live) < self.count:
            return True, None
        best: Child | None = None
        for worker in self.live:  # the least loaded of the busy ones that may take more
            if (best is None or worker.jobs < best.jobs) and self._takes_next(worker, limits):
                best = worker
        return best is not None, best

    def unplace(self, worker: Child | None) -> None:
        """A placed unit did not start after all (it was cancelled)."""
        if worker is not None and worker.jobs == 0 and worker.state is State.IDLE:
            self.idle.appendleft(worker)

    def run(self, job: Job, worker: Child | None, warm: tuple[str, ...]) -> None:
        if worker is not None:
            self.port.give(worker, job)
            return
        started = self.port.start_worker(self, self.limits, self.reporting, warm, job)
        if started is not None:
            self.live.append(started)

    def retire_idle(self) -> None:
        while self.idle:
            self.port.retire(self.idle.popleft())

    def _takes_next(self, worker: Child, limits: Limits) -> bool:
        """A worker may be sent its next unit while its current one runs, unless it is to
        be let go after that one (judged on its last known facts: exact for task counts).
        Not once all it was given has ended: its IDLE, with its new RSS for the recycle
        policy, is moments away. Not a unit with other limits (an escalated retry): it may
        start before the engine moves the worker's cap to it."""
        if worker.state is not State.BUSY and worker.state is not State.STARTING:
            return False
        if worker.jobs > self.ahead or not worker.unfinished or worker.tainted:
            return False
        running = worker.current.limits if worker.current is not None else worker.limits
        if limits is not running and limits != running:
            return False
        return not self._recycles(WorkerFacts(worker.tasks_done + worker.jobs,
                                              worker.baseline_rss,
                                              worker.last_rss or worker.baseline_rss))

    def _recycles(self, facts: WorkerFacts) -> bool:
        """The policy's verdict; a policy that raises (a user's own) recycles the worker,
        logged, rather than leave it stuck between tasks."""
        try:
            return bool(self.recycle(facts))
        except Exception:
            import logging

            logging.getLogger("isolator").exception(
                "isolator: the recycle policy %r raised", self.recycle)
            return True

    # -- what the engine tells (Owner) ---------------------------------------------------

    def on_idle(self, worker: Child, rss: int) -> None:
        worker.last_rss = rss
        if worker.tasks_done:
            ran, last = worker.last_job_time, self.task_time
            self.task_time = ran if last is None else last + (ran - last) / 5
            self.ahead = min(MAX_AHEAD, int(AHEAD_WORK / max(self.task_time, 1e-6)))
        if worker.state is State.RETIRING:  # let go already: it exits after what it has
            return
        if self.reporting.forensics != "off" and not worker.tainted:
            history = self.leaks.suspect(worker.id, worker.tasks_done, worker.baseline_rss,
                                         rss, self.limits.max_mem)
            if history is not None:
                self.scheduler.tally.counts["leaks_suspected"] += 1
                if worker.last_name not in self.examined:  # one report a function, a pool
                    self.examined.add(worker.last_name)
                    self._examine(worker, history)
                    return
        closed = self.scheduler.closed and not self.scheduler.pending
        # A worker that has run nothing is as fresh as its replacement would be:
        # recycling it for what its policy sees would only start another.
        recycle = worker.tainted or (worker.tasks_done > 0 and self._recycles(
            WorkerFacts(worker.tasks_done, worker.baseline_rss, rss)))
        if recycle or (closed and worker.jobs == 0):
            self.port.retire(worker)
            if recycle and not closed:
                self.scheduler.tally.counts["recycled"] += 1
                # The replacement starts now, while it is not needed yet, not when it is.
                replacement = self.port.start_worker(self, self.limits, self.reporting, ())
                if replacement is not None:
                    self.live.append(replacement)
        elif worker.jobs == 0:
            self.idle.append(worker)
        self.scheduler.pump()

    def on_exit(self, worker: Child) -> None:
        self.leaks.forget(worker.id)
        if worker in self.live:
            self.live.remove(worker)
        if worker in self.idle:
            self.idle.remove(worker)
        if worker.tainted and not self.scheduler.closed:  # it left by itself after a breach
            self.scheduler.tally.counts["recycled"] += 1
        self.scheduler.pump()

    def _examine(self, worker: Child, history: list[int]) -> None:
        """Walk a suspected leaker's heap as one more job, then report and warn."""
        level = "types" if self.reporting.forensics == "types" else "default"
        payload = pickling.dumps((leak_probe, (level,), {}))
        name, pid = worker.last_name, worker.pid
        limits, reporting = self.limits, self.reporting

        def done(job: Job, outcome: Outcome) -> None:
            heap: Any = outcome.value if outcome.ok else None
            self.port.post_report(leak_report, pid, name, history, heap, limits, reporting)
            self.probing -= 1
            self.scheduler.check_drained()

        self.probing += 1

        self.port.give(worker, Job(payload, limits, reporting, "<leak probe>", (), done))
