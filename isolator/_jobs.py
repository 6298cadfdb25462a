"""Reused workers, the supervisor's side: a worker's next tasks, written ahead.

A mixin of ``Supervisor``, which owns the state. A worker that is busy is sent its next
task at once; the child reads it when it has finished the one it runs, so the worker does
not sit idle while the dispatcher hears its IDLE and answers it. Every task a worker is
given in one round of events goes out in one write.
"""

from __future__ import annotations

import functools
import selectors
import socket
import threading
import time
from collections.abc import Callable

from . import _native
from ._errors import NotStarted
from ._options import Limits
from ._task import JobFuture, Task


class ReusedJobs:
    """The reused-worker half of ``Supervisor``."""

    _thread: threading.Thread
    _selector: selectors.BaseSelector
    _unsent: dict[Task, None]  # reused workers with tasks to write
    call_soon: Callable[[Callable[[], None]], None]
    _at: Callable[[float, Task, str], None]

    def run_on(self, task: Task, payload: bytes, limits: Limits, name: str,
               done: Callable[[JobFuture], None] | None = None) -> JobFuture:
        """Give a reused worker its next task (any thread); ``done`` gets the outcome in
        the supervisor thread. A busy worker is sent it at once and runs it next."""
        future = JobFuture(done)
        future.worker = future.task = task  # what cancel() and the live view look up
        if threading.current_thread() is self._thread:
            self._start_job(task, future, payload, limits, name)
        else:
            self.call_soon(functools.partial(self._start_job, task, future, payload, limits,
                                             name))
        return future

    def retire(self, task: Task) -> None:
        """Let an idle reused worker go: it reads EOF and exits (any thread)."""
        self.call_soon(functools.partial(_shut_write, task))

    def _start_job(self, task: Task, future: JobFuture, payload: bytes, limits: Limits,
                   name: str) -> None:
        if task.done:
            future.set_exception(NotStarted("the reused worker exited before its next task"))
            return
        capture, task.native_missing = _native.capture_for(limits.forensics, limits.max_mem)
        if task.idle:
            task.next_job(future, payload, limits, name, capture)
            self._begin_job(task)
        else:  # busy, or not set up yet: the task waits in its socket
            task.queue_job(future, payload, limits, name, capture)
        if task.watch is not None:
            # Sent once this round of events is handled: one write for all the tasks a
            # worker was given in it, and one wake-up of the worker at most.
            self._unsent[task] = None

    def _flush(self) -> None:
        while self._unsent:
            task = self._unsent.popitem()[0]
            if not task.done and not task.write_some():
                self._selector.modify(task.sock, selectors.EVENT_READ | selectors.EVENT_WRITE,
                                      task)

    def _begin_job(self, task: Task) -> None:
        """A reused worker's job became the running one: its own cap and deadline."""
        limits = task.limits
        if task.watch is not None:
            task.watch.reset(limits.max_mem, limits.soft_mem)
        if task.slot is not None and limits.max_mem is not None:
            task.slot.set_limit(limits.max_mem)
        if limits.timeout is not None:
            self._at(time.monotonic() + limits.timeout, task, "timeout")


def _shut_write(task: Task) -> None:
    try:
        task.sock.shutdown(socket.SHUT_WR)
    except OSError:  # already gone: its exit report is on the way
        pass
