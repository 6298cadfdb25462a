"""Pickling across the process boundary: plain pickle where it suffices, dill where not.

Plain pickle (the C pickler, no hooks) is tried first because it is several times
faster, and it is what most calls need. Three cases need more:

* Caller to child: lambdas, closures and anything defined in the caller's ``__main__``.
  Pickle would write a reference the child cannot resolve (the child's ``__main__`` is
  not the caller's script), so these go by value through dill: each such object alone,
  once per pool or isolated function, embedded in an otherwise plain pickle.
* Caller to child: multiprocessing's own objects (a Manager's proxies, a Lock or a Queue
  made in the spawn context). The child is not the caller's child, so they are pickled
  as they are for a process being spawned, through an ``Extension`` the caller's side
  of isolator passes in (``isolator._api.mpobjects``).
* Child to caller: a result or exception whose class the child got by value from the
  caller's ``__main__``. Pickle cannot find it under its name in the child, but the caller
  can, so it is written as a reference that the caller resolves against its own
  ``__main__``, and ``except MyError`` keeps working there.

An exception a child sends is wrapped so that loading it never fails (``exceptions``).
Either way the reader is plain ``pickle.loads``.
"""

from __future__ import annotations

import _thread
import importlib
import io
import pickle
import sys
import types
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

from .._errors import PicklingFailed, UnpicklingFailed

PROTOCOL = 5
_MAIN_MARKER = b"__main__"


class Refused(Exception):
    """Raised by an ``Extension`` for a value that cannot go to a child at all; its
    message (why, and what to use instead) becomes the ``PicklingFailed``'s."""


class Extension(Protocol):
    """What the caller's side adds to the pickling of a task."""

    markers: tuple[bytes, ...]  # a plain pickle holding one of these is made again

    def reduce(self, obj: Any) -> Any:
        """A reduce tuple for ``obj``, or NotImplemented; may raise ``Refused``."""

    def dispatch_table(self) -> Mapping[type, Any]:
        """Reducers for types plain pickle does not know how to send."""

    def sending(self) -> AbstractContextManager[object]:
        """The context the extension's objects are pickled in."""

    def by_value(self, obj: Any) -> bytes:
        """``obj`` pickled by value (dill), with the extension's reducers."""


def _is_code(obj: Any) -> bool:
    return isinstance(obj, (types.FunctionType, type)) or hasattr(obj, "__isolated_options__")


def _plain_name(obj: Any) -> bool:
    qualname = getattr(obj, "__qualname__", "")
    return "<locals>" not in qualname and "<lambda>" not in qualname


def main_attribute(qualname: str) -> Any:
    """Resolve ``qualname`` in this process's ``__main__`` (used by unpickling)."""
    obj: Any = sys.modules["__main__"]
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def import_wrapped(module: str, qualname: str) -> Any:
    """The function behind the isolated wrapper at ``module.qualname`` (for unpickling)."""
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return getattr(obj, "__wrapped__", obj)


def same(obj: Any) -> Any:
    """Identity, for ``__reduce__`` results that stand for another object."""
    return obj


#: What a caller keeps of the code it sent by value: id -> (the object, its dill pickle).
ByValueCache = dict[int, tuple[Any, bytes]]


class _CallerPickler(pickle.Pickler):
    """The C pickler, with code the child cannot import by name (a ``__main__``
    function or class, a lambda, a closure) each pickled by dill on its own and
    embedded as bytes. Only that code goes through dill's pure-Python pickler, and only
    once per ``cache`` (a pool's, an isolated function's); the items and arguments
    around it go through the C pickler, unit after unit."""

    def __init__(self, file: io.BytesIO, extension: Extension | None,
                 cache: ByValueCache | None) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self._extension, self._cache = extension, cache
        self.by_value = False  # something in the pickle needs dill to load
        if extension is not None:
            self.dispatch_table = extension.dispatch_table()

    def reducer_override(self, obj: Any) -> Any:
        in_main = getattr(obj, "__module__", None) == "__main__"
        if _is_code(obj) and (in_main or not _plain_name(obj)):
            self.by_value = True
            return (by_value, (self._blob(obj),))
        if self._extension is not None:
            return self._extension.reduce(obj)
        return NotImplemented

    def _blob(self, obj: Any) -> bytes:
        cached = self._cache.get(id(obj)) if self._cache is not None else None
        if cached is not None and cached[0] is obj:
            return cached[1]
        if self._extension is not None:
            blob = self._extension.by_value(obj)
        else:
            blob = dill_dumps(obj)
        if self._cache is not None:
            self._cache[id(obj)] = (obj, blob)  # kept alive with it: the id stays its own
        return blob


_LOADED: dict[bytes, Any] = {}  # in a child: code loaded by value, by its pickle
_LOADED_AT_MOST = 128


def by_value(blob: bytes) -> Any:
    """In a child: the code a caller sent by value, loaded once per worker."""
    found = _LOADED.get(blob)
    if found is None:
        found = pickle.loads(blob)  # a dill pickle: it imports dill itself
        if len(_LOADED) >= _LOADED_AT_MOST:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[blob] = found
    return found


class _ChildPickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if _is_code(obj) and getattr(obj, "__module__", None) == "__main__" and _plain_name(obj):
            return (main_attribute, (obj.__qualname__,))
        return NotImplemented


# .to_child: this thread is pickling a task for a child (``_thread``'s, not threading's:
# the zygote, which imports this module, holds no threading)
_sending = _thread._local()


def to_a_child() -> bool:
    """Whether this thread is pickling what a caller sends to its child now (an isolated
    function goes there unwrapped; pickled by anyone else, it stays isolated)."""
    return bool(getattr(_sending, "to_child", False))


def dumps(obj: Any, *, what: str = "value", in_child: bool = False,
          extension: Extension | None = None, cache: ByValueCache | None = None) -> bytes:
    """Pickle ``obj`` for the other side; ``PicklingFailed`` (a ``SerializationError``
    and a ``pickle.PicklingError``) when nothing can, the pickler's error as its cause.
    ``cache`` keeps the dill pickles of code sent by value, for the next call."""
    if in_child:
        if isinstance(obj, BaseException):
            return exceptions.envelope(obj)
        return pickled(obj, what, in_child, extension, cache)
    outer = to_a_child()
    _sending.to_child = True
    try:
        return pickled(obj, what, in_child, extension, cache)
    finally:
        _sending.to_child = outer


def pickled(obj: Any, what: str, in_child: bool, extension: Extension | None,
            cache: ByValueCache | None = None) -> bytes:
    """``dumps`` without the exception wrapper."""
    first: Exception | None = None
    try:
        data = pickle.dumps(obj, PROTOCOL)
        if _MAIN_MARKER not in data and (
                extension is None or not any(m in data for m in extension.markers)):
            return data
    except Exception as exc:  # noqa: BLE001 - any failure of the fast path earns a slower try
        first = exc
    buffer = io.BytesIO()
    try:
        if in_child:
            _ChildPickler(buffer, protocol=PROTOCOL).dump(obj)
            return buffer.getvalue()
        with extension.sending() if extension is not None else nullcontext():
            pickler = _CallerPickler(buffer, extension, cache)
            pickler.dump(obj)
        return _DillPickle(buffer.getvalue()) if pickler.by_value else buffer.getvalue()
    except Refused as refusal:
        raise PicklingFailed(f"cannot send the {what} to another process: {refusal}",
                             what=what) from None
    except Exception as exc:  # noqa: BLE001 - what the fuller pickler saw is the reason
        first = exc
    return _dill_dumps(obj, what, first, in_child, extension)


class _DillPickle(bytes):
    """A pickle that needs dill to load: known without scanning it again."""


def dill_dumps(obj: Any) -> bytes:
    """``obj`` by value through dill (``recurse``: only the globals its code uses), the
    modules it refers to by name (see ``by_name``)."""
    import dill

    buffer = io.BytesIO()
    pickler = dill.Pickler(buffer, protocol=PROTOCOL, recurse=True)
    pickler.dispatch = by_name(pickler.dispatch)
    pickler.dump(obj)
    return buffer.getvalue()


def by_name(dispatch: Any) -> Any:
    """A copy of a dill pickler's dispatch table in which a module the child can import
    by name goes by name. dill sends a module from outside the standard library and
    site-packages by value, its whole namespace with it: a script's own ``helpers.py``
    next to it, with every global it holds (and fails on one that does not pickle, such
    as a ``ctypes`` library handle). The child imports it as the caller did, from the
    caller's ``sys.path``. ``__main__`` and modules made at run time still go by value."""
    saved = type(dispatch)(dispatch)
    by_value_save = dispatch[types.ModuleType]

    def save_module(pickler: Any, module: types.ModuleType) -> None:
        name = module.__name__
        if name != "__main__" and sys.modules.get(name) is module and \
                getattr(module, "__spec__", None) is not None:
            pickler.save_reduce(importlib.import_module, (name,), obj=module)
        else:
            by_value_save(pickler, module)

    saved[types.ModuleType] = save_module
    return saved


def _dill_dumps(obj: Any, what: str, first: Exception | None, in_child: bool,
                extension: Extension | None) -> bytes:
    try:
        if extension is not None:
            with extension.sending():
                return _DillPickle(extension.by_value(obj))
        return _DillPickle(dill_dumps(obj))
    except Refused as refusal:
        raise PicklingFailed(f"cannot send the {what} to another process: {refusal}",
                             what=what) from None
    except Exception as exc:  # noqa: BLE001 - dill was the last resort; say why it failed
        cause = first or exc
        raise PicklingFailed(
            f"cannot send the {what} to another process: {type(cause).__name__}: {cause}",
            what=what, value=_short_repr(obj) if in_child else None,
            reason=_short_repr(cause) if in_child else None,
        ) from cause


def _short_repr(obj: Any, limit: int = 1000) -> str:
    try:
        text = repr(obj)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not hide the real error
        return f"<{type(obj).__qualname__} object, repr() raised {type(exc).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def loads(data: bytes, *, what: str = "value") -> Any:
    """Unpickle what ``dumps`` made; ``UnpicklingFailed`` with the reason when it fails."""
    try:
        return pickle.loads(data)
    except BaseException as exc:
        # Whatever the pickle runs (a ``__reduce__`` returning ``sys.exit``, say) fails
        # this one value: it must never unwind the thread that reads it.
        raise UnpicklingFailed(
            f"cannot load the {what} sent by another process: {type(exc).__name__}: {exc}",
            what=what,
        ) from exc


def needs_dill(data: bytes) -> bool:
    """Whether a pickle needs dill to load (the zygote imports it ahead of time then)."""
    return isinstance(data, _DillPickle)


# Last, since it uses what is above; loaded here so that a child that raises (after a
# soft breach, say, with little memory left) has it already.
from . import exceptions  # noqa: E402
