"""``@isolated``: call a function in a fresh child process under a memory cap."""

from __future__ import annotations

import functools
import os
import sys
import time
import types
from collections.abc import Callable, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, overload

from . import _serialize
from ._options import DEFAULT_REPORT_DIR, CgroupMode, ForensicsLevel, Limits, make_limits
from ._retry import RetryPolicy, escalate_memory, make_retry_policy, record_attempts
from ._supervisor import get_supervisor

P = ParamSpec("P")
R = TypeVar("R")


class IsolatedFunction(Generic[P, R]):
    """A function that runs in a fresh child process each time it is called.

    Made by :func:`isolated`; the original is ``__wrapped__`` and the normalised options
    are ``options``.
    """

    def __init__(self, fn: Callable[P, R], options: Limits,
                 retry: RetryPolicy | None = None) -> None:
        functools.update_wrapper(self, fn)
        self.__wrapped__ = fn
        self.__isolated_options__ = options
        self.retry = retry

    @property
    def options(self) -> Limits:
        """The limits every call runs under."""
        return self.__isolated_options__

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return run_isolated(  # type: ignore[no-any-return]
            self, args, kwargs, self.__isolated_options__, self.retry
        )

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        # So that an isolated method receives its instance like a plain function would.
        return self if instance is None else types.MethodType(self, instance)

    def __reduce__(self) -> tuple[Any, ...]:
        # A child needs only the function: it arrives unwrapped, so the child never
        # imports the supervisor's side of isolator.
        module, qualname = self.__module__, self._qualname
        if module != "__main__" and _lookup(sys.modules.get(module), qualname) is self:
            return (_serialize.import_wrapped, (module, qualname))
        return (_serialize.same, (self.__wrapped__,))

    def __repr__(self) -> str:
        return f"<isolated {self.__module__}.{self._qualname}>"

    @property
    def _qualname(self) -> str:
        return str(getattr(self, "__qualname__", getattr(self.__wrapped__, "__name__", "?")))


def _lookup(module: object, qualname: str) -> object:
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def warm_modules(
    fn: Callable[..., Any], payload: bytes, preload: tuple[str, ...]
) -> tuple[str, ...]:
    """Modules the zygote should import once so that children start with them loaded."""
    modules = list(preload)
    module = getattr(getattr(fn, "__wrapped__", fn), "__module__", None)
    if module and module != "__main__" and module in sys.modules:
        modules.append(module)
    if _serialize.needs_dill(payload):
        modules.append("dill")
    return tuple(modules)


def run_isolated(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 limits: Limits, retry: RetryPolicy | None = None) -> Any:
    """Run ``fn(*args, **kwargs)`` in a fresh child and return its result or raise;
    with a retry policy, again in a fresh child (with a larger cap if it escalates)."""
    payload = _serialize.dumps((fn, args, kwargs), what="function and its arguments")
    warm = warm_modules(fn, payload, limits.preload)
    name = function_name(fn)
    if retry is None:
        return _run_once(payload, limits, warm, name)
    state = retry.new_state()
    earlier: list[BaseException] = []
    while True:
        try:
            return _run_once(payload, limits, warm, name)
        except Exception as exc:
            decision = retry.after_failure(state, exc, limits)
            if decision is None:
                record_attempts(exc, earlier)
                raise
            earlier.append(exc)
            delay, limits = decision
            if delay > 0:
                time.sleep(delay)  # the wait the user's tenacity strategy asked for


def function_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of what runs in the child, for reports."""
    inner = getattr(fn, "__wrapped__", fn)
    if isinstance(inner, functools.partial):
        inner = inner.func
    module = getattr(inner, "__module__", None) or "?"
    return f"{module}.{getattr(inner, '__qualname__', type(inner).__name__)}"


def _run_once(payload: bytes, limits: Limits, warm: tuple[str, ...], name: str) -> Any:
    supervisor = get_supervisor()
    future = supervisor.submit(payload, limits, warm, name)
    try:
        return future.result()
    except KeyboardInterrupt:
        supervisor.cancel(future)
        try:
            future.exception(timeout=limits.kill_grace + 1.0)
        except Exception:  # noqa: BLE001 - the interrupt is what the caller must see
            pass
        raise


@overload
def isolated(fn: Callable[P, R], /) -> IsolatedFunction[P, R]: ...


@overload
def isolated(
    fn: None = None,
    /,
    *,
    max_mem: int | str | None = None,
    soft_mem: int | str | None = None,
    timeout: float | None = None,
    rlimit_data: bool = False,
    cgroup: CgroupMode = False,
    kill_grace: float = 0.5,
    startup_timeout: float = 30.0,
    preload: Sequence[str] = (),
    retry: Any = None,
    stop: Any = None,
    wait: Any = None,
    escalate: escalate_memory | None = None,
    report_dir: str | os.PathLike[str] | None = DEFAULT_REPORT_DIR,
    on_report: Callable[[Any], object] | None = None,
    forensics: ForensicsLevel = "default",
) -> Callable[[Callable[P, R]], IsolatedFunction[P, R]]: ...


def isolated(
    fn: Callable[P, R] | None = None,
    /,
    *,
    max_mem: int | str | None = None,
    soft_mem: int | str | None = None,
    timeout: float | None = None,
    rlimit_data: bool = False,
    cgroup: CgroupMode = False,
    kill_grace: float = 0.5,
    startup_timeout: float = 30.0,
    preload: Sequence[str] = (),
    retry: Any = None,
    stop: Any = None,
    wait: Any = None,
    escalate: escalate_memory | None = None,
    report_dir: str | os.PathLike[str] | None = DEFAULT_REPORT_DIR,
    on_report: Callable[[Any], object] | None = None,
    forensics: ForensicsLevel = "default",
) -> IsolatedFunction[P, R] | Callable[[Callable[P, R]], IsolatedFunction[P, R]]:
    """Run the decorated function in a fresh child process, under a memory cap.

    Usable bare (``@isolated``), with options (``@isolated(max_mem="512MB", timeout=60)``)
    or as a function (``isolated(max_mem="64MB")(fn)``). Each call forks a fresh child
    from isolator's zygote, runs the function there and returns its result, or raises:

    * the function's own exception, same type and message, the child's traceback as
      ``__cause__``;
    * :class:`MemoryLimitExceeded` when the child's process tree passed ``max_mem``;
    * :class:`TaskTimeout` when it ran longer than ``timeout`` seconds;
    * :class:`WorkerLost` when the child died without a result;
    * :class:`SerializationError` when an argument, the result or the exception would
      not pickle.

    ``max_mem`` is bytes (int) or a string like ``"512MB"``, ``"1.5GB"``, ``"256MiB"``;
    every unit is a power of 1024. ``soft_mem`` (default: ``max_mem`` less an eighth, at
    most 64 MiB) is where the child is interrupted with ``MemoryLimitExceeded`` so it
    can report; ``max_mem`` is where its whole process tree is killed. ``rlimit_data``
    also sets RLIMIT_DATA to ``max_mem`` in the child; ``cgroup`` ("auto", True, False)
    adds a kernel memory cgroup where one is writable. ``kill_grace`` is the time between
    SIGTERM and SIGKILL on a timeout or cancel; ``startup_timeout`` bounds the child's
    handshake; ``preload`` names modules the zygote imports once so children start warm.

    ``retry``, ``stop`` and ``wait`` are tenacity strategies (default when retrying:
    ``stop_after_attempt(3)``, no wait); isolator provides ``retry_if_memory_exceeded()``
    and ``retry_if_worker_lost()``. ``escalate=escalate_memory(2.0, ceiling="8GB")``
    gives each attempt after a breach a larger cap (and alone implies retrying
    breaches). When every attempt fails the last real error is raised, with every
    attempt's error in its ``attempts`` list.

    Every memory breach gets a post-mortem report, ``exc.report``: written under
    ``report_dir`` (default ``$ISOLATOR_REPORT_DIR``, else ``./isolator-reports``; None
    keeps it in memory only) and handed to ``on_report(report)``. ``forensics`` picks
    what the child records about its heap on a breach: "default", "deep" (heapy's full
    partition too), "types" (type names and sizes only, no values from the data) or
    "off".

    Bad options raise :class:`ConfigurationError` here, not at the first call.
    """
    options = make_limits(
        max_mem=max_mem, soft_mem=soft_mem, timeout=timeout, rlimit_data=rlimit_data,
        cgroup=cgroup, kill_grace=kill_grace, startup_timeout=startup_timeout,
        preload=tuple(preload) if not isinstance(preload, str) else preload,  # type: ignore[arg-type]
        report_dir=report_dir, on_report=on_report, forensics=forensics,
    )

    policy = make_retry_policy(retry, stop, wait, escalate)

    def decorate(func: Callable[P, R]) -> IsolatedFunction[P, R]:
        if not callable(func):
            from ._errors import ConfigurationError

            raise ConfigurationError(f"isolated() needs a callable, got {func!r}")
        return IsolatedFunction(func, options, policy)

    return decorate if fn is None else decorate(fn)
