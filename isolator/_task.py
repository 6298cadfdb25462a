"""The supervisor's record of one task and the non-blocking I/O on its socket."""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from . import _protocol
from ._options import Limits
from ._sampler import Watch

_RECV = 1 << 20
_GATHER = 64  # buffers per sendmsg call, well below any system's IOV_MAX


class TaskFuture(Future[Any]):
    """The supervisor's future for one call; ``peak`` is the tree's highest memory use."""

    peak: int = 0
    worker: Task | None = None  # the reused worker that ran it, if any
    task: Task | None = None  # the supervisor's record, for live views (its watch)


class JobFuture:
    """The outcome of one task on a reused worker, for the callback its owner gave.

    A ``Future`` without the waiting: completed and read in the supervisor thread only,
    with its callback known from the start, so it needs no lock (a ``Future`` makes a
    Condition and an RLock, per task, that nobody would wait on).
    """

    __slots__ = ("_callback", "_done", "_exception", "_value", "peak", "task", "worker")

    def __init__(self, callback: Callable[[JobFuture], None] | None = None) -> None:
        self._callback = callback
        self._value: Any = None
        self._exception: BaseException | None = None
        self._done = False
        self.peak = 0
        self.worker: Task | None = None
        self.task: Task | None = None

    def set_running_or_notify_cancel(self) -> bool:
        return not self._done

    def set_result(self, value: Any) -> None:
        self._value = value
        self._finish()

    def set_exception(self, exc: BaseException) -> None:
        self._exception = exc
        self._finish()

    def _finish(self) -> None:
        self._done = True
        if self._callback is not None:
            self._callback(self)

    def done(self) -> bool:
        return self._done

    def exception(self) -> BaseException | None:
        return self._exception

    def result(self) -> Any:
        if self._exception is not None:
            raise self._exception
        return self._value


AnyFuture = TaskFuture | JobFuture


class WorkerHooks(Protocol):
    """What the owner of a reused worker hears (in the supervisor thread)."""

    def on_idle(self, worker: Task, rss: int) -> None: ...

    def on_exit(self, worker: Task) -> None: ...


class Task:
    """State of one call, owned by the supervisor thread once submitted."""

    def __init__(self, task_id: int, limits: Limits, sock: Any, payload: bytes | None,
                 slot: Any, name: str, hooks: WorkerHooks | None = None,
                 capture: str | None = None) -> None:
        self.id = task_id
        self.name = name
        self.started_at = time.time()
        self.t0 = time.monotonic()
        self.limits = limits
        self.sock = sock
        self.slot = slot
        self.future: AnyFuture = TaskFuture()
        self.future.task = self
        self.reader = _protocol.FrameReader()
        self.outgoing: deque[bytes | memoryview] = deque()
        self.given = payload is not None  # it was started with a task, not idle
        self.hello = False  # the child said HELLO (read before or after its exit)
        if payload is not None:
            self._queue_task(payload, capture)
        self.hooks = hooks
        self.job = 0
        self.tasks_done = 0
        self.baseline_rss = 0
        self.tainted = False  # a reused worker whose task breached: never reused again
        # The current task's memray capture at the deep forensics level: complete when
        # its outcome arrives (the child closes it first), or once a killed child is gone.
        self.capture = capture
        self.native_missing: str | None = None  # why the deep level has no capture
        if hooks is not None:
            self.future.worker = self
        self.pid: int | None = None
        self.watch: Watch | None = None
        self.message: tuple[int, bytes] | None = None
        self.status: int | None = None
        self.stop_reason: str | None = None
        self.kill_scheduled = False
        self.resolved = False
        self.done = False
        self.registered = True
        self.oom_before = 0
        # A reused worker's jobs sent behind the running one, oldest first: the worker
        # reads the next TASK as soon as it has sent IDLE, so it never waits for us.
        self.queued: deque[tuple[AnyFuture, Limits, str, str | None]] = deque()
        # The owner's count of jobs given to this worker and not yet reported IDLE.
        self.assigned = 0 if payload is None else 1
        self.unfinished = self.assigned  # and of those, the ones with no outcome yet
        self.retiring = False  # the owner has let it go; it exits after what it was sent
        self.last_rss = 0  # its RSS at its last IDLE
        self.last_job_time = 0.0  # seconds from its last job's start (or send) to its IDLE

    def _queue_task(self, payload: bytes, capture: str | None = None) -> None:
        if capture is not None:
            self.outgoing.extend(_protocol.frame(_protocol.CAPTURE, capture.encode()))
        self.outgoing.extend(_protocol.frame(_protocol.TASK, payload))

    @property
    def idle(self) -> bool:
        """A reused worker with nothing running and nothing sent behind it."""
        return self.resolved and not self.queued and self.watch is not None

    def next_job(self, future: AnyFuture, payload: bytes, limits: Limits, name: str,
                 capture: str | None = None) -> None:
        """An idle reused worker's next task: a fresh future and fresh per-task facts."""
        self._become(future, limits, name, capture)
        self._queue_task(payload, capture)

    def queue_job(self, future: AnyFuture, payload: bytes, limits: Limits, name: str,
                  capture: str | None = None) -> None:
        """Send a busy worker its next task now; it becomes current at the worker's IDLE."""
        self.queued.append((future, limits, name, capture))
        self._queue_task(payload, capture)

    def promote(self) -> bool:
        """At IDLE: the job sent behind the finished one is now running; False if none."""
        if not self.queued:
            return False
        self._become(*self.queued.popleft())
        return True

    def _become(self, future: AnyFuture, limits: Limits, name: str,
                capture: str | None) -> None:
        self.job += 1
        self.capture = capture
        self.future, self.limits, self.name = future, limits, name
        self.message, self.resolved, self.stop_reason = None, False, None
        self.kill_scheduled = False
        self.started_at, self.t0 = time.time(), time.monotonic()

    def write_some(self) -> bool:
        """Send what the socket takes now; True once all is sent or the child is gone."""
        while self.outgoing:
            try:
                # Gathered: the frames queued since the last write go out in one call.
                sent = self.sock.sendmsg(list(itertools.islice(self.outgoing, _GATHER)))
            except BlockingIOError:
                return False
            except OSError:  # the child died; its exit explains why
                self.outgoing.clear()
                return True
            while sent:
                view = self.outgoing[0]
                if sent < len(view):
                    self.outgoing[0] = memoryview(view)[sent:]
                    break
                sent -= len(view)
                self.outgoing.popleft()
        return True

    def read_some(self) -> tuple[bool, list[tuple[int, Any]]]:
        """Read what has arrived: (False at end of file, the frames it completed)."""
        try:
            data = self.sock.recv(_RECV)
        except BlockingIOError:
            return True, []
        except OSError:
            data = b""
        if not data:
            return False, []
        return True, self._feed(data)

    def drain(self) -> list[tuple[int, Any]]:
        """After the exit everything the child wrote is in the socket: read it, never wait."""
        frames: list[tuple[int, Any]] = []
        while self.registered:
            try:
                data = self.sock.recv(_RECV)
            except OSError:  # BlockingIOError included: nothing more is coming
                break
            if not data:
                break
            frames += self._feed(data)
        return frames

    def _feed(self, data: bytes) -> list[tuple[int, Any]]:
        """Frames in arrival order: (HELLO, pid), (IDLE, rss) or (tag, (tag, body))."""
        frames: list[tuple[int, Any]] = []
        for tag, body in self.reader.feed(data):
            if tag == _protocol.HELLO or tag == _protocol.IDLE:
                frames.append((tag, int.from_bytes(body, "big")))
            else:
                frames.append((tag, (tag, body)))
        return frames
