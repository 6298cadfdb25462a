"""How a task ends: its outcome to its future, its child's resources let go.

A mixin of ``Supervisor``, which owns the state. A task ends once: ``_on_exit`` when the
zygote reported its child's exit, ``_fail`` when it has no child (or lost it with the
zygote); ``_resolve`` may complete the future earlier, as soon as the child's RESULT or
RAISED frame is read.
"""

from __future__ import annotations

import functools
import selectors
import time
from typing import Any

from . import _native
from ._errors import MemoryLimitExceeded, NotStarted
from ._outcome import Ending, resolve
from ._postmortem import report_for
from ._sampler import Sampler
from ._task import Task


class TaskEndings:
    """The ending half of ``Supervisor``."""

    sampler: Sampler
    _tasks: dict[int, Task]
    _selector: selectors.BaseSelector
    _cgroups: Any

    def _resolve(self, task: Task, oom_killed: bool = False) -> None:
        """Complete the caller's future as soon as the outcome is known."""
        task.resolved = True
        ok, value, heap = resolve(task.message, functools.partial(_facts, task, oom_killed))
        task.future.peak = task.watch.peak if task.watch is not None else 0
        native = None
        if task.capture is not None:
            capture, task.capture = task.capture, None
            if isinstance(value, MemoryLimitExceeded):
                native = _native.sites(capture)
            else:
                _native.discard(capture)
        if isinstance(value, MemoryLimitExceeded):
            if task.watch is not None:
                value.timeline = list(task.watch.timeline)
            value.report = report_for(
                value, function=task.name, started_at=task.started_at,
                wall_time=time.monotonic() - task.t0, limits=task.limits, heap=heap,
                native=native, native_missing=task.native_missing,
                soft_signalled=task.watch is not None and task.watch.soft_sent,
            )
        if task.future.set_running_or_notify_cancel():
            if ok:
                task.future.set_result(value)
            else:
                task.future.set_exception(value)

    def _on_exit(self, task: Task) -> None:
        """The zygote reaped the child (and killed its group) and what it sent before it
        died was read: clean up, resolve if needed."""
        oom_killed = False
        if task.watch is not None:
            task.watch.kill()  # what is left of the tree: setsid escapees
            self.sampler.unwatch(task.watch)
        if task.slot is not None:
            oom_killed = task.slot.oom_kills() > task.oom_before
            task.slot.kill_all()
            task.slot.reset()
            self._cgroups.release(task.slot)
            task.slot = None
        if not task.resolved:
            self._resolve(task, oom_killed)
        # Jobs sent behind the last one never started: the owner may run them elsewhere.
        fail_queued(task, NotStarted("the reused worker exited before this task started"))
        self._forget(task)
        if task.hooks is not None:
            task.hooks.on_exit(task)

    def _fail(self, task: Task, exc: BaseException) -> None:
        """The task's child is gone or never was, and no exit will be reported for it."""
        if task.slot is not None and self._cgroups is not None:
            self._cgroups.release(task.slot)
            task.slot = None
        if not task.resolved:
            task.resolved = True
            if task.capture is not None:
                _native.discard(task.capture)
                task.capture = None
            if task.future.set_running_or_notify_cancel():
                task.future.set_exception(exc)
        fail_queued(task, exc)
        self._forget(task)
        if task.hooks is not None:
            task.hooks.on_exit(task)

    def _forget(self, task: Task) -> None:
        task.done = True
        if task.registered:
            self._selector.unregister(task.sock)
            task.registered = False
        task.sock.close()
        self._tasks.pop(task.id, None)


def _facts(task: Task, oom_killed: bool) -> Ending:
    watch = task.watch
    return Ending(
        pid=task.pid or 0, status=task.status or 0, hello=task.hello,
        stop_reason="hard" if watch and watch.killed else task.stop_reason,
        limit=task.limits.max_mem, peak=watch.peak if watch else 0,
        timeout=task.limits.timeout, oom_killed=oom_killed, rlimit=task.limits.rlimit_data,
    )


def fail_queued(task: Task, exc: BaseException) -> None:
    while task.queued:
        future, _, _, capture = task.queued.popleft()
        if capture is not None:
            _native.discard(capture)
        if future.set_running_or_notify_cancel():
            future.set_exception(exc)
