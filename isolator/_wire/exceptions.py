"""An exception on its way from a child to the caller: it always arrives as something.

The child sends three forms, each used if the one before fails to load in the caller:
the exception's own pickle (what the stdlib's pools send); its class, ``args`` and
``__dict__``, rebuilt without calling the class (as pickle rebuilds other objects), for
an ``__init__`` that takes other arguments than ``args`` (a ``ParseError(msg, line)``
whose ``__init__`` passes only ``msg`` on cannot be called again); and its type and
message as text, which become a ``RemoteError`` when its class is not to be had here.
"""

from __future__ import annotations

import pickle
import types
from typing import Any

from .._errors import PicklingFailed, RemoteError
from .pickling import PROTOCOL, pickled

_HEAPTYPE = 1 << 9


class _Envelope:
    """An exception as a child sends it: its own pickle, its class with ``args`` and
    ``__dict__``, and its type and message as text, each used if the one before fails."""

    def __init__(self, own: bytes | None, parts: bytes | None, type_name: str, message: str,
                 why: str) -> None:
        self.fields = (own, parts, type_name, message, why)

    def __reduce__(self) -> tuple[Any, ...]:
        return (load_exception, self.fields)


def envelope(exc: BaseException) -> bytes:
    """``exc`` as a child sends it (``pickling.dumps`` of an exception in a child)."""
    cls = type(exc)
    why = ""
    own = parts = None
    try:
        own = pickled(exc, "exception", True, None)
    except PicklingFailed as failure:
        why = str(failure.__cause__ or failure)
    # Only a class with an __init__ (or __new__) of its own may fail to be called again
    # with its args; the others need no second pickle of their state.
    if own is None or any(isinstance(getattr(cls, name, None), types.FunctionType)
                          for name in ("__init__", "__new__")):
        try:
            parts = pickled((cls, exc.args, dict(getattr(exc, "__dict__", {}))),
                           "exception", True, None)
        except PicklingFailed as failure:
            why = why or str(failure.__cause__ or failure)
    try:
        message = str(exc)
    except Exception as failure:  # noqa: BLE001 - the type alone still says something
        message = f"<str() raised {type(failure).__name__}>"
    type_name = f"{cls.__module__}.{cls.__qualname__}"
    return pickle.dumps(_Envelope(own, parts, type_name, message, why), PROTOCOL)


def load_exception(own: bytes | None, parts: bytes | None, type_name: str, message: str,
                   why: str) -> BaseException:
    """The exception a child sent, rebuilt as well as this process can (unpickling)."""
    reason: BaseException | None = None
    if own is not None:
        try:
            exc = pickle.loads(own)
            if isinstance(exc, BaseException):
                return exc
        except BaseException as failure:  # noqa: BLE001 - an __init__ that needs other arguments
            reason = failure
    if parts is not None:
        try:
            cls, args, state = pickle.loads(parts)
            return _rebuilt(cls, tuple(args), state)
        except BaseException as failure:  # noqa: BLE001 - its class is not to be had here
            reason = reason or failure
    if reason is not None:
        why = f"{type(reason).__name__}: {reason}"
    short = type_name.rpartition(".")[2]
    return RemoteError(f"the task raised {short}: {message}; it could not be rebuilt here "
                       f"({why})", type_name=type_name, message=message)


def _rebuilt(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]
             ) -> BaseException:
    # As pickle's own reconstructor does for objects: the instance without the class's
    # __init__, through the C-level __new__ the class really inherits.
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        raise TypeError(f"{cls!r} is not an exception class")
    static: Any = cls
    while static.__flags__ & _HEAPTYPE:
        static = static.__base__
    exc = static.__new__(cls, *args)
    try:
        static.__init__(exc, *args)  # OSError's errno and strerror come from args
    except Exception:  # noqa: BLE001 - args that the builtin base does not take
        exc.args = args
    exc.__dict__.update(state)
    return exc  # type: ignore[no-any-return]
