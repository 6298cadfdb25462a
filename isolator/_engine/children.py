"""The engine's records: a ``Job`` (one unit of work on one child) and a ``Child`` (one
process, fresh or a reused worker), with the non-blocking I/O on the child's socket.

Both are owned by the engine thread from the moment the engine accepts them: nothing
else reads or writes them, so they need no lock. A child's lifecycle is one ``State``;
a job's is whether it is ``finished`` (its outcome was read, or its child is gone).
"""

from __future__ import annotations

import enum
import functools
import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from .._model.values import Limits, Reporting
from .._wire import frames as _protocol
from .timers import Timer
from .warden_link import WatchView

_RECV = 1 << 20
_GATHER = 64  # buffers per sendmsg call, well below any system's IOV_MAX


def frame_limit(limits: Limits) -> int:
    """The largest frame a child may send: a result is built in the child's own memory,
    so twice its cap (and a floor for small caps) is room enough; uncapped, the machine's
    memory. Past it the task fails before the caller buffers a byte of it."""
    if limits.max_mem is not None:
        return max(2 * limits.max_mem, 64 << 20)
    return _memory_total()


@functools.cache
def _memory_total() -> int:
    try:
        with open("/proc/meminfo") as fh:
            return int(fh.readline().split()[1]) * 1024  # MemTotal: the first line
    except (OSError, ValueError, IndexError):
        return 1 << 40


class Outcome(NamedTuple):
    """How a job ended: ``value`` is its result when ``ok``, else the exception."""

    ok: bool
    value: Any
    peak: int  # the highest memory use of the child's tree during the job, bytes


class Job:
    """One unit of work: what runs, under which limits, and who hears how it ended.

    ``done(job, outcome)`` is called on the engine thread exactly once; a breach's
    outcome comes after its report was made (off the loop) and attached.
    """

    __slots__ = ("capture", "child", "done", "finished", "learn", "limits", "name",
                 "native_missing", "payload", "raw", "reporting", "started_at", "stop_reason",
                 "t0", "timeout", "warm")

    def __init__(self, payload: bytes, limits: Limits, reporting: Reporting, name: str,
                 warm: tuple[str, ...], done: Callable[[Job, Outcome], None],
                 learn: bool = True, raw: bool = False) -> None:
        self.payload, self.limits, self.reporting = payload, limits, reporting
        # A result stays the child's pickle, for a caller that forwards it unread (a Dask
        # worker: the client, not the worker, can resolve the caller's __main__ in it).
        self.raw = raw
        self.name, self.warm, self.done = name, warm, done
        self.learn = learn  # what its task imports is preloaded for the next of its kind
        self.child: Child | None = None
        self.finished = False
        self.stop_reason: str | None = None  # "timeout", "cancelled" or "startup"
        self.timeout: Timer | None = None
        self.capture: str | None = None  # its memray capture at the deep level
        self.native_missing: str | None = None  # why the deep level has none
        self.started_at, self.t0 = time.time(), time.monotonic()

    def begin(self) -> None:
        """It starts running now (a job sent ahead starts when the one before ends)."""
        self.started_at, self.t0 = time.time(), time.monotonic()


class State(enum.Enum):
    """Where a child is in its life."""

    STARTING = "starting"  # its fork was asked for; no HELLO yet
    BUSY = "busy"  # running a job, or tidying up after one (a reused worker's IDLE is due)
    IDLE = "idle"  # a reused worker with no job
    RETIRING = "retiring"  # told to exit once it has run what it was sent
    GONE = "gone"  # exited or lost; nothing more will be read


class Owner(Protocol):
    """Who hears about a reused worker between its jobs (a pool's ``Workers``)."""

    def on_idle(self, child: Child, rss: int) -> None: ...

    def on_exit(self, child: Child) -> None: ...


class Child:
    """One child process: its socket, its current job and the jobs sent behind it."""

    def __init__(self, child_id: int, sock: Any, limits: Limits, reporting: Reporting,
                 slot: Any, owner: Owner | None) -> None:
        self.id = child_id
        self.sock = sock
        self.limits, self.reporting = limits, reporting
        self.slot = slot  # its memory cgroup, if that layer is on
        self.theirs: Any = None  # the child's end of the socket, until the fork request
        self.owner = owner  # None: a fresh child for one job
        self.state = State.STARTING
        self.current: Job | None = None
        self.ahead: deque[Job] = deque()  # sent behind the current one, oldest first
        self.reader = _protocol.FrameReader(_protocol.FROM_CHILD, frame_limit(limits))
        self.outgoing: deque[bytes | memoryview] = deque()
        self.registered = True  # its socket is in the engine's selector
        self.awaiting_write = False  # the selector watches it for room to write more
        self.hello = False  # it said HELLO (read before or after its exit)
        self.pid: int | None = None
        self.status = 0  # its wait status, once the zygote reaped it
        self.watch: WatchView | None = None
        self.handshake: Timer | None = None
        self.kill: Timer | None = None  # SIGKILL after the grace period, once scheduled
        self.killing = False  # a kill was asked for (maybe before there was a pid)
        self.oom_before = 0
        self.tainted = False  # a job of it breached its cap: it takes no other
        self.tasks_done = 0
        self.baseline_rss = 0  # its RSS at HELLO, before any task: its recycle baseline
        self.last_rss = 0  # its RSS at its last IDLE
        self.last_job_time = 0.0  # seconds from its last job's start to its IDLE
        self.last_name = "<task>"  # the function its last job ran, for leak reports

    @property
    def reused(self) -> bool:
        return self.owner is not None

    @property
    def jobs(self) -> int:
        """Jobs given to it and not yet followed by its IDLE: the current one and those
        sent behind it."""
        return (self.current is not None) + len(self.ahead)

    @property
    def unfinished(self) -> int:
        """Jobs given to it whose outcome has not been read yet."""
        current = self.current is not None and not self.current.finished
        return current + len(self.ahead)

    def queue(self, job: Job) -> None:
        """Its frames go into the outgoing buffer (written by ``write_some``)."""
        if job.capture is not None:
            self.outgoing.extend(_protocol.frame(_protocol.CAPTURE, job.capture.encode()))
        self.outgoing.extend(_protocol.frame(_protocol.TASK, job.payload))

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
        """Frames in arrival order: (HELLO, (pid, rss)), (IDLE, rss) or (tag, (tag, body))."""
        frames: list[tuple[int, Any]] = []
        for tag, body in self.reader.feed(data):
            if tag == _protocol.HELLO:
                frames.append((tag, (int.from_bytes(body[:8], "big"),
                                     int.from_bytes(body[8:16], "big"))))
            elif tag == _protocol.IDLE:
                frames.append((tag, int.from_bytes(body, "big")))
            else:
                frames.append((tag, (tag, body)))
        return frames
