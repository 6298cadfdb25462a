"""Runs only in a task child, straight after the zygote forked it.

The child makes itself safe before it touches user code: its own process group (so the
whole tree can be killed at once), a parent-death signal (so it cannot outlive the
zygote), its cgroup and rlimit, the caller's stdout and stderr. Then it says HELLO, runs
the one call it was made for, sends the outcome and leaves through ``os._exit``: no atexit
handlers or finalizers inherited from the zygote run in it.
"""

from __future__ import annotations

import gc
import os
import pickle
import resource
import signal
import socket
import sys
import time
from types import FrameType
from typing import Any, NamedTuple, NoReturn

from . import _platform, _protocol, _serialize
from ._child_forensics import heap_forensics
from ._errors import MemoryLimitExceeded, SerializationError
from ._procfs import StatusReader, self_rss
from ._units import format_size

BREACH_SIGNAL = signal.SIGRTMIN + 3 if hasattr(signal, "SIGRTMIN") else signal.SIGUSR2


class ChildSpec(NamedTuple):
    """Everything a child needs to know before it reads its task."""

    limit: int | None
    rlimit_data: int | None
    cgroup_procs: str | None
    cwd: str
    reuse: bool = False  # serve task after task until told to stop (a pool's reused worker)
    forensics: str = "off"  # what to record about the heap on a memory error
    forensics_budget: float | None = None  # seconds the heap walk may take; None: scaled


_spec = ChildSpec(None, None, None, "")
_armed = False
_breached = False  # a task of this worker went past the soft limit: it takes no more
_limit = 0


def _on_breach(signum: int, frame: FrameType | None) -> None:
    # Sent by the supervisor's sampler when the tree crosses the soft limit: the
    # exception surfaces at the line that was running, so the child can still report.
    global _armed, _breached
    if _armed:
        _armed = False
        _breached = True
        peak = self_rss()
        raise MemoryLimitExceeded(
            f"memory use passed the soft limit below the {format_size(_limit)} cap",
            limit=_limit,
            peak=peak,
            kind="soft",
            pid=os.getpid(),
        )


def spare_main(channel: socket.socket, inherited: list[int], zygote_pid: int) -> NoReturn:
    """A child forked ahead of time: detach while it waits, then run the task it gets."""
    try:
        _detach(inherited, zygote_pid)
        _platform.set_process_name(b"isolator-spare")
        data, fds, _, _ = socket.recv_fds(channel, 1 << 16, 3)
    except BaseException:  # noqa: BLE001 - a spare that cannot wait has nothing to report
        os._exit(0)
    if not data:  # dropped by the zygote
        os._exit(0)
    channel.close()
    _start(pickle.loads(data), fds)


def main(spec: ChildSpec, fds: list[int], inherited: list[int], zygote_pid: int) -> NoReturn:
    """Entry point of a child forked for a task at once; never returns."""
    try:
        _detach(inherited, zygote_pid)
    except BaseException:  # noqa: BLE001 - see _start: only os._exit leaves a child
        os._exit(1)
    _start(spec, fds)


def _detach(inherited: list[int], zygote_pid: int) -> None:
    """Everything a child does that does not depend on its task; a spare does it while
    it waits, off the task's path."""
    signal.set_wakeup_fd(-1)
    for fd in inherited:
        os.close(fd)
    os.setpgid(0, 0)
    _platform.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != zygote_pid:  # the zygote died before PDEATHSIG was armed
        os._exit(1)
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(BREACH_SIGNAL, _on_breach)


def _start(spec: ChildSpec, fds: list[int]) -> NoReturn:
    code = 1
    try:
        _platform.set_process_name(b"isolator-task")
        sock = socket.socket(fileno=fds[0])
        # HELLO goes first: the supervisor starts watching us while we finish setting
        # up. A fresh child's task is in the socket already; a reused worker's comes
        # once the supervisor has taken its fresh RSS.
        _protocol.send_frame(sock, _protocol.HELLO, os.getpid().to_bytes(8, "big"))
        _prepare(spec, fds[1:])
        code = _serve(sock, spec.reuse)
    except BaseException:  # noqa: BLE001 - whatever happens, leave through os._exit
        import traceback

        traceback.print_exc()
    finally:
        _flush_stdio()
        os._exit(code)


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream must not block the exit
            pass


def _prepare(spec: ChildSpec, stdio: list[int]) -> None:
    out_fd, err_fd = stdio
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.close(out_fd)
    os.close(err_fd)
    if spec.cgroup_procs is not None:
        from ._limits.cgroup import attach_self

        attach_self(spec.cgroup_procs)
    if spec.rlimit_data is not None:
        resource.setrlimit(resource.RLIMIT_DATA, (spec.rlimit_data, resource.RLIM_INFINITY))
    if spec.cwd != os.getcwd():
        os.chdir(spec.cwd)
    global _limit, _spec
    _limit = spec.limit or 0
    _spec = spec


def _serve(sock: socket.socket, reuse: bool) -> int:
    held = 0
    me = StatusReader(os.getpid()) if reuse else None
    global _job_capture
    while True:
        try:
            tag, body = _protocol.recv_frame(sock)
            if tag == _protocol.CAPTURE:  # this task's own memray capture
                _job_capture = body.decode()
                tag, body = _protocol.recv_frame(sock)
        except EOFError:  # the supervisor retired this worker
            return 0
        tag, payload = _run_task(body)
        if me is None or _breached:
            # A worker whose task breached is not trusted with another: it leaves
            # without IDLE, and the task sent behind this one runs elsewhere.
            _protocol.send_frame(sock, tag, payload)
            return 0
        # Between tasks: give back what the task freed and say what is still held (what
        # the pool's recycle policy judges). Only when the task grew us: a collection and
        # a trim cost milliseconds, and most small tasks leave nothing behind; then the
        # outcome and IDLE go out in one write.
        now = me.rss()
        if now > held + _TIDY_THRESHOLD:
            _protocol.send_frame(sock, tag, payload)
            gc.collect()
            _platform.malloc_trim()
            held = me.rss()
            _protocol.send_frame(sock, _protocol.IDLE, held.to_bytes(8, "big"))
        else:
            held = now
            sock.sendall(_protocol.header(tag, len(payload)) + payload
                         + _protocol.header(_protocol.IDLE, 8) + held.to_bytes(8, "big"))


_TIDY_THRESHOLD = 1 << 20


def _run_task(body: bytes) -> tuple[int, bytes]:
    try:
        fn, args, kwargs = _serialize.loads(body, what="function and its arguments")
        result = _call(fn, args, kwargs)
        payload = _serialize.dumps(result, what="result", in_child=True)
    except BaseException as exc:  # noqa: BLE001 - every outcome goes back to the caller
        tag, payload = _protocol.RAISED, _pack_exception(exc)
    else:
        tag = _protocol.RESULT
    # The caller may print as soon as it has the outcome: our output must be out first.
    _flush_stdio()
    return tag, payload


_task_started = 0.0  # time.monotonic() when the task began: growth is measured since
_job_capture: str | None = None  # the next task's memray capture file (CAPTURE frame)


def _call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    global _armed, _task_started, _job_capture
    _task_started = time.monotonic()
    tracker = None
    capture, _job_capture = _job_capture, None
    if capture is not None:
        from . import _native

        # Closed before the outcome is sent, so the capture is complete when the
        # supervisor reads it on the outcome's arrival.
        tracker = _native.start(capture)
    _armed = True
    try:
        return fn(*args, **kwargs)
    finally:
        _armed = False
        if tracker is not None:
            tracker.__exit__(None, None, None)


def _pack_exception(exc: BaseException) -> bytes:
    import traceback

    text = "".join(traceback.format_exception(exc))
    try:
        exc_bytes = _serialize.dumps(exc, what="exception", in_child=True)
    except SerializationError as failure:
        substitute = SerializationError(
            f"the task raised {type(exc).__qualname__}: {exc}; it could not be sent back "
            f"({failure})"
        )
        exc_bytes = _serialize.dumps(substitute, what="exception")
    return _serialize.dumps((exc_bytes, text, heap_forensics(exc, _spec, _task_started)),
                            what="exception")
