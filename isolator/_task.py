"""The supervisor's record of one task and the non-blocking I/O on its socket."""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future
from typing import Any, Protocol

from . import _protocol
from ._options import Limits
from ._sampler import Watch

_RECV = 1 << 20


class TaskFuture(Future[Any]):
    """The supervisor's future for one call; ``peak`` is the tree's highest memory use."""

    peak: int = 0
    worker: Task | None = None  # the reused worker that ran it, if any
    task: Task | None = None  # the supervisor's record, for live views (its watch)


class WorkerHooks(Protocol):
    """What the owner of a reused worker hears (in the supervisor thread)."""

    def on_idle(self, worker: Task, rss: int) -> None: ...

    def on_exit(self, worker: Task) -> None: ...


class Task:
    """State of one call, owned by the supervisor thread once submitted."""

    def __init__(self, task_id: int, limits: Limits, sock: Any, payload: bytes | None,
                 slot: Any, name: str, hooks: WorkerHooks | None = None) -> None:
        self.id = task_id
        self.name = name
        self.started_at = time.time()
        self.t0 = time.monotonic()
        self.limits = limits
        self.sock = sock
        self.slot = slot
        self.future = TaskFuture()
        self.future.task = self
        self.reader = _protocol.FrameReader()
        self.outgoing: deque[memoryview] = deque()
        if payload is not None:
            self._queue_task(payload)
        self.hooks = hooks
        self.job = 0
        self.idle_rss: int | None = None
        self.tasks_done = 0
        self.baseline_rss = 0
        self.tainted = False  # a reused worker whose task breached: never reused again
        self.capture: str | None = None  # memray capture of the deep forensics level
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

    def _queue_task(self, payload: bytes) -> None:
        self.outgoing.append(memoryview(_protocol.header(_protocol.TASK, len(payload))))
        self.outgoing.append(memoryview(payload))

    def next_job(self, future: TaskFuture, payload: bytes, limits: Limits, name: str) -> None:
        """A reused worker's next task: a fresh future and fresh per-task facts."""
        self.job += 1
        future.worker = future.task = self
        self.future, self.limits, self.name = future, limits, name
        self.message, self.resolved, self.stop_reason = None, False, None
        self.kill_scheduled = False
        self.started_at, self.t0 = time.time(), time.monotonic()
        self._queue_task(payload)

    def write_some(self) -> bool:
        """Send what the socket takes now; True once all is sent or the child is gone."""
        while self.outgoing:
            view = self.outgoing[0]
            try:
                sent = self.sock.send(view[:_RECV])
            except BlockingIOError:
                return False
            except OSError:  # the child died; its exit explains why
                self.outgoing.clear()
                return True
            if sent == len(view):
                self.outgoing.popleft()
            else:
                self.outgoing[0] = view[sent:]
        return True

    def read_some(self) -> tuple[bool, int | None]:
        """Read what has arrived: (False at end of file, the pid if HELLO came)."""
        try:
            data = self.sock.recv(_RECV)
        except BlockingIOError:
            return True, None
        except OSError:
            data = b""
        if not data:
            return False, None
        return True, self._feed(data)

    def drain(self) -> None:
        """After the exit everything the child wrote is in the socket: read it, never wait."""
        while self.registered and self.message is None:
            try:
                data = self.sock.recv(_RECV)
            except OSError:  # BlockingIOError included: nothing more is coming
                return
            if not data:
                return
            self._feed(data)

    def _feed(self, data: bytes) -> int | None:
        pid = None
        for tag, body in self.reader.feed(data):
            if tag == _protocol.HELLO:
                pid = int.from_bytes(body, "big")
            elif tag == _protocol.IDLE:
                self.idle_rss = int.from_bytes(body, "big")
            else:
                self.message = (tag, body)
        return pid
