"""The engine: one thread that owns the zygote, every child, every job and every pool's
scheduler, as CPython's ``_ExecutorManagerThread`` owns its pending work items.

::

    caller threads ──call_soon(command)──┐              zygote (fresh interpreter,
      │ wait on futures                  ▼              single-threaded, subreaper)
      │                engine thread: selectors loop ── fork request ──▶ │ fork()
      │                  ├─ wake pipe: commands (submit, cancel, ask...)  ▼
      │                  ├─ zygote socket: exited / failed              child
      │                  ├─ child sockets: HELLO, TASK, RESULT/RAISED, IDLE
      │                  ├─ timers: handshakes, timeouts, kill grace, retry waits
      │                  ├─ schedulers: the pools' units, on the same thread
      │                  └─ warden socket: its loss (it answers only when asked)
      │                warden (a process): RSS of each child's tree; soft signal, hard kill
      │                reports thread: breach and leak reports, memray captures, on_report
      └◀── callbacks thread: done-callbacks, progress hooks

Caller threads only enqueue commands and wait on futures; only the engine thread reads
or writes engine state, so there are no locks in it. Its loop reads as a sentence: wait
for a child, the zygote, a command or a deadline; handle what came; fire what is due;
write what the workers were given. Whatever one child's messages do (a result whose
unpickling raises ``SystemExit``, a bug of ours) fails that child's task and the loop
goes on; if the loop itself ever dies, every pending task fails at once and the next
call starts a new engine. What takes long (reports, user callbacks) runs off the loop.

The engine thread also starts the zygote, so the zygote's parent-death signal is tied
to a thread that lives as long as the engine.
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
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from .._errors import MemoryLimitExceeded, NotStarted, PoolClosed, WorkerLost, WorkerStartupError
from .._model.values import Limits, Reporting
from .._wire import frames as _protocol
from .._wire import platform as _platform
from .._wire.spec import ChildSpec
from . import native as _native
from .cgroups.layer import CgroupLayer
from .children import Child, Job, Outcome, Owner, State, frame_limit
from .learning import Learning
from .mailbox import Mailbox
from .offload import IsolatorFuture, Offload, mark_engine_thread
from .outcome import Ending, resolve
from .postmortem import Facts, build
from .timers import Timer, Timers
from .vigil import Vigil
from .warden_link import WardenLink
from .zygote_link import ZygoteLink

_log = logging.getLogger("isolator")
T = TypeVar("T")


class Abandonable(Protocol):
    """What the engine tells each pool's scheduler if its loop dies."""

    def abandon(self, error: BaseException) -> None: ...


class Engine:
    """One per process: started on first use, stopped at exit."""

    def __init__(self) -> None:
        self._mailbox = Mailbox()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._mailbox.fd, selectors.EVENT_READ, self._on_wake)
        self.timers = Timers()
        self._zygote = ZygoteLink()
        self._children: dict[int, Child] = {}
        self._ids = itertools.count(1)
        self._unsent: dict[Child, None] = {}  # children with frames to write this round
        self._schedulers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._cgroups = CgroupLayer()
        self.learning = Learning()
        self.preloaded: list[str] = []  # what the zygote imported for its children
        self.refused: dict[str, str] = {}  # and what it would not, with why
        self.closed = False  # no new work: shut down, or the loop died
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.warden = WardenLink()
        self._vigil = Vigil(self.timers, self._zygote, self.warden,
                            lambda: bool(self._children), self._zygote_lost)
        self.reports = Offload("isolator-reports")
        self.callbacks = Offload("isolator-callbacks")
        self._thread = threading.Thread(target=self._run, name="isolator-engine", daemon=True)
        self._thread.start()
        if not self._ready.wait(60) or self._startup_error is not None:
            raise WorkerStartupError(f"the zygote did not start: {self._startup_error}")

    # -- any thread ----------------------------------------------------------------------

    def call_soon(self, run: Callable[[], object],
                  fail: Callable[[BaseException], object] | None = None) -> None:
        """Run ``run()`` on the engine thread; ``fail(error)`` instead if it never will."""
        if not self._mailbox.post(run, fail) and fail is not None:
            fail(PoolClosed("the isolator engine has stopped"))

    def ask(self, question: Callable[[], T], timeout: float | None = 30.0) -> T:
        """``question()`` evaluated on the engine thread, for a snapshot of its state."""
        if self.on_thread():
            return question()
        answer: Future[T] = Future()
        self.call_soon(lambda: answer.set_result(question()), answer.set_exception)
        return answer.result(timeout)

    def submit(self, payload: bytes, limits: Limits, reporting: Reporting,
               warm: tuple[str, ...], name: str, learn: bool = True,
               raw: bool = False) -> IsolatorFuture[Any]:
        """One call of ``name`` in a fresh child (any thread); the future resolves with
        its outcome, a breach's once its report is attached. ``raw``: a result is left
        as the child's pickle (bytes), for a caller that forwards it elsewhere."""
        future: IsolatorFuture[Any] = IsolatorFuture()

        def done(job: Job, outcome: Outcome) -> None:
            future.peak = outcome.peak
            if future.set_running_or_notify_cancel():
                if outcome.ok:
                    future.set_result(outcome.value)
                else:
                    future.set_exception(outcome.value)

        job = Job(payload, limits, reporting, name, warm, done, learn, raw)
        future.job = job
        self.call_soon(lambda: self.start_fresh(job), future.set_exception)
        return future

    def cancel(self, future: Future[Any]) -> None:
        """Kill the child running the work behind ``future`` (SIGTERM, grace, SIGKILL)."""
        job = getattr(future, "job", None)
        if job is not None:
            self.call_soon(lambda: self.stop(job, "cancelled"))

    def on_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def shutdown(self, timeout: float = 3.0) -> None:
        """Kill every child, stop the zygote and the threads; idempotent."""
        done = threading.Event()
        self.call_soon(lambda: self._shutdown(done), lambda _: done.set())
        done.wait(timeout)

    @property
    def zygote_pid(self) -> int | None:
        return self._zygote.pid

    @property
    def warden_pid(self) -> int | None:
        return self.warden.pid

    # -- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        mark_engine_thread(self.callbacks)
        try:
            self.warden.spawn()  # it starts while the zygote does
            self._selector.register(self._zygote.start(), selectors.EVENT_READ, self._on_ctrl)
            self._selector.register(self.warden.ready(), selectors.EVENT_READ, self._on_warden)
            self._introduce_helpers()
        except BaseException as exc:  # noqa: BLE001 - reported to the thread that waits
            self._startup_error = exc
            self.closed = True
            self._close()  # nobody else has this object: __init__ raises
            return
        finally:
            self._ready.set()
        try:
            while not (self.closed and self._zygote.sock is None):
                self._turn()
        except BaseException as exc:  # noqa: BLE001 - the engine's last word
            self._die(exc)
        self._close()

    def _turn(self) -> None:
        ready = self._selector.select(self.timers.sleep_for())
        # Children before the zygote: a child that said HELLO, ran and exited at once has
        # its frames and its exit in the same round, and read first they are a task that
        # ran (watched, with its peak), not one whose HELLO is found after its death.
        ready.sort(key=lambda item: not isinstance(item[0].data, Child))
        for key, events in ready:
            self._handle(key.data, events)
        for action in self.timers.due():
            self._guarded(action)
        if self.warden.broken:
            self._warden_lost()
        self._flush()

    def _handle(self, handler: Any, events: int) -> None:
        try:
            if isinstance(handler, Child):
                self._on_child(handler, events)
            else:
                handler()
        except BaseException as exc:  # noqa: BLE001 - one child's trouble is its own
            if isinstance(handler, Child):
                self._broken(handler, exc)
            else:
                _log.exception("isolator: the engine's handler %r failed", handler)

    def _guarded(self, action: Callable[[], object],
                 fail: Callable[[BaseException], object] | None = None) -> None:
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - the loop must outlive any one bug
            _log.exception("isolator: an engine action failed: %r", action)
            if fail is not None:
                self._guarded(functools.partial(fail, exc))

    def _on_wake(self) -> None:
        for run, fail in self._mailbox.take():
            self._guarded(run, fail)

    def _on_ctrl(self) -> None:
        message = self._zygote.receive()
        if message is None:
            self._zygote_lost()
            return
        if message[0] == "preloaded":
            self._on_preloaded(*message[1:])
            return
        if message[0] == "pong":
            self._vigil.pong()
            return
        kind, child_id, *rest = message
        child = self._children.get(child_id)
        if child is None:
            return
        if kind == "exited":
            child.pid, child.status = rest
            self._on_frames(child, child.drain(), gone=True)
            self._on_exit(child)
        elif kind == "failed":
            self._lost(child, WorkerStartupError(f"the zygote could not fork: {rest[0]}"))

    def _on_preloaded(self, loaded: list[str], refused: dict[str, str]) -> None:
        self.preloaded += loaded
        for module, why in refused.items():
            if module not in self.refused:  # said once: it is never tried again
                _log.warning("isolator: the zygote does not preload %s: %s", module, why)
        self.refused.update(refused)

    def _on_child(self, child: Child, events: int) -> None:
        if child.state is State.GONE:  # finished earlier in this same round of events
            return
        if events & selectors.EVENT_WRITE:
            self._write(child)
        if events & selectors.EVENT_READ:
            alive, frames = child.read_some()
            self._on_frames(child, frames)
            if not alive and child.registered:
                self._selector.unregister(child.sock)
                child.registered = False

    def _flush(self) -> None:
        while self._unsent:
            self._write(self._unsent.popitem()[0])

    def _write(self, child: Child) -> None:
        if child.state is State.GONE or child.watch is None:
            return  # a reused worker is written to once its fresh RSS was read
        done = child.write_some()
        if done and child.state is State.RETIRING:
            _shut_write(child)
        # What the socket did not take now is written when it can take more: the loop
        # watches for that only while something is left.
        if child.registered and child.awaiting_write == done:
            child.awaiting_write = not done
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if not done else 0)
            self._selector.modify(child.sock, events, child)

    # -- what schedulers and calls ask for (engine thread) -------------------------------

    def adopt(self, scheduler: Abandonable) -> None:
        """Know a pool's scheduler, to tell it if the loop ever dies."""
        self._schedulers.add(scheduler)

    def at(self, when: float, action: Callable[[], None]) -> Timer:
        return self.timers.at(when, action)

    def cancel_timer(self, timer: Timer | None) -> None:
        self.timers.cancel(timer)

    def post_callback(self, fn: Callable[..., Any], *args: Any) -> None:
        self.callbacks.post(fn, *args)

    def post_report(self, fn: Callable[..., Any], *args: Any) -> None:
        self.reports.post(fn, *args)

    def start_fresh(self, job: Job) -> None:
        """A new child for ``job`` alone: its task is in its socket before it exists."""
        child = self._new_child(job.limits, job.reporting, None, job)
        if child is not None:
            child.write_some()  # it reads its task right after HELLO, without waiting for us
            self._fork(child, self._warm(job))

    def start_worker(self, owner: Owner, limits: Limits, reporting: Reporting,
                     warm: tuple[str, ...], job: Job | None = None) -> Child | None:
        """A new reused worker, with a first job or idle; None when it could not start
        (the job has failed then)."""
        child = self._new_child(limits, reporting, owner, job)
        if child is not None:
            self._fork(child, self._warm(job) if job is not None else warm)
        return child

    def _warm(self, job: Job) -> tuple[str, ...]:
        """What the zygote imports before forking ``job``'s child: what the caller named
        and what earlier tasks of the same function imported."""
        return (*job.warm, *self.learning.modules_for(job.name)) if job.learn else job.warm

    def give(self, child: Child, job: Job) -> None:
        """A reused worker's next job; a busy one is sent it now and runs it next."""
        if child.state is State.GONE or child.state is State.RETIRING:
            self._later(job, Outcome(False, NotStarted("the reused worker exited before its "
                                                       "next task"), 0))
            return
        self._assign(child, job)
        if child.current is job and child.watch is not None:  # it was idle
            child.state = State.BUSY
            self._begin(child, job, fresh_watch=False)
        self._unsent[child] = None

    def retire(self, child: Child) -> None:
        """Let a reused worker go: it reads EOF after what it was sent, and exits."""
        if child.state is State.GONE:
            return
        child.state = State.RETIRING
        if not child.outgoing and child.watch is not None:
            _shut_write(child)

    def stop(self, job: Job, reason: str) -> None:
        """Kill the child running ``job`` (SIGTERM, grace, SIGKILL); a job sent ahead and
        not started yet is left to fail with its worker."""
        child = job.child
        if job.finished or child is None or child.current is not job:
            return
        job.stop_reason = job.stop_reason or reason
        self._kill(child, graceful=True)

    # -- how a child lives -----------------------------------------------------------------

    def _new_child(self, limits: Limits, reporting: Reporting, owner: Owner | None,
                   job: Job | None) -> Child | None:
        try:
            if self.closed:
                raise PoolClosed("the isolator engine has shut down")
            slot = self._cgroups.slot_for(job.limits if job is not None else limits)
        except Exception as exc:  # noqa: BLE001 - it fails the job, not the engine
            if job is not None:
                self._later(job, Outcome(False, exc, 0))
            return None
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        child = Child(next(self._ids), ours, limits, reporting, slot, owner)
        child.theirs = theirs
        self._children[child.id] = child
        self._selector.register(ours, selectors.EVENT_READ, child)
        self._vigil.child_started()
        child.handshake = self.timers.at(time.monotonic() + limits.startup_timeout,
                                         lambda: self._late(child))
        if job is not None:
            self._assign(child, job)
        return child

    def _fork(self, child: Child, warm: tuple[str, ...]) -> None:
        limits, reporting = child.limits, child.reporting
        spec = ChildSpec(
            limit=limits.max_mem,
            soft=limits.soft_mem,
            rlimit_data=limits.max_mem if limits.rlimit_data else None,
            cgroup_procs=child.slot.procs_file if child.slot is not None else None,
            cwd=os.getcwd(),
            reuse=child.reused,
            # A reused worker may be examined for leaks even without a cap.
            forensics=reporting.forensics if limits.max_mem is not None or child.reused
            else "off",
        )
        if _native.wanted(reporting.forensics, limits.max_mem) and _native.available():
            warm = (*warm, "memray")  # imported once, not by every tracked task
        stdio, opened = _stdio()
        theirs = child.theirs
        try:
            self._zygote.send(("fork", child.id, spec, warm), [theirs.fileno(), *stdio])
        except (OSError, WorkerStartupError) as exc:
            failure = WorkerStartupError(f"fork request failed: {exc}")
            self.call_soon(lambda: self._lost(child, failure))  # not inside the caller's start
        finally:
            theirs.close()
            child.theirs = None
            for fd in opened:
                os.close(fd)

    def _assign(self, child: Child, job: Job) -> None:
        job.child = child
        job.capture, job.native_missing = _native.capture_for(job.reporting.forensics,
                                                              job.limits.max_mem)
        child.queue(job)
        if child.current is None:
            child.current = job
        else:
            child.ahead.append(job)

    def _late(self, child: Child) -> None:
        child.handshake = None
        if child.state is State.STARTING and not child.hello:
            if child.current is not None:
                child.current.stop_reason = "startup"
            self._kill(child, graceful=False)
            self._vigil.ping_zygote()  # the kill ends the job only if the zygote serves

    def _on_frames(self, child: Child, frames: list[tuple[int, Any]], gone: bool = False
                   ) -> None:
        """Frames in the order the child sent them; ``gone``: drained after its exit."""
        for tag, value in frames:
            if tag == _protocol.HELLO:
                # A fresh child may say HELLO, run and die before we read any of it: its
                # death is then the task's, not a failed start.
                child.hello = True
                if not gone:
                    self._on_hello(child, *value)
            elif tag == _protocol.IDLE:
                self._on_idle(child, value, gone)
            elif tag == _protocol.LEARNED:
                self._on_learned(child, value[1])
            else:
                self._on_outcome(child, value)

    def _on_hello(self, child: Child, pid: int, rss: int) -> None:
        """The child is alive: watch it; a reused worker gets its first job now, after its
        fresh RSS (its recycle baseline) was read."""
        child.pid = pid
        self.timers.cancel(child.handshake)
        child.handshake = None
        job = child.current
        limits = job.limits if job is not None else child.limits
        if child.slot is not None:
            child.oom_before = child.slot.oom_kills()
        child.watch = self.warden.watch(pid, limits.max_mem, limits.soft_mem, rss)
        # Its RSS as it reports it between tasks (all of it, the zygote's pages too): the
        # baseline its recycle policy measures growth from.
        child.baseline_rss = rss
        if child.killing:  # stopped before it started
            child.watch.kill()
        elif job is None:
            if child.state is State.STARTING:
                child.state = State.IDLE
            if child.owner is not None:
                child.owner.on_idle(child, child.baseline_rss)
        else:
            if child.state is State.STARTING:
                child.state = State.BUSY
            self._begin(child, job, fresh_watch=True)
            self._unsent[child] = None
        if child.state is State.RETIRING and not child.outgoing:
            _shut_write(child)

    def _begin(self, child: Child, job: Job, fresh_watch: bool) -> None:
        """``job`` becomes the one the child runs: its own cap, peak and deadline."""
        job.begin()
        limits = job.limits
        child.reader.limit = frame_limit(limits)
        if not fresh_watch and child.watch is not None:
            self.warden.reset(child.watch, limits.max_mem, limits.soft_mem)
            if child.slot is not None and limits.max_mem is not None:
                child.slot.set_limit(limits.max_mem)
        if limits.timeout is not None:
            job.timeout = self.timers.at(time.monotonic() + limits.timeout,
                                         lambda: self.stop(job, "timeout"))

    def _on_outcome(self, child: Child, message: tuple[int, bytes]) -> None:
        job = child.current
        if job is None or job.finished:
            _log.warning("isolator: child %s sent an outcome with no task running", child.pid)
            return
        if child.watch is not None:  # what the warden saw, before the outcome is judged
            self.warden.settle(child.watch)
        ok, value, heap = resolve(message, lambda: _ending(child, job, False), job.raw)
        self._finish(job, ok, value, heap)

    def _on_learned(self, child: Child, body: bytes) -> None:
        job = child.current
        if job is None or not job.learn:
            return
        modules = body.decode().split("\n")
        self.learning.learn(job.name, modules)
        # Now, not at the next fork request: the zygote imports while the other
        # children run, and the next of its kind is forked warm without waiting.
        try:
            self._zygote.send(("warm", tuple(modules), job.limits.max_mem))
        except (OSError, WorkerStartupError):  # it is gone: its loss is on the way
            pass

    def _on_idle(self, child: Child, rss: int, gone: bool) -> None:
        job = child.current
        if child.owner is None or job is None or not job.finished:
            return
        child.tasks_done += 1
        child.last_job_time = time.monotonic() - job.t0
        child.last_name = job.name
        child.current = child.ahead.popleft() if child.ahead else None
        if child.current is not None:  # the job sent behind this one is running now
            self._begin(child, child.current, fresh_watch=False)
        elif child.state is State.BUSY:
            child.state = State.IDLE
        if not gone:
            child.owner.on_idle(child, rss)

    # -- how a job ends ----------------------------------------------------------------------

    def _finish(self, job: Job, ok: bool, value: Any, heap: dict[str, Any] | None = None
                ) -> None:
        """The job's outcome is known: a breach gets its report first (off the loop)."""
        job.finished = True
        self.timers.cancel(job.timeout)
        job.timeout = None
        child = job.child
        watch = child.watch if child is not None else None
        breach = isinstance(value, MemoryLimitExceeded)
        if watch is not None:
            self.warden.settle(watch, timeline=breach)
        peak = watch.peak if watch is not None else 0
        capture, job.capture = job.capture, None
        if isinstance(value, MemoryLimitExceeded):
            if child is not None:
                child.tainted = True  # a worker that breached is never reused
            soft_sent = False
            if watch is not None:
                value.timeline = list(watch.timeline)
                soft_sent = watch.soft_sent
            facts = Facts(job.name, job.started_at, time.monotonic() - job.t0, job.limits,
                          job.reporting, heap, capture, job.native_missing, soft_sent)
            self.reports.post(self._report, job, value, facts, peak)
            return
        if capture is not None:
            self.reports.post(_native.discard, capture)
        self._deliver(job, Outcome(ok, value, peak))

    def _report(self, job: Job, exc: MemoryLimitExceeded, facts: Facts, peak: int) -> None:
        """On the reports thread: the breach's report, then its outcome on the loop (or
        here, if the loop has ended meanwhile)."""
        try:
            build(exc, facts)
        except BaseException:  # noqa: BLE001 - a breach without its report beats none
            _log.exception("isolator: the report of a breach could not be made")
        outcome = Outcome(False, exc, peak)
        self.call_soon(lambda: self._deliver(job, outcome),
                       lambda _: self._deliver(job, outcome))

    def _later(self, job: Job, outcome: Outcome) -> None:
        """Deliver on the next round, not inside the owner's own call that started it."""
        self.call_soon(lambda: self._deliver(job, outcome), lambda _: self._deliver(job, outcome))

    def _deliver(self, job: Job, outcome: Outcome) -> None:
        try:
            job.done(job, outcome)
        except BaseException:  # noqa: BLE001 - an owner's bug must not end the loop
            _log.exception("isolator: delivering the outcome of %s failed", job.name)
        # Job and child refer to each other: without this, what the task was sent and
        # what it returned would wait for the garbage collector to be freed.
        job.child = None
        job.payload = b""

    def _on_exit(self, child: Child) -> None:
        """The zygote reaped the child (and killed its group) and what it sent before it
        died was read: let its resources go, end its jobs."""
        child.state = State.GONE  # from now on no job is given to it
        oom_killed = False
        self.timers.cancel(child.kill)
        job = child.current
        if child.watch is not None:  # it kills what is left of the tree: setsid escapees
            self.warden.unwatch(child.watch, ask=job is not None and not job.finished)
        elif child.pid:  # it died before its HELLO: the zygote had told the warden of it
            self.warden.send(("unwatch", child.pid, False))
        if child.slot is not None:
            oom_killed = child.slot.oom_kills() > child.oom_before
            self._release_slot(child)
        if job is not None and not job.finished:
            ok, value, _ = resolve(None, lambda: _ending(child, job, oom_killed))
            self._finish(job, ok, value)
        self._end(child, NotStarted("the reused worker exited before this task started"))

    def _lost(self, child: Child, exc: BaseException) -> None:
        """The child is gone or never was, and no exit will be reported for it."""
        child.state = State.GONE
        if child.slot is not None:
            self._release_slot(child)
        job = child.current
        if job is not None and not job.finished:
            self._finish(job, False, exc)
        self._end(child, exc)

    def _broken(self, child: Child, exc: BaseException) -> None:
        """Handling this child's messages raised: it fails its task, the loop goes on."""
        _log.error("isolator: a child's messages could not be handled", exc_info=exc)
        if child.registered:
            self._selector.unregister(child.sock)
            child.registered = False
        self._kill(child, graceful=False)
        job = child.current
        if job is not None and not job.finished:
            self._finish(job, False, WorkerLost(
                f"isolator could not handle what the child (pid {child.pid}) sent: "
                f"{type(exc).__name__}: {exc}; it was killed", pid=child.pid))

    def _end(self, child: Child, not_started: BaseException) -> None:
        """Forget the child; its owner hears first, then the jobs sent behind its last one,
        which never started, fail ``not_started`` (the owner may run them elsewhere)."""
        child.state = State.GONE
        if child.registered:
            self._selector.unregister(child.sock)
            child.registered = False
        child.sock.close()
        self._children.pop(child.id, None)
        self._unsent.pop(child, None)
        ahead, child.ahead = child.ahead, deque()
        if child.owner is not None:
            child.owner.on_exit(child)
        for job in ahead:
            job.finished = True
            if job.capture is not None:
                self.reports.post(_native.discard, job.capture)
            self._deliver(job, Outcome(False, not_started, 0))

    def _kill(self, child: Child, graceful: bool) -> None:
        if child.killing:
            return
        child.killing = True
        if child.watch is None:  # no HELLO yet, so no pid here: the zygote has it
            try:
                self._zygote.send(("kill", child.id))
            except (OSError, WorkerStartupError):  # it is gone: its children with it
                pass
            return
        watch = child.watch
        if not graceful:
            watch.kill(signal.SIGKILL)
            return
        watch.kill(signal.SIGTERM)
        grace = child.current.limits.kill_grace if child.current else child.limits.kill_grace
        child.kill = self.timers.at(time.monotonic() + grace, lambda: watch.kill(signal.SIGKILL))

    def _release_slot(self, child: Child) -> None:
        slot, child.slot = child.slot, None
        slot.kill_all(deadline=0.0)  # what is left of the tree, now; the waiting, later
        self.reports.post(self._cgroups.release, slot)

    # -- endings of the whole ----------------------------------------------------------------

    def _zygote_lost(self) -> None:
        self._vigil.zygote_replaced()
        if self._zygote.sock is not None:
            self._selector.unregister(self._zygote.sock)
        self._zygote.close()
        orphans = list(self._children.values())
        for child in orphans:
            if child.watch is not None:
                self.warden.unwatch(child.watch, ask=False)
        self._zygote.wait()
        if not self.closed:
            # Before the failures below: their owners may start new work at once.
            try:
                self._selector.register(self._zygote.start(), selectors.EVENT_READ,
                                        self._on_ctrl)
                self._introduce_helpers()
            except BaseException as exc:  # noqa: BLE001 - the orphans must still fail
                _log.error("isolator: the zygote could not be restarted: %s", exc)
                self.closed = True  # this loop ends; the next call starts a new engine
        for child in orphans:
            self._lost(child, WorkerLost("the isolator zygote died; the task's child was "
                                         "killed"))

    def _on_warden(self) -> None:
        # The warden speaks only when asked, and the engine reads each answer as it
        # asks: readable here means it is gone (or answered too late).
        self.warden.broken = True

    def _warden_lost(self) -> None:
        """No cap is enforced without the warden: start another, and kill every child
        (their tasks fail with ``WorkerLost``; the pools start new workers)."""
        _log.error("isolator: the warden (pid %s), which enforces the memory caps, was "
                   "lost; every child is killed and a new warden started", self.warden.pid)
        self.warden.kill()  # gone already, or stopped, or hung: it must not linger
        self._stop_warden()
        try:
            self.warden.spawn()
            self._selector.register(self.warden.ready(), selectors.EVENT_READ, self._on_warden)
            self._introduce_helpers()
        except BaseException as exc:  # noqa: BLE001 - the children must still be killed
            _log.error("isolator: the warden could not be restarted: %s", exc)
            self.closed = True  # this loop ends; the next call starts a new engine
        for child in list(self._children.values()):
            if child.watch is None:
                continue
            child.watch.kill()
            job = child.current
            if job is not None and not job.finished:
                self._finish(job, False, WorkerLost(
                    "isolator's warden, the process that enforces the memory cap, was lost; "
                    "the task's child was killed", pid=child.pid))
        if self.closed:
            self._zygote_lost()

    def _introduce_helpers(self) -> None:
        """A socket from the zygote to the warden, each end sent to its side (after
        either was started): the zygote tells the warden of each capped child as it
        forks it, so the cap holds from the task's first instruction, not from when
        this thread, which a caller thread holding the GIL can hold up for seconds,
        has read the child's HELLO (a task under a 256 MB cap had reached 992 MiB by
        then)."""
        zygote_end, warden_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.warden.send_fd(("zygote",), warden_end.fileno())
            self._zygote.send(("warden",), [zygote_end.fileno()])
        finally:
            zygote_end.close()
            warden_end.close()

    def _stop_warden(self) -> None:
        if self.warden.sock is not None:
            try:
                self._selector.unregister(self.warden.sock)
            except (KeyError, ValueError):  # never registered: it did not start
                pass
        self.warden.close()
        self.warden.wait()

    def _shutdown(self, done: threading.Event) -> None:
        self.closed = True
        for child in self._children.values():
            if child.current is not None:
                child.current.stop_reason = child.current.stop_reason or "cancelled"
        self._zygote_lost()  # closing the socket makes the zygote kill everything and exit
        # Reaped now, before the caller that waits for ``done`` may exit: left to the
        # loop's end, the warden outlived its parent as a zombie of init (where init
        # does not reap, as in a container without one, one per program run).
        self._stop_warden()
        done.set()

    def _die(self, exc: BaseException) -> None:
        """The loop itself failed: every pending task fails now, nothing is left behind."""
        _log.critical("isolator: the engine's loop failed; every pending task fails",
                      exc_info=exc)
        self.closed = True
        error = WorkerLost(f"isolator's engine stopped ({type(exc).__name__}: {exc}); "
                           "the task's child was killed")
        for scheduler in list(self._schedulers):  # first: they must start nothing more
            self._guarded(functools.partial(scheduler.abandon, error))
        for child in list(self._children.values()):
            if child.watch is not None:
                child.watch.kill()
            self._guarded(functools.partial(self._lost, child, error))
        self._zygote.close()

    def _close(self) -> None:
        """After the loop: what was never run fails, the threads and fds go."""
        error = PoolClosed("the isolator engine has stopped")
        for _, fail in self._mailbox.close():
            if fail is not None:
                self._guarded(functools.partial(fail, error))
        self.reports.stop(2.0)
        self.callbacks.stop(2.0)
        self._stop_warden()
        self._zygote.wait()
        self._cgroups.close()
        self._selector.close()
        self._mailbox.release()


def _ending(child: Child, job: Job, oom_killed: bool) -> Ending:
    watch = child.watch
    return Ending(
        pid=child.pid or 0, status=child.status, hello=child.hello,
        stop_reason="hard" if watch is not None and watch.killed else job.stop_reason,
        limit=job.limits.max_mem, peak=watch.peak if watch is not None else 0,
        timeout=job.limits.timeout, oom_killed=oom_killed, rlimit=job.limits.rlimit_data,
    )


def _shut_write(child: Child) -> None:
    try:
        child.sock.shutdown(socket.SHUT_WR)
    except OSError:  # already gone: its exit report is on the way
        pass


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
_engine: Engine | None = None
#: Whatever must finish before the engine stops at exit (the pools' pending work).
at_exit_first: list[Callable[[], None]] = []


def get_engine() -> Engine:
    """The process's engine, started on first use (again after one has stopped)."""
    global _engine
    running = _engine
    if running is not None and not running.closed:  # the common case, without the lock
        return running
    _platform.require_linux()
    with _lock:
        if _engine is None or _engine.closed:
            _engine = Engine()
        return _engine


def current_engine() -> Engine | None:
    """The running engine, without starting one."""
    return _engine if _engine is not None and not _engine.closed else None


def _forget_after_fork() -> None:
    # A forked copy of the caller has the engine's objects but not its threads.
    global _engine, _lock
    _engine = None
    _lock = threading.Lock()


def _shutdown_at_exit() -> None:
    for finish in at_exit_first:
        try:
            finish()
        except Exception:  # noqa: BLE001 - the engine must still stop
            _log.exception("isolator: finishing work at exit failed")
    if _engine is not None:
        _engine.shutdown()


atexit.register(_shutdown_at_exit)
os.register_at_fork(after_in_child=_forget_after_fork)
