"""``@isolated``: call a function in a fresh child process under a memory cap."""

from __future__ import annotations

import functools
import sys
import time
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, Unpack, overload

from .._errors import ConfigurationError
from .._model.options import CallOptions, docstring, show_options
from .._model.settings import CallSettings, settle
from .._model.values import Limits, Reporting
from .._wire import pickling

if TYPE_CHECKING:  # not at run time: the zygote imports this module, never the engine's
    from concurrent.futures import Future

P = ParamSpec("P")
R = TypeVar("R")


class IsolatedFunction(Generic[P, R]):
    """A function that runs in a fresh child process each time it is called.

    Made by :func:`isolated`; the original is ``__wrapped__``, its normalised limits are
    ``options`` (a ``Limits``) and what a breach records is ``reporting``.
    """

    def __init__(self, fn: Callable[P, R], settings: CallSettings) -> None:
        functools.update_wrapper(self, fn)
        self.__wrapped__ = fn
        # The dill pickle of what is sent by value (a __main__ function, a closure):
        # made at the first call, and the globals it captured with it.
        self.by_value_cache: pickling.ByValueCache = {}
        self.__isolated_options__ = settings

    @property
    def options(self) -> Limits:
        """The limits every call runs under."""
        return self.__isolated_options__.limits

    @property
    def reporting(self) -> Reporting:
        """What a breach of a call records, and where its report goes."""
        return self.__isolated_options__.reporting

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return run_isolated(self, args, kwargs, self.__isolated_options__)  # type: ignore[no-any-return]

    async def aio(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The call, awaited: ``await fn.aio(*args)`` runs it in a fresh child as a call
        does, without blocking the event loop while the child runs. Cancelling the
        await (``task.cancel()``, ``asyncio.wait_for``'s timeout) kills the child
        (SIGTERM, ``kill_grace``, SIGKILL)."""
        from .aio import run_isolated_async

        return await run_isolated_async(self, args, kwargs,  # type: ignore[no-any-return]
                                        self.__isolated_options__)

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        # So that an isolated method receives its instance like a plain function would.
        return self if instance is None else types.MethodType(self, instance)

    def __reduce__(self) -> str | tuple[Any, ...]:
        module, qualname = self.__module__, self._qualname
        importable = module != "__main__" and _lookup(sys.modules.get(module), qualname) is self
        if pickling.to_a_child():
            # A child needs only the function: it arrives unwrapped, so the child never
            # imports the caller's side of isolator.
            if importable:
                return (pickling.import_wrapped, (module, qualname))
            return (pickling.same, (self.__wrapped__,))
        # Anyone else (a Dask client sending it to a worker, a process pool) gets the
        # isolated function, so a call there runs capped in a child too, and not the
        # bare function beside the worker's other tasks.
        if importable:
            return qualname
        return (IsolatedFunction, (self.__wrapped__, self.__isolated_options__))

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


def warm_modules(fn: Callable[..., Any], args: tuple[Any, ...], payload: bytes,
                 preload: tuple[str, ...]) -> tuple[str, ...]:
    """Modules the zygote should import once so that children start with them loaded:
    what the caller named, and what the task's functions will use (``needs``)."""
    from . import needs  # a module imported once; this is a dictionary look-up after

    modules = dict.fromkeys(preload)
    for inner in needs.task_functions(fn, args):
        modules.update(dict.fromkeys(needs.modules_needed(inner)))
    if pickling.needs_dill(payload):
        modules["dill"] = None
    return tuple(modules)


def function_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of what runs in the child, for reports."""
    inner = getattr(fn, "__wrapped__", fn)
    if isinstance(inner, functools.partial):
        inner = inner.func
    module = getattr(inner, "__module__", None) or "?"
    return f"{module}.{getattr(inner, '__qualname__', type(inner).__name__)}"


def task_payload(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 cache: pickling.ByValueCache | None = None) -> bytes:
    """The pickle a child runs: ``(fn, args, kwargs)``, multiprocessing's objects in it
    sent as for a child being spawned, code sent by value pickled once per ``cache``."""
    return pickling.dumps((fn, args, kwargs), what="function and its arguments",
                          extension=_objects(), cache=cache)


@functools.cache
def _objects() -> Any:
    from .mpobjects import OBJECTS  # on first use: it imports multiprocessing's reduction

    return OBJECTS


def run_isolated(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 settings: CallSettings) -> Any:
    """Run ``fn(*args, **kwargs)`` in a fresh child and return its result or raise;
    with a retry policy, again in a fresh child (with a larger cap if it escalates)."""
    payload = task_payload(fn, args, kwargs, getattr(fn, "by_value_cache", None))
    warm = warm_modules(fn, args, payload, settings.preload)
    name = function_name(fn)
    if settings.retry is None:
        return _run_once(payload, settings.limits, settings.reporting, warm, name,
                         settings.learn)
    from .._model.retry import Attempts

    attempts = Attempts(settings.retry, settings.limits)
    while True:
        try:
            return _run_once(payload, attempts.limits, settings.reporting, warm, name,
                             settings.learn)
        except Exception as exc:
            delay = attempts.failed(exc)
            if delay is None:
                raise
            if delay > 0:
                time.sleep(delay)  # the wait the user's tenacity strategy asked for


#: Told of each call's engine future as the call starts, in the caller's thread; each
#: returns what to call once the call has ended, or None. A Dask worker's plugin adds one
#: to know the child of the Dask task it runs, and kill it when Dask cancels the task.
call_watchers: list[Callable[[Future[Any]], Callable[[], None] | None]] = []


def _run_once(payload: bytes, limits: Limits, reporting: Reporting, warm: tuple[str, ...],
              name: str, learn: bool) -> Any:
    from .._engine.engine import get_engine

    engine = get_engine()
    future = engine.submit(payload, limits, reporting, warm, name, learn)
    ended = [watch(future) for watch in call_watchers] if call_watchers else ()
    try:
        return future.result()
    except KeyboardInterrupt:
        engine.cancel(future)
        try:
            future.exception(timeout=limits.kill_grace + 1.0)
        except Exception:  # noqa: BLE001 - the interrupt is what the caller must see
            pass
        raise
    finally:
        for end in ended:
            if end is not None:
                end()


@overload
def isolated(fn: Callable[P, R], /) -> IsolatedFunction[P, R]: ...


@overload
def isolated(fn: None = None, /, *, limits: Limits | None = None,
             reporting: Reporting | None = None, **options: Unpack[CallOptions]
             ) -> Callable[[Callable[P, R]], IsolatedFunction[P, R]]: ...


def isolated(fn: Callable[P, R] | None = None, /, *, limits: Limits | None = None,
             reporting: Reporting | None = None, **options: Unpack[CallOptions]
             ) -> IsolatedFunction[P, R] | Callable[[Callable[P, R]], IsolatedFunction[P, R]]:
    settings, _ = settle("isolated", dict(options), limits, reporting)

    def decorate(func: Callable[P, R]) -> IsolatedFunction[P, R]:
        if not callable(func):
            raise ConfigurationError(f"isolated() needs a callable, got {func!r}")
        return IsolatedFunction(func, settings)

    return decorate if fn is None else decorate(fn)


isolated.__doc__ = """Run the decorated function in a fresh child process, under a memory cap.

Usable bare (``@isolated``), with options (``@isolated(max_mem="512MB", timeout=60)``)
or as a function (``isolated(max_mem="64MB")(fn)``). Each call forks a fresh child
from isolator's zygote, runs the function there and returns its result, or raises:

* the function's own exception, same type and message, the child's traceback as
  ``__cause__``;
* :class:`MemoryLimitExceeded` when the child's process tree passed ``max_mem``, with
  its post-mortem report as ``exc.report``;
* :class:`TaskTimeout` when it ran longer than ``timeout`` seconds;
* :class:`WorkerLost` when the child died without a result;
* :class:`SerializationError` when an argument, the result or the exception would
  not pickle.

The options below may be given as keywords, or grouped: ``limits=Limits(...)`` (the
memory and time options) and ``reporting=Reporting(...)`` (``report_dir``,
``on_report``, ``forensics``), which several functions and pools can share; each option
once. With a retry policy every attempt runs in a fresh child, and when every attempt
fails the last real error is raised, every attempt's error in its ``attempts`` list.
Bad options raise :class:`ConfigurationError` here, not at the first call.

""" + docstring(CallOptions)
show_options(isolated, CallOptions)
