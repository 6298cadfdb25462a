"""What ``IsolatedPool`` raises where ``multiprocessing.Pool`` raises its own types.

Code written for ``Pool`` catches ``multiprocessing.TimeoutError`` around ``get`` and
``multiprocessing.pool.MaybeEncodingError`` for a result that could not be sent back;
code written for ``multiprocess.Pool`` (the dill-based fork of multiprocessing) catches
that library's classes of the same names, which are other classes. isolator's errors
are instances of multiprocessing's always, and of multiprocess's as well when the
caller has imported it (so nobody who does not use it pays the 65 ms of importing it
and dill). Those variants are made on first use and live here under their own names,
so that they pickle by reference like any class.
"""

from __future__ import annotations

import multiprocessing
import sys
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import PicklingFailed

if TYPE_CHECKING:  # the stubs do not have it
    class MaybeEncodingError(Exception):
        exc: str
        value: str | None
else:
    from multiprocessing.pool import MaybeEncodingError

E = TypeVar("E", bound=BaseException)


class ResultTimeout(multiprocessing.TimeoutError, TimeoutError):
    """No result in time: ``multiprocessing.TimeoutError``, what code written for ``Pool``
    catches, and the builtin ``TimeoutError`` as well."""


class ResultEncodingError(PicklingFailed, MaybeEncodingError):
    """A child could not pickle its result: ``multiprocessing.pool.MaybeEncodingError``
    (with its ``exc`` and ``value``, the ``repr()`` of the pickler's error and of the
    value, and its message) as ``Pool`` raises it, and a ``PicklingFailed``."""

    def __init__(self, message: str, *, what: str = "result", value: str | None = None,
                 reason: str | None = None) -> None:
        # Not MaybeEncodingError.__init__, which takes the objects and repr()s them:
        # here they are text already, made in the child.
        Exception.__init__(self, message)
        self.what, self.value, self.reason = what, value, reason
        self.exc = reason or message


# name -> (base here, the multiprocess class to add, from which module)
_VARIANTS = {
    "ResultTimeoutMultiprocess": (ResultTimeout, "multiprocess", "TimeoutError"),
    "ResultEncodingErrorMultiprocess": (ResultEncodingError, "multiprocess.pool",
                                        "MaybeEncodingError"),
}
_made: dict[str, type[BaseException]] = {}


def __getattr__(name: str) -> Any:
    # PEP 562: a variant is made when first asked for, by the pools or by unpickling.
    if name not in _VARIANTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _made:
        import importlib

        base, module, other = _VARIANTS[name]
        extra = getattr(importlib.import_module(module), other)
        variant = type(base.__name__, (base, extra), {"__module__": __name__,
                                                      "__doc__": base.__doc__})
        variant.__qualname__ = name
        _made[name] = variant
    return _made[name]


def _flavour(base: type[E], variant: str) -> type[E]:
    if "multiprocess" in sys.modules:  # the caller may catch multiprocess's classes
        made: type[E] = __getattr__(variant)
        return made
    return base


def timeout_error() -> BaseException:
    """The ``ResultTimeout`` a ``get`` or ``next`` raises."""
    return _flavour(ResultTimeout, "ResultTimeoutMultiprocess")()


def pool_error(exc: BaseException) -> BaseException:
    """The error as ``Pool`` would raise it: a result the child could not pickle becomes
    a ``MaybeEncodingError``; anything else is itself."""
    if not isinstance(exc, PicklingFailed) or exc.what != "result" \
            or isinstance(exc, ResultEncodingError):
        return exc
    cls = _flavour(ResultEncodingError, "ResultEncodingErrorMultiprocess")
    encoded = cls(str(exc.args[0]) if exc.args else "", value=exc.value, reason=exc.reason)
    encoded.__cause__ = exc.__cause__  # the child's traceback
    return encoded
