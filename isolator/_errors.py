"""The whole exception tree of isolator.

::

    IsolatorError
    ├── ConfigurationError(ValueError)            bad max_mem, soft >= hard, unknown option
    ├── WorkerError                               no result, because of the worker
    │   ├── WorkerLost                            the child died mid-task: .pid .exitcode .signal
    │   │   └── MemoryLimitExceeded(MemoryError)  .limit .peak .kind .report
    │   ├── TaskTimeout(TimeoutError)             the child ran too long and WAS killed
    │   └── WorkerStartupError                    the child never became ready
    ├── SerializationError                        an argument, result or exception would not pickle
    │   ├── PicklingFailed(pickle.PicklingError)  .what: it could not be pickled here
    │   ├── UnpicklingFailed(pickle.UnpicklingError)  .what: what came could not be loaded
    │   └── RemoteError                           .type_name .message: not rebuilt here
    └── PoolClosed(RuntimeError, ValueError)      work submitted after close/shutdown

Each class subclasses the builtin with the same meaning, so ``except MemoryError`` and
``except TimeoutError`` keep working around isolated code. Every exception carries its
facts as attributes and survives pickling with them (the default ``BaseException``
pickling would keep only ``args``).
"""

from __future__ import annotations

import pickle
import signal as _signal
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # for the annotation only: the zygote and children never import reports
    from .reports import Report

_HEAPTYPE = 1 << 9

#: The layer that caught a memory breach (``MemoryLimitExceeded.kind``).
MemoryKind = Literal["soft", "hard", "kernel-oom", "rlimit"]


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    # Only the C-level __new__ that the class really inherits (its first static base)
    # may be called: with two builtin bases, cls.__new__ resolves to the other one.
    static: Any = cls
    while static.__flags__ & _HEAPTYPE:
        static = static.__base__
    exc = static.__new__(cls)
    BaseException.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


class IsolatorError(Exception):
    """Base class of every error isolator raises itself."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ConfigurationError(IsolatorError, ValueError):
    """An option is malformed or contradictory; raised where the option is given."""


class SerializationError(IsolatorError):
    """An argument, a result or an exception could not be pickled or unpickled."""


class PicklingFailed(SerializationError, pickle.PicklingError):
    """A value could not be pickled to cross to the other process (plain pickle and
    dill both refused it).

    A ``pickle.PicklingError``, as code written for the stdlib pools catches; the
    pickler's own exception (a ``__reduce__``'s, say) is ``__cause__``. ``what`` says
    what was being sent (``"result"``, ``"function and its arguments"``, ...); for a
    result that a child could not send, ``value`` is its ``repr()`` and ``reason`` the
    ``repr()`` of the pickler's exception.
    """

    def __init__(self, message: str, *, what: str = "value", value: str | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.what = what
        self.value = value
        self.reason = reason


class UnpicklingFailed(SerializationError, pickle.UnpicklingError):
    """A value sent by the other process could not be loaded here (its class is
    missing, or loading it raised, ``SystemExit`` included). The loader's exception is
    ``__cause__``; ``what`` says what it was."""

    def __init__(self, message: str, *, what: str = "value") -> None:
        super().__init__(message)
        self.what = what


class RemoteError(SerializationError):
    """The task raised an exception that could not be rebuilt in the caller, neither
    by its own pickling nor from its class, ``args`` and ``__dict__``.

    ``type_name`` is its class (``module.qualname``), ``message`` its ``str()``; the
    child's traceback is ``__cause__``, as for any exception of a task.
    """

    def __init__(self, summary: str, *, type_name: str, message: str) -> None:
        super().__init__(summary)
        self.type_name = type_name
        self.message = message


class PoolClosed(IsolatorError, RuntimeError, ValueError):
    """Work was submitted to an executor or pool that no longer accepts it.

    A RuntimeError like ``ProcessPoolExecutor``'s and a ValueError like
    ``multiprocessing.Pool``'s, so code written for either keeps catching it.
    """


class WorkerError(IsolatorError):
    """The task produced no result because of its worker, not because of its code."""


class WorkerStartupError(WorkerError):
    """The child process did not start or did not answer the handshake in time."""


def signal_name(signum: int | None) -> str | None:
    """``9 -> 'SIGKILL'``; None stays None."""
    if signum is None:
        return None
    try:
        return _signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"


class WorkerLost(WorkerError):
    """The child ended without a result: killed by a signal, crashed, or exited early.

    ``exitcode`` is the child's exit status when it exited, ``signal`` the name of the
    signal that ended it (``"SIGKILL"``), ``pid`` the child's process id.
    """

    def __init__(
        self,
        message: str,
        *,
        pid: int | None = None,
        exitcode: int | None = None,
        signal: str | None = None,
    ) -> None:
        super().__init__(message)
        self.pid = pid
        self.exitcode = exitcode
        self.signal = signal


class NotStarted(WorkerLost):
    """Internal: a task sent to a reused worker behind another never started there.

    A pool runs it on another worker; it reaches a caller only when the pool is being
    terminated, and then as the ``WorkerLost`` it is.
    """


class MemoryLimitExceeded(WorkerLost, MemoryError):
    """The task's process tree went past its memory cap.

    ``limit`` is the cap in bytes, ``peak`` the highest usage observed (bytes), and
    ``kind`` the layer that caught it: ``"soft"`` (the child was interrupted inside and
    could still report), ``"hard"`` (the supervisor killed the process tree),
    ``"kernel-oom"`` (the kernel's cgroup limit killed it), ``"rlimit"`` (an allocation
    was refused by RLIMIT_DATA). ``report`` is the post-mortem report, or None.
    ``timeline`` is the supervisor's memory samples of the task, as
    ``(seconds since start, bytes)`` pairs.
    """

    def __init__(
        self,
        message: str,
        *,
        limit: int,
        peak: int,
        kind: MemoryKind,
        report: Report | None = None,
        pid: int | None = None,
        exitcode: int | None = None,
        signal: str | None = None,
    ) -> None:
        super().__init__(message, pid=pid, exitcode=exitcode, signal=signal)
        self.limit = limit
        self.peak = peak
        self.kind: MemoryKind = kind
        self.report: Report | None = report
        self.timeline: list[tuple[float, int]] = []


class TaskTimeout(WorkerError, TimeoutError):
    """The task ran longer than ``timeout`` seconds; its process tree was killed."""

    def __init__(self, message: str, *, timeout: float, pid: int | None = None) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.pid = pid


class RemoteTraceback(Exception):
    """The child's formatted traceback, attached as ``__cause__`` of re-raised errors.

    ``tb`` is the whole text, for the caller; ``report_tb`` what a report keeps of it at
    the forensics level of the task (messages withheld at ``types``, cut at the others),
    or None when the child sent no such text (then a report keeps ``tb``).
    """

    def __init__(self, tb: str, report_tb: str | None = None) -> None:
        super().__init__(tb)
        self.tb = tb
        self.report_tb = report_tb

    def __reduce__(self) -> tuple[type[RemoteTraceback], tuple[str, str | None]]:
        return RemoteTraceback, (self.tb, self.report_tb)

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class LeakWarning(RuntimeWarning):
    """A reused worker's memory kept growing from task to task (a report was made)."""
