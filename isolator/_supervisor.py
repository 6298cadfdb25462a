"""The engine: the supervisor that owns the zygote, its children and their outcomes.

::

    caller thread ──submit()──┐                       zygote (fresh interpreter,
      │ Future                │ fork request            single-threaded, subreaper)
      │                       ├──────────── SEQPACKET + SCM_RIGHTS ──────▶ │ fork()
      │                       │                                             ▼
      │        supervisor thread (event loop, selectors)                  child
      │           ├─ zygote socket: exited / failed                        │
      │           ├─ child sockets: HELLO in, TASK out, RESULT/RAISED in ◀──┘
      │           ├─ wake pipe: cancel, shutdown
      │           └─ timers: handshake deadline, timeout, SIGTERM→SIGKILL grace
      │        sampler thread: RSS of each child's tree; soft signal, hard kill
      └◀── set_result / set_exception (on RESULT/RAISED, or on the exit report)

The supervisor thread blocks on its sockets and timers; nothing in it polls. It is
also the thread that starts the zygote, so the zygote's parent-death signal is tied to
a thread that lives as long as the supervisor. The caller gets its result as soon as the
child has sent it; the task's bookkeeping ends when the zygote has reaped the child and
killed what was left of its process group, and the supervisor has killed what was left
of its tree.

The class is assembled from parts: the zygote's process and socket (``_zygote_link``),
how a task ends (``_endings``), a reused worker's next tasks (``_jobs``) and the
deadlines (``_timers``).
"""

from __future__ import annotations

import atexit
import functools
import itertools
import logging
import os
import selectors
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from . import _native, _platform, _protocol
from ._child import ChildSpec
from ._endings import TaskEndings
from ._errors import (
    ConfigurationError,
    PoolClosed,
    WorkerLost,
    WorkerStartupError,
)
from ._jobs import ReusedJobs
from ._options import Limits
from ._sampler import Sampler, Watch
from ._task import AnyFuture, Task, TaskFuture, WorkerHooks
from ._timers import Timers
from ._zygote_link import ZygoteLink

_log = logging.getLogger("isolator")


class Supervisor(TaskEndings, ReusedJobs):
    """One per process: started on first use, stopped at exit."""

    def __init__(self) -> None:
        self._tasks: dict[int, Task] = {}
        self._ids = itertools.count(1)
        self._commands: deque[Callable[[], None]] = deque()
        self._unsent: dict[Task, None] = {}  # reused workers with tasks to write
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_pending = False  # a byte is in the wake pipe, or about to be
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        self._timers = Timers()
        self._zygote = ZygoteLink()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._closed = False
        self._cgroups: Any = None
        self._cgroups_detected = False
        self.sampler = Sampler()
        self._thread = threading.Thread(target=self._run, name="isolator-supervisor", daemon=True)
        self._thread.start()
        if not self._ready.wait(60) or self._startup_error is not None:
            raise WorkerStartupError(f"the zygote did not start: {self._startup_error}")

    # -- caller side -------------------------------------------------------------------

    def submit(self, payload: bytes | None, limits: Limits, warm: tuple[str, ...],
               name: str = "<task>", worker: WorkerHooks | None = None) -> TaskFuture:
        """Start one child for one call of ``name``; the Future resolves with its outcome.

        With ``worker`` the child is a reused worker: it says IDLE after each task
        (``worker.on_idle``), takes more with ``run_on``, and ``worker.on_exit`` tells when
        it is gone. Its first task is ``payload``, or none when that is None.
        """
        if self._closed:
            raise PoolClosed("the isolator supervisor has shut down")
        if not self._zygote.up.wait(limits.startup_timeout):  # it is being replaced
            raise WorkerStartupError("the isolator zygote did not come back in time")
        slot = self._cgroup_slot(limits)
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        capture, missing = (None, None)
        if payload is not None:
            capture, missing = _native.capture_for(limits.forensics, limits.max_mem)
        if _native.wanted(limits.forensics, limits.max_mem) and _native.available():
            warm = (*warm, "memray")  # imported once, not by every tracked task
        task = Task(next(self._ids), limits, ours, payload, slot, name, worker, capture)
        task.native_missing = missing
        spec = ChildSpec(
            limit=limits.max_mem,
            rlimit_data=limits.max_mem if limits.rlimit_data else None,
            cgroup_procs=slot.procs_file if slot is not None else None,
            cwd=os.getcwd(),
            reuse=worker is not None,
            # A reused worker may be examined for leaks even without a cap.
            forensics=limits.forensics if limits.max_mem is not None or worker is not None
            else "off",
        )
        if worker is None:
            # Into the socket before the child exists: it reads its task right after its
            # HELLO instead of waiting for our answer to it (the sampler starts watching
            # at that HELLO, before the first sample would be due anyway). A reused
            # worker waits: its fresh RSS, taken at HELLO, is its recycle baseline.
            task.write_some()
        self._tasks[task.id] = task
        self._selector.register(ours, selectors.EVENT_READ, task)
        stdio, opened = _stdio()
        try:
            self._zygote.send(("fork", task.id, spec, warm), [theirs.fileno(), *stdio])
        except (OSError, WorkerStartupError) as exc:
            error = WorkerStartupError(f"fork request failed: {exc}")
            self.call_soon(functools.partial(self._fail, task, error))
        finally:
            theirs.close()
            for fd in opened:
                os.close(fd)
        # Most handshakes take a millisecond; the loop is woken for this deadline only
        # when it would otherwise sleep past it.
        self._at(time.monotonic() + limits.startup_timeout, task, "handshake")
        assert isinstance(task.future, TaskFuture)
        return task.future

    def cancel(self, future: AnyFuture) -> None:
        """Kill the child behind ``future`` (SIGTERM, grace, SIGKILL)."""
        task = getattr(future, "task", None)
        if task is not None:
            self.call_soon(functools.partial(self._cancel, task, future))

    def _cancel(self, task: Task, future: AnyFuture) -> None:
        if task.future is future:  # a reused worker may have moved on to another task
            self._stop(task, "cancelled")

    def call_soon(self, command: Callable[[], None]) -> None:
        self._commands.append(command)
        # One wake-up for a burst of commands. The loop clears the flag before it runs
        # the queue, so a command queued later finds it clear, or finds it set by a
        # caller whose byte is still to be read: either way the loop runs it.
        if not self._wake_pending:
            self._wake_pending = True
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:  # the pipe is full: the loop is awake anyway
                pass

    def shutdown(self, timeout: float = 3.0) -> None:
        """Kill every child, stop the zygote and the threads; idempotent."""
        if self._closed:
            return
        self._closed = True
        done = threading.Event()
        self.call_soon(lambda: self._shutdown(done))
        done.wait(timeout)
        self.sampler.stop()

    def _cgroup_slot(self, limits: Limits) -> Any:
        if limits.cgroup is False or limits.max_mem is None:
            return None
        if not self._cgroups_detected:
            from ._limits.cgroup_manager import CgroupManager

            self._cgroups = CgroupManager.detect()
            self._cgroups_detected = True
        if self._cgroups is None:
            if limits.cgroup is True:
                raise ConfigurationError(
                    "cgroup=True but no writable memory cgroup was found "
                    "(see docs/design.md, 'Cap layers'); use cgroup='auto'"
                )
            return None
        slot = self._cgroups.acquire()
        slot.set_limit(limits.max_mem)
        return slot

    # -- supervisor thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._start_zygote()
        except BaseException as exc:  # noqa: BLE001 - reported to the thread that waits
            self._startup_error = exc
            # Nobody else has this object: __init__ raises. Leave nothing behind.
            self._closed = True
            self.sampler.stop()
            self._selector.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            return
        finally:
            self._ready.set()
        while self._zygote.sock is not None or not self._closed:
            for key, events in self._selector.select(self._timers.sleep_for()):
                try:
                    if isinstance(key.data, Task):
                        self._on_child(key.data, events)
                    else:
                        key.data()
                except Exception:  # noqa: BLE001 - the loop must outlive any one bug
                    _log.exception("isolator supervisor: event handler failed")
            self._run_timers()
            self._flush()

    def _start_zygote(self) -> None:
        self._selector.register(self._zygote.start(), selectors.EVENT_READ, self._on_ctrl)

    @property
    def zygote_pid(self) -> int | None:
        return self._zygote.pid

    def _on_wake(self) -> None:
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass
        self._wake_pending = False
        while self._commands:
            self._commands.popleft()()

    def _on_ctrl(self) -> None:
        if self._zygote.sock is None:  # shut down earlier in this same batch of events
            return
        message = self._zygote.receive()
        if message is None:
            self._zygote_lost()
            return
        kind, task_id, *rest = message
        task = self._tasks.get(task_id)
        if task is None:
            return
        if kind == "exited":
            task.pid, task.status = rest
            self._on_frames(task, task.drain(), gone=True)
            self._on_exit(task)
        elif kind == "failed":
            self._fail(task, WorkerStartupError(f"the zygote could not fork: {rest[0]}"))

    def _on_hello(self, task: Task, pid: int) -> None:
        """The child is alive: watch it; a reused worker gets its first task now, after its
        fresh RSS (its recycle baseline) was read."""
        task.pid = pid
        limits = task.limits
        task.watch = Watch(pid, limits.max_mem, limits.soft_mem)
        if task.slot is not None:
            task.oom_before = task.slot.oom_kills()
        self.sampler.watch(task.watch)
        task.baseline_rss = task.watch.last
        if limits.timeout is not None and task.given:
            self._at(time.monotonic() + limits.timeout, task, "timeout")
        if task.stop_reason is not None:  # cancelled before it started
            task.watch.kill()
        elif task.hooks is not None and not task.given:  # a worker started with no task
            task.resolved = True
            task.hooks.on_idle(task, task.watch.last)
        elif not task.write_some():
            self._selector.modify(task.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, task)

    def _on_child(self, task: Task, events: int) -> None:
        if task.done:  # finished earlier in this same batch of events
            return
        if events & selectors.EVENT_WRITE and task.write_some():
            self._selector.modify(task.sock, selectors.EVENT_READ, task)
        if events & selectors.EVENT_READ:
            alive, frames = task.read_some()
            self._on_frames(task, frames)
            if not alive and task.registered:
                self._selector.unregister(task.sock)
                task.registered = False

    def _on_frames(self, task: Task, frames: list[tuple[int, Any]], gone: bool = False) -> None:
        """Frames in the order the child sent them; ``gone``: drained after its exit."""
        for tag, value in frames:
            if tag == _protocol.HELLO:
                # A fresh child may say HELLO, run and die before we read any of it: its
                # death is then the task's, not a failed start.
                task.hello = True
                if not gone:
                    self._on_hello(task, value)
            elif tag != _protocol.IDLE:
                task.message = value
                if not task.resolved:
                    self._resolve(task)
            elif task.hooks is not None and not task.done:
                task.tasks_done += 1
                task.last_job_time = time.monotonic() - task.t0
                if task.promote():  # the job sent behind this one is running now
                    self._begin_job(task)
                if not gone:
                    task.hooks.on_idle(task, value)

    def _stop(self, task: Task, reason: str) -> None:
        """Kill escalation: SIGTERM to the tree now, SIGKILL after the grace period."""
        if task.done:
            return
        task.stop_reason = task.stop_reason or reason
        if task.kill_scheduled:
            return
        task.kill_scheduled = True
        if task.watch is None:  # no HELLO yet, so no pid here: the zygote has it
            self._zygote.send(("kill", task.id))
            return
        task.watch.kill(signal.SIGTERM)
        self._at(time.monotonic() + task.limits.kill_grace, task, "kill")

    # -- timers ------------------------------------------------------------------------

    def _at(self, when: float, task: Task, what: str) -> None:
        """Add a timer (any thread); the loop is woken only if it would sleep past it."""
        wake = self._timers.add(when, task.id, what, task.job)
        if wake and threading.current_thread() is not self._thread:
            self.call_soon(_nothing)

    def _run_timers(self) -> None:
        for task_id, what, job in self._timers.due():
            task = self._tasks.get(task_id)
            if task is None or task.done or job != task.job or \
                    (what == "timeout" and task.resolved):
                continue
            if what == "kill" and task.watch is not None:
                task.watch.kill(signal.SIGKILL)
            elif what == "handshake" and task.watch is None:
                self._stop(task, "startup")
            elif what == "timeout":
                self._stop(task, "timeout")

    # -- endings of the whole -----------------------------------------------------------

    def _zygote_lost(self) -> None:
        if self._zygote.sock is not None:
            self._selector.unregister(self._zygote.sock)
        self._zygote.close()
        orphans = list(self._tasks.values())
        for task in orphans:
            if task.watch is not None:
                task.watch.kill()
                self.sampler.unwatch(task.watch)
        self._zygote.wait()
        if not self._closed:
            # Before the failures below: their callbacks may submit new work at once.
            try:
                self._start_zygote()
            except BaseException as exc:  # noqa: BLE001 - the orphans must still fail
                _log.error("isolator: the zygote could not be restarted: %s", exc)
                # Closed: this loop ends, and the next call starts a new supervisor.
                self._closed = True
                self.sampler.stop()
        for task in orphans:
            self._fail(task, WorkerLost("the isolator zygote died; the task's child was killed"))
        if self._closed and self._cgroups is not None:
            self._cgroups.close()

    def _shutdown(self, done: threading.Event) -> None:
        for task in list(self._tasks.values()):
            task.stop_reason = task.stop_reason or "cancelled"
            if task.watch is not None:
                task.watch.kill()
        self._zygote_lost()  # closing the socket makes the zygote kill everything and exit
        done.set()


def _nothing() -> None:
    """A command that only wakes the loop, so it recomputes its next timer."""


def _stdio() -> tuple[list[int], list[int]]:
    """The caller's current fds 1 and 2 (/dev/null where one is closed), and what was opened."""
    fds: list[int] = []
    opened: list[int] = []
    for fd in (1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            opened.append(os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC))
            fds.append(opened[-1])
    return fds, opened


_lock = threading.Lock()
_supervisor: Supervisor | None = None


def get_supervisor() -> Supervisor:
    """The process's supervisor, started on first use."""
    global _supervisor
    running = _supervisor
    if running is not None and not running._closed:  # the common case, without the lock
        return running
    _platform.require_linux()
    with _lock:
        if _supervisor is None or _supervisor._closed:
            _supervisor = Supervisor()
        return _supervisor


def _forget_after_fork() -> None:
    # A forked copy of the caller has the supervisor's objects but not its threads.
    global _supervisor, _lock
    _supervisor = None
    _lock = threading.Lock()


def _shutdown_at_exit() -> None:
    if _supervisor is not None:
        _supervisor.shutdown()


atexit.register(_shutdown_at_exit)
os.register_at_fork(after_in_child=_forget_after_fork)
