"""Turning how a child ended into the caller's result or a typed exception.

Every ending is classified, in this order: a result or an exception the child sent; a
kill by the hard cap; a kernel OOM kill in the task's cgroup; a timeout; death before the
handshake; an allocation refused under RLIMIT_DATA; any other death.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import (
    MemoryKind,
    MemoryLimitExceeded,
    RemoteTraceback,
    SerializationError,
    TaskTimeout,
    WorkerLost,
    WorkerStartupError,
    signal_name,
)
from .._units import format_size
from .._wire import frames as _protocol
from .._wire import pickling as _serialize

_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS}


@dataclass
class Ending:
    """The facts the engine gathered about one child that raised or died."""

    pid: int
    status: int  # the wait status; 0 while the child has not been reaped yet
    hello: bool
    stop_reason: str | None  # "hard", "timeout", "cancelled", "startup" or None
    limit: int | None
    peak: int
    timeout: float | None
    oom_killed: bool
    rlimit: bool


def _exit_facts(status: int) -> tuple[int | None, str | None]:
    if os.WIFSIGNALED(status):
        return None, signal_name(os.WTERMSIG(status))
    return os.waitstatus_to_exitcode(status), None


def _memory_error(e: Ending, kind: MemoryKind, why: str) -> MemoryLimitExceeded:
    exitcode, sig = _exit_facts(e.status)
    limit = e.limit or 0
    return MemoryLimitExceeded(
        f"the task {why}: peak {format_size(e.peak)} against a cap of {format_size(limit)} "
        f"(kind={kind}, pid {e.pid})",
        limit=limit,
        peak=e.peak,
        kind=kind,
        pid=e.pid,
        exitcode=exitcode,
        signal=sig,
    )


def resolve(message: tuple[int, bytes] | None, facts: Callable[[], Ending],
            raw: bool = False) -> tuple[bool, Any, dict[str, Any] | None]:
    """``(True, value, None)`` for a result, ``(False, exception, heap)`` otherwise, where
    ``heap`` is the heap forensics the child sent with a memory error, if any. ``facts``
    is asked for only when there is no result: the common case needs none of them.
    ``raw``: a result is returned as the child's pickle, not loaded."""
    if message is not None:
        tag, body = message
        if tag == _protocol.RESULT and raw:
            return True, bytes(body), None
        if tag == _protocol.RESULT:
            try:
                return True, _serialize.loads(body, what="result"), None
            except SerializationError as exc:
                return False, exc, None
        return (False, *_raised(facts(), body))
    return False, _death(facts()), None


def _death(e: Ending) -> BaseException:
    exitcode, sig = _exit_facts(e.status)
    if e.stop_reason == "hard":
        return _memory_error(e, "hard", "was killed by the supervisor at its memory cap")
    if e.oom_killed:
        return _memory_error(e, "kernel-oom", "was killed by the kernel at its cgroup limit")
    if e.stop_reason == "timeout":
        timeout = e.timeout or 0.0
        return TaskTimeout(
            f"the task ran past its {timeout:g} s timeout and was killed (pid {e.pid})",
            timeout=timeout,
            pid=e.pid,
        )
    how = f"signal {sig}" if sig else f"exit code {exitcode}"
    if e.stop_reason == "startup":
        return WorkerStartupError(f"the child (pid {e.pid}) did not answer its handshake in time")
    if not e.hello:
        return WorkerStartupError(f"the child (pid {e.pid}) died while starting: {how}")
    if e.rlimit and sig and signal.Signals[sig] in _CRASH_SIGNALS:
        return _memory_error(e, "rlimit", f"crashed with {sig}, probably a refused allocation")
    if e.stop_reason == "cancelled":
        return WorkerLost(f"the task was cancelled and its child (pid {e.pid}) killed",
                          pid=e.pid, exitcode=exitcode, signal=sig)
    return WorkerLost(
        f"the child (pid {e.pid}) ended without a result: {how}",
        pid=e.pid,
        exitcode=exitcode,
        signal=sig,
    )


def _raised(e: Ending, body: bytes) -> tuple[BaseException, dict[str, Any] | None]:
    try:
        exc_bytes, text, report_text, heap = _serialize.loads(body, what="exception")
        exc: BaseException = _serialize.loads(exc_bytes, what="exception")
    except SerializationError as failure:
        return failure, None
    if isinstance(exc, MemoryLimitExceeded):
        exc.peak = max(exc.peak, e.peak)
        exc.pid = e.pid
    elif isinstance(exc, MemoryError) and e.rlimit:
        cause = exc
        exc = _memory_error(e, "rlimit", "had an allocation refused by RLIMIT_DATA")
        exc.__context__ = cause
    exc.__cause__ = RemoteTraceback(text, report_text)
    return exc, heap
