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
import types
from types import FrameType
from typing import Any, NoReturn

from .._errors import MemoryLimitExceeded, SerializationError
from .._units import format_size
from .._wire import frames as _protocol
from .._wire import pickling as _serialize
from .._wire import platform as _platform
from .._wire.procfs import StatusReader, descendants, self_rss
from .._wire.spec import BREACH_SIGNAL, ChildSpec
from .forensics_hook import data_size, heap_forensics
from .tracebacks import for_report, from_the_task

_spec = ChildSpec(None, None, None, "")
_armed = False  # the soft limit's signal raises MemoryLimitExceeded (the user's code runs)
_in_task = False  # the user's function is running (armed or not)
_breached = False  # a task of this worker went past the soft limit: it takes no more
_sock: socket.socket | None = None  # the task's socket, once the child serves
_limit = 0
_hello_rss = 0  # our RSS as we said HELLO: the zygote's pages, which the cap does not count


def _on_breach(signum: int, frame: FrameType | None) -> None:
    # Sent by the warden's sampler when the tree crosses the soft limit: the
    # exception surfaces at the line that was running, so the child can still report.
    global _armed, _breached
    if _armed:
        _armed = False
        _breached = True
        peak = _own_memory()
        raise MemoryLimitExceeded(
            f"memory use passed the soft limit below the {format_size(_limit)} cap",
            limit=_limit,
            peak=peak,
            kind="soft",
            pid=os.getpid(),
        )
    if _breached and _in_task and _sock is not None:
        # Sent again SOFT_GRACE after the first: the task caught the exception (an
        # ``except BaseException``, an asyncio callback, a logging hook) and went on. It
        # is not asked a second time: it is reported from here and ended.
        _report_swallowed(frame)


def _own_memory() -> int:
    """What the warden's sampler counts of us: our RSS beyond the zygote's pages."""
    return max(self_rss() - _hello_rss, 0)


def _report_swallowed(frame: FrameType | None) -> NoReturn:
    exc = MemoryLimitExceeded(
        f"memory use passed the soft limit below the {format_size(_limit)} cap; the task "
        "caught the MemoryLimitExceeded raised there and went on, so it was stopped where "
        "it stood a moment later",
        limit=_limit, peak=_own_memory(), kind="soft", pid=os.getpid(),
    )
    if frame is not None:
        exc = exc.with_traceback(types.TracebackType(None, frame, frame.f_lasti,
                                                     frame.f_lineno))
    try:
        payload = _pack_exception(exc)
        _flush_stdio()
        assert _sock is not None
        _protocol.send_frame(_sock, _protocol.RAISED, payload)
    finally:
        end_descendants()
        os._exit(0)


def spare_main(channel: socket.socket, inherited: list[int], zygote_pid: int) -> NoReturn:
    """A child forked ahead of time: detach while it waits, then run the task it gets."""
    try:
        _detach(inherited, zygote_pid)
        _platform.set_process_name(b"isolator-spare")
        data, fds = _protocol.recv_fds(channel, 1 << 16, 3)
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
    # Whatever the task starts and however it detaches, orphans come back here, stay
    # in this tree (where the sampler counts them) and die with the task.
    _platform.set_child_subreaper()
    _platform.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != zygote_pid:  # the zygote died before PDEATHSIG was armed
        os._exit(1)
    for signum in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    # As Python sets it up: writing to a closed pipe raises BrokenPipeError, it does not
    # kill the task (subprocesses get the default back when they exec, as always).
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(BREACH_SIGNAL, _on_breach)


def _start(spec: ChildSpec, fds: list[int]) -> NoReturn:
    code = 1
    try:
        _platform.set_process_name(b"isolator-task")
        sock = socket.socket(fileno=fds[0])
        # HELLO goes first: the engine starts watching us while we finish setting
        # up. A fresh child's task is in the socket already; a reused worker's comes
        # once the engine has taken its fresh RSS. Our RSS now is the zygote's pages we
        # share and nothing of the task's: what the engine counts is beyond it.
        global _hello_rss
        _hello_rss = self_rss()
        hello = os.getpid().to_bytes(8, "big") + _hello_rss.to_bytes(8, "big")
        _protocol.send_frame(sock, _protocol.HELLO, hello)
        _prepare(spec, fds[1:])
        code = _serve(sock, spec.reuse)
    except BaseException:  # noqa: BLE001 - whatever happens, leave through os._exit
        import traceback

        traceback.print_exc()
    finally:
        _flush_stdio()
        end_descendants()
        os._exit(code)


def _has_children() -> bool:
    """Whether this process has a child, alive or dead: one system call, no file, no
    allocation (it reaps a dead one on the way, which the caller wants anyway)."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return False
    return True


def end_descendants(within: float = 1.0) -> None:
    """Kill and reap every process the task started, however it detached (``setsid``,
    a double fork, a daemon): this process is their subreaper, so an orphan of theirs
    comes back to it instead of init, and each round kills what came back, until none
    is left or ``within`` seconds have passed."""
    if not _has_children():  # nearly every task
        return
    me = os.getpid()
    deadline = time.monotonic() + within
    while True:
        found = descendants(me)
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:  # gone already
                pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        if not found or time.monotonic() > deadline:
            return
        time.sleep(0.0005)  # a killed parent's children are being handed to us


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
        join_cgroup(spec.cgroup_procs)
    if spec.rlimit_data is not None:
        # Counted from the data segment we start with, the zygote's (a preloaded numpy's
        # reserved buffers, tens of MiB never touched, among it), as the cap counts
        # what a child holds of its own.
        limit = spec.rlimit_data + data_size()
        resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.RLIM_INFINITY))
    if spec.cwd != os.getcwd():
        os.chdir(spec.cwd)
    global _limit, _spec
    _limit = spec.limit or 0
    _spec = spec


def join_cgroup(procs_file: str) -> None:
    """Move this process into the memory cgroup whose ``cgroup.procs`` is ``procs_file``
    (the engine made it and set its limit before the fork). One raw write, so that the
    kernel's refusal is raised here, not at a buffered close."""
    fd = os.open(procs_file, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, str(os.getpid()).encode())
    finally:
        os.close(fd)


def _learned() -> bytes:
    """The modules imported since the child started (or last said so), beyond isolator's
    own: the engine has the zygote import them for the next child of the same function.
    Nearly always nothing, known from the size of ``sys.modules`` alone."""
    global _modules_seen
    if len(sys.modules) == _modules_seen:
        return b""
    _modules_seen = len(sys.modules)
    new = [name for name in list(sys.modules) if name not in _known]
    _known.update(new)
    if not _clean():  # a module whose import starts a thread must not reach the zygote
        return b""
    return "\n".join(name for name in new if not name.startswith(_UNLEARNED)).encode()


def _clean() -> bool:
    """The task left no Python thread and no connection of its own behind."""
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return False
    sockets = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return sockets <= 1  # its own, to the engine


_UNLEARNED = ("__main__", "__mp_main__", "isolator")
_known: set[str] = set()  # modules the child had when it started, or has reported
_modules_seen = 0


def _send_outcome(sock: socket.socket, tag: int, payload: bytes, *more: bytes) -> None:
    """The outcome, what the task taught us (if anything), and ``more``, in one write."""
    learned = _learned()
    frames = [_protocol.header(tag, len(payload)), payload]
    if learned:
        frames += [_protocol.header(_protocol.LEARNED, len(learned)), learned]
    _protocol.send_buffers(sock, [*frames, *more])


def note_modules() -> None:
    """In the zygote, before it forks: the modules a child starts with, so that a child
    need not list them (adding them to a set of its own would write to the pages of
    every module name it shares with the zygote, copying each)."""
    global _modules_seen
    if len(sys.modules) != _modules_seen:
        _known.update(sys.modules)
        _modules_seen = len(sys.modules)


def _serve(sock: socket.socket, reuse: bool) -> int:
    global _sock
    _sock = sock
    held = 0
    me = StatusReader(os.getpid()) if reuse else None
    global _job_capture
    while True:
        try:
            tag, body = _protocol.recv_frame(sock)
            if tag == _protocol.CAPTURE:  # this task's own memray capture
                _job_capture = body.decode()
                tag, body = _protocol.recv_frame(sock)
        except EOFError:  # the engine retired this worker
            return 0
        tag, payload = _run_task(body)
        if me is None or _breached:
            # A worker whose task breached is not trusted with another: it leaves
            # without IDLE, and the task sent behind this one runs elsewhere.
            _send_outcome(sock, tag, payload)
            return 0
        end_descendants()  # nothing a task started outlives it, or meets the next one
        # Between tasks: give back what the task freed and say what is still held (what
        # the pool's recycle policy judges). Only when the task grew us: a collection and
        # a trim cost milliseconds, and most small tasks leave nothing behind; then the
        # outcome and IDLE go out in one write.
        now = me.rss()
        if now > held + _TIDY_THRESHOLD:
            _send_outcome(sock, tag, payload)
            gc.collect()
            _platform.malloc_trim()
            held = me.rss()
            _protocol.send_frame(sock, _protocol.IDLE, held.to_bytes(8, "big"))
        else:
            held = now
            _send_outcome(sock, tag, payload,
                          _protocol.header(_protocol.IDLE, 8) + held.to_bytes(8, "big"))


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
    global _armed, _in_task, _task_started, _job_capture
    _task_started = time.monotonic()
    tracker = None
    capture, _job_capture = _job_capture, None
    if capture is not None:
        from .native import start_tracking

        # Closed before the outcome is sent, so the capture is complete when the
        # engine reads it on the outcome's arrival.
        tracker = start_tracking(capture)
    _armed = _in_task = True
    try:
        return fn(*args, **kwargs)
    finally:
        _armed = _in_task = False
        if tracker is not None:
            tracker.__exit__(None, None, None)


def _pack_exception(exc: BaseException) -> bytes:
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, from_the_task(exc.__traceback__)))
    try:
        exc_bytes = _serialize.dumps(exc, what="exception", in_child=True)
    except SerializationError as failure:
        substitute = SerializationError(
            f"the task raised {type(exc).__qualname__}: {exc}; it could not be sent back "
            f"({failure})"
        )
        exc_bytes = _serialize.dumps(substitute, what="exception")
    # Only a memory error makes a report; its text keeps what the forensics level allows.
    report_text = for_report(exc, _spec.forensics) if isinstance(exc, MemoryError) else None
    return _serialize.dumps(
        (exc_bytes, text, report_text, heap_forensics(exc, _spec, _task_started, _hello_rss)),
        what="exception")
