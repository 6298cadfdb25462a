"""A stand-in for the engine, for the scheduler's rules: no process, no thread.

It gives the scheduler what the real engine gives it (``Port``): children that start,
take jobs and say IDLE or exit when a test says so, timers on a clock the test moves,
and callbacks run at once. The real engine is tested with real children elsewhere;
here the rules of scheduling run in milliseconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from isolator._engine.children import Child, Job, Outcome, State
from isolator._engine.scheduler import Scheduler, Settings, Unit
from isolator._engine.timers import Timer, Timers
from isolator._errors import NotStarted
from isolator._model.values import Limits, Reporting

MiB = 1 << 20


class FakeEngine:
    def __init__(self) -> None:
        self.timers = Timers()
        self.clock = 0.0
        self._ids = itertools.count(1)
        self.fresh: list[Job] = []  # jobs started on a fresh child, in order
        self.children: list[Child] = []  # reused workers started, in order
        self.retired: list[Child] = []
        self.stopped: list[tuple[Job, str]] = []
        self.reports: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    # -- the Port ------------------------------------------------------------------------

    def start_fresh(self, job: Job) -> None:
        job.child = Child(next(self._ids), None, job.limits, job.reporting, None, None)
        job.child.current = job
        self.fresh.append(job)

    def start_worker(self, owner: Any, limits: Limits, reporting: Reporting,
                     warm: tuple[str, ...], job: Job | None = None) -> Child:
        child = Child(next(self._ids), None, limits, reporting, None, owner)
        if job is not None:
            job.child, child.current = child, job
        self.children.append(child)
        return child

    def give(self, child: Child, job: Job) -> None:
        job.child = child
        if child.current is None:
            child.current = job
            child.state = State.BUSY
        else:
            child.ahead.append(job)

    def retire(self, child: Child) -> None:
        child.state = State.RETIRING
        self.retired.append(child)

    def stop(self, job: Job, reason: str) -> None:
        self.stopped.append((job, reason))

    def at(self, when: float, action: Callable[[], None]) -> Timer:
        return self.timers.at(when, action)

    def cancel_timer(self, timer: Timer | None) -> None:
        self.timers.cancel(timer)

    def post_callback(self, fn: Callable[..., Any], *args: Any) -> None:
        fn(*args)

    def post_report(self, fn: Callable[..., Any], *args: Any) -> None:
        if fn == self.post_callback:  # a barrier: through at once
            fn(*args)
        else:
            self.reports.append((fn, args))

    def call_soon(self, run: Callable[[], object], fail: Any = None) -> None:
        run()

    # -- what children do, as a test says -----------------------------------------------

    def hello(self, child: Child, rss: int = 10 * MiB) -> None:
        """A worker is up: its fresh RSS is its baseline; idle ones report so."""
        child.baseline_rss = rss
        if child.current is None:
            child.state = State.IDLE
            child.owner.on_idle(child, rss)
        else:
            child.state = State.BUSY

    def finish(self, job: Job, value: Any = None, exc: BaseException | None = None,
               peak: int = 0) -> None:
        job.finished = True
        job.done(job, Outcome(exc is None, value if exc is None else exc, peak))

    def idle(self, child: Child, rss: int = 10 * MiB) -> None:
        """The worker's IDLE after its current job (whose outcome came before)."""
        child.tasks_done += 1
        child.last_job_time = 0.0001
        child.current = child.ahead.popleft() if child.ahead else None
        if child.current is None and child.state is State.BUSY:
            child.state = State.IDLE
        child.owner.on_idle(child, rss)

    def exit(self, child: Child) -> None:
        """The worker died: what was sent behind its current job never started."""
        child.state = State.GONE
        ahead, child.ahead = list(child.ahead), type(child.ahead)()
        child.owner.on_exit(child)
        for job in ahead:
            self.finish(job, exc=NotStarted("never started"))

    def advance(self, seconds: float) -> None:
        """Fire the timers due within ``seconds`` (the scheduler's clock is monotonic)."""
        import time

        deadline = time.monotonic() + seconds
        for timer in sorted(t for t in self.timers._heap if t.action is not None):
            if timer.when <= deadline:
                action, timer.action = timer.action, None
                self.timers._cancelled += 1
                assert action is not None
                action()


def scheduler(workers: int = 2, *, max_mem: int | None = None, budget: int | None = None,
              recycle: Any = None, retry: Any = None, progress: Any = None,
              ) -> tuple[FakeEngine, Scheduler]:
    engine = FakeEngine()
    limits = Limits(max_mem=max_mem)
    settings = Settings(workers, limits, Reporting(forensics="off"), retry, budget, recycle,
                        progress)
    return engine, Scheduler(engine, settings)


def unit(sched: Scheduler, name: str = "task", cap: int | None = None) -> Unit:
    limits = sched.settings.limits if cap is None else Limits(max_mem=cap)
    made = Unit(Future(), b"payload", (), limits, name)
    sched.add(made)
    return made
