"""Where the interpreter keeps references no object refers to: roots a user can name.

gc sees objects, not the interpreter's own tables: an ``atexit`` callback, an audit
hook, a signal handler, the values of context variables and the interpreter's hooks
(``sys.excepthook``, ``sys.gettrace()``) are held from C, so a search through
``gc.get_referrers`` ends at them with "held by no object gc can see". Each is read here
the way the user registered it, and becomes a named root:
``atexit.register(open_sink.<locals>.flush)``, ``signal handler SIGUSR1``,
``etl.ctx._BATCH.get()``, ``logging.getLogger('etl.load')``.

``atexit`` and ``sys.addaudithook`` cannot be listed on 3.11, so :func:`watch` (called
once in the zygote) wraps both to remember what is registered. A child leaves through
``os._exit``: its atexit callbacks never run, so anything they hold is held for good.
"""

from __future__ import annotations

import atexit
import contextvars
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import MethodType
from typing import Any

from ._common import c_attr as _get
from ._common import type_name

#: (callable, args, kwargs) of every atexit registration made since :func:`watch`.
_exits: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
#: audit hooks added since :func:`watch` (they can never be removed).
_audits: list[Any] = []
_watching = False
_real_register = atexit.register
_real_unregister = atexit.unregister
_real_addaudithook = sys.addaudithook

_HOOKS = ("excepthook", "displayhook", "unraisablehook", "breakpointhook")


def _register(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Callable[..., Any]:
    """``atexit.register``, remembered."""
    found = _real_register(func, *args, **kwargs)
    _exits.append((func, args, kwargs))
    return found


def _unregister(func: Callable[..., Any], /) -> None:
    """``atexit.unregister``, forgotten as well (it compares with ``==``, so do we)."""
    _real_unregister(func)
    _exits[:] = [entry for entry in _exits if not _same(entry[0], func)]


def _same(a: object, b: object) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - a broken __eq__: keep the entry
        return False


def _addaudithook(hook: Callable[[str, tuple[Any, ...]], None], /) -> None:
    _real_addaudithook(hook)
    _audits.append(hook)


def watch() -> None:
    """Remember atexit registrations and audit hooks from now on (idempotent).

    Called in the zygote, so that every child it forks inherits the wrappers; the real
    functions still do the work."""
    global _watching
    if _watching:
        return
    _watching = True
    atexit.register = _register
    atexit.unregister = _unregister
    sys.addaudithook = _addaudithook  # type: ignore[assignment]


def own_lists() -> list[int]:
    """ids of the lists this module keeps: the collector's, never a holder."""
    return [id(_exits), id(_audits)]


Root = tuple[str, Any]  # (the name a user wrote, the object it names)


def registry_roots(namespace_names: dict[int, str], ours: Callable[[object], bool]
                   ) -> Iterator[Root]:
    """Every object the interpreter holds from C that a user put there, named.

    ``namespace_names`` maps ids of module-level values to their ``module.name`` (to
    name a context variable as the code does); ``ours`` tells isolator's own objects."""
    for func, args, kwargs in list(_exits):
        if not ours(func):
            yield f"atexit.register({_callable_name(func)})", func
            if args or kwargs:
                yield f"atexit.register({_callable_name(func)}, ...) arguments", (args, kwargs)
    for hook in list(_audits):
        if not ours(hook):
            yield f"sys.addaudithook({_callable_name(hook)})", hook
    yield from _signal_handlers(ours)
    for var, value in contextvars.copy_context().items():
        name = namespace_names.get(id(var)) or f"ContextVar({var.name!r})"
        yield f"{name}.get()", value
    for name in _HOOKS:
        hook = getattr(sys, name, None)
        if hook is not None and hook is not getattr(sys, f"__{name}__", None) \
                and not ours(hook):
            yield f"sys.{name}", hook
    for label, get in (("sys.gettrace()", sys.gettrace), ("sys.getprofile()", sys.getprofile)):
        hook = get()
        if hook is not None and not ours(hook):
            yield label, hook
    if threading.excepthook is not threading.__excepthook__:
        yield "threading.excepthook", threading.excepthook
    yield from _loggers()


def _signal_handlers(ours: Callable[[object], bool]) -> Iterator[Root]:
    plain = (signal.SIG_DFL, signal.SIG_IGN, None, signal.default_int_handler)
    for signum in sorted(signal.valid_signals()):
        try:
            handler = signal.getsignal(signum)
        except (ValueError, OSError):
            continue
        if any(handler is p for p in plain) or ours(handler):
            continue
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {int(signum)}"
        yield f"signal handler {name}", handler


def _loggers() -> Iterator[Root]:
    logging = sys.modules.get("logging")
    if logging is None:
        return
    root = getattr(logging, "root", None)
    if root is not None:
        yield "logging.getLogger()", root
    manager = getattr(getattr(logging, "Logger", None), "manager", None)
    for name, logger in list(getattr(manager, "loggerDict", {}).items()):
        if type(name) is str and isinstance(logger, logging.Logger):
            yield f"logging.getLogger({name!r})", logger


def _callable_name(func: object) -> str:
    """``open_sink.<locals>.flush``, ``Sink.close`` (a bound method), ``functools.partial``."""
    target = _get(func, "__func__") if type(func) is MethodType else func
    name = _get(target, "__qualname__")
    return name if type(name) is str else type_name(type(func))
