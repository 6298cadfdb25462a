"""Pickling across the process boundary: plain pickle where it suffices, dill where not.

Plain pickle (the C pickler, no hooks) is tried first because it is several times
faster, and it is what most calls need. Two cases need more:

* Caller to child: lambdas, closures and anything defined in the caller's ``__main__``.
  Pickle would write a reference the child cannot resolve (the child's ``__main__`` is
  not the caller's script), so these go by value through dill.
* Child to caller: a result or exception whose class the child got by value from the
  caller's ``__main__``. Pickle cannot find it under its name in the child, but the caller
  can, so it is written as a reference that the caller resolves against its own
  ``__main__``, and ``except MyError`` keeps working there.

Either way the reader is plain ``pickle.loads``.
"""

from __future__ import annotations

import importlib
import io
import pickle
import sys
import types
from typing import Any

from .._errors import SerializationError

PROTOCOL = 5
_MAIN_MARKER = b"__main__"


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


class _NeedsDill(Exception):
    pass


class _CallerPickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        in_main = getattr(obj, "__module__", None) == "__main__"
        if _is_code(obj) and (in_main or not _plain_name(obj)):
            raise _NeedsDill
        return NotImplemented


class _ChildPickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if _is_code(obj) and getattr(obj, "__module__", None) == "__main__" and _plain_name(obj):
            return (main_attribute, (obj.__qualname__,))
        return NotImplemented


def dumps(obj: Any, *, what: str = "value", in_child: bool = False) -> bytes:
    """Pickle ``obj`` for the other side; SerializationError when nothing can."""
    first: Exception | None = None
    try:
        data = pickle.dumps(obj, PROTOCOL)
        if _MAIN_MARKER not in data:
            return data
    except Exception as exc:  # noqa: BLE001 - any failure of the fast path earns a slower try
        first = exc
    pickler = _ChildPickler if in_child else _CallerPickler
    buffer = io.BytesIO()
    try:
        pickler(buffer, protocol=PROTOCOL).dump(obj)
        return buffer.getvalue()
    except _NeedsDill:
        pass
    except Exception as exc:  # noqa: BLE001
        first = first or exc
    return _dill_dumps(obj, what, first)


class _DillPickle(bytes):
    """A pickle that needs dill to load: known without scanning it again."""


def _dill_dumps(obj: Any, what: str, first: Exception | None) -> bytes:
    import dill

    try:
        return _DillPickle(dill.dumps(obj, protocol=PROTOCOL, recurse=True))
    except Exception as exc:  # noqa: BLE001 - dill was the last resort; say why it failed
        cause = first or exc
        raise SerializationError(
            f"cannot send the {what} to another process: {type(cause).__name__}: {cause}"
        ) from cause


def loads(data: bytes, *, what: str = "value") -> Any:
    """Unpickle what ``dumps`` made; SerializationError with the reason when it fails."""
    try:
        return pickle.loads(data)
    except BaseException as exc:
        # Whatever the pickle runs (a ``__reduce__`` returning ``sys.exit``, say) fails
        # this one value: it must never unwind the thread that reads it.
        raise SerializationError(
            f"cannot load the {what} sent by another process: {type(exc).__name__}: {exc}"
        ) from exc


def needs_dill(data: bytes) -> bool:
    """Whether a pickle needs dill to load (the zygote imports it ahead of time then)."""
    return isinstance(data, _DillPickle)
