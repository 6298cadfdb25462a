"""Helpers every collector shares: the time budget, safe sizes, names and reprs.

Everything here runs inside a process that has just crossed its memory cap, on a heap
that may hold objects with broken ``__repr__`` or ``__sizeof__``: no helper raises, and
none builds a string proportional to the size of the user's data.
"""

from __future__ import annotations

import gc
import reprlib
import sys
import time
import types
from itertools import islice
from typing import Any

from .._wire.procfs import self_rss

# A report's value reprs are cut to this many characters by default (``max_repr``).
DEFAULT_MAX_REPR = 80

_QUALNAME = type.__dict__["__qualname__"]
_MODULE = type.__dict__["__module__"]
_type_names: dict[type, str] = {}

# Objects that are code, not data: never counted inside a container's size and never
# the subject of a holder chain.
CODE_TYPES: tuple[type, ...] = (
    type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType,
    types.FrameType, types.MethodType, types.WrapperDescriptorType,
    types.MethodDescriptorType, types.GetSetDescriptorType, types.MemberDescriptorType,
)


def is_code(obj: object) -> bool:
    """True for classes, modules, functions and the like (exact type test: ``isinstance``
    would look ``__class__`` up on the object, which can run the user's code)."""
    return issubclass(type(obj), CODE_TYPES)


class Skipped(Exception):
    """A collector could not run; the message (ours, never user data) says why."""


class OutOfTime(Skipped):
    """A collector stopped because the time budget ran out."""


class Budget:
    """A deadline on ``time.monotonic()``, checked between steps."""

    __slots__ = ("end", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def check(self, what: str) -> None:
        if time.monotonic() >= self.end:
            raise OutOfTime(f"time budget of {self.seconds:g} s exhausted {what}".rstrip())


def type_name(cls: type) -> str:
    """``module.qualname`` of a class, read without running metaclass code."""
    name = _type_names.get(cls)
    if name is None:
        try:
            module, qual = _MODULE.__get__(cls), _QUALNAME.__get__(cls)
        except Exception:  # noqa: BLE001 - a half-built class must not stop a report
            module, qual = None, None
        if type(qual) is not str:
            qual = "?"
        name = f"{module}.{qual}" if type(module) is str else qual
        _type_names[cls] = name
    return name


def array_nbytes(obj: object) -> int:
    """``nbytes`` of a numpy array (of a view too: the data it shows), else 0."""
    numpy = sys.modules.get("numpy")
    ndarray = getattr(numpy, "ndarray", None) if numpy is not None else None
    if type(ndarray) is not type or not issubclass(type(obj), ndarray):
        return 0
    try:
        return int(ndarray.__dict__["nbytes"].__get__(obj))
    except Exception:  # noqa: BLE001
        return 0


def own_caches() -> list[int]:
    """ids of the collectors' own caches: never reported as the user's memory."""
    from . import _sizing

    return [id(_type_names), id(_sizing._sizers)]


def clear_caches() -> None:
    """Forget the classes seen (a cache keyed by class keeps the class alive)."""
    from . import _sizing

    _type_names.clear()
    _sizing._sizers.clear()


def sizeof(obj: object) -> int:
    """``sys.getsizeof`` that never raises (a broken ``__sizeof__`` counts as 0)."""
    try:
        return sys.getsizeof(obj)
    except Exception:  # noqa: BLE001 - user __sizeof__ may raise anything
        return 0


def deep_size(obj: Any, skip: set[int], sample: int = 20_000) -> int:
    """Size of ``obj`` plus what it refers to one level down (deduplicated).

    Code objects, classes, modules and the ids in ``skip`` (module namespaces) are not
    counted. For very big containers the referents are sampled and the sum scaled, so
    the cost stays bounded (``sample`` referents at most).
    """
    size = max(sizeof(obj), array_nbytes(obj))
    if is_code(obj):
        return size
    if issubclass(type(obj), dict):  # get_referents leaves out the str keys of a dict
        total = 2 * dict.__len__(obj)
        refs = [part for item in islice(dict.items(obj), sample // 2) for part in item]
    else:
        refs = gc.get_referents(obj)
        total = len(refs)
        if total > sample:
            refs = refs[:: total // sample]
    seen: set[int] = set()
    inner = 0
    for ref in refs:
        ident = id(ref)
        if ident in seen or ident in skip or is_code(ref):
            continue
        seen.add(ident)
        inner += sizeof(ref)
    if total > len(refs) and refs:
        inner = inner * total // len(refs)
    return size + inner


class _Repr(reprlib.Repr):
    """reprlib with bounded reprs of bytes-like objects (their full repr is huge)."""

    def repr_bytes(self, obj: Any, level: int) -> str:
        return self._cut(obj)

    def repr_bytearray(self, obj: Any, level: int) -> str:
        return self._cut(obj)

    def _cut(self, obj: Any) -> str:
        head = repr(obj[: self.maxstring])
        return head if len(obj) <= self.maxstring else f"{head}... ({len(obj)} bytes)"


def safe_repr(obj: object, limit: int) -> str:
    """A repr of at most ``limit`` characters; never raises."""
    maker = _Repr()
    maker.maxstring = maker.maxother = maker.maxlong = max(limit, 8)
    try:
        text = maker.repr(obj)
    except Exception:  # noqa: BLE001 - a broken __repr__ is the user's, not ours
        return f"<{type_name(type(obj))} object; repr failed>"
    if type(text) is not str:
        return f"<{type_name(type(obj))} object>"
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def error_text(exc: BaseException, values: bool) -> str:
    """Why a collector failed: the exception's type, and its message only if values
    from the user's data may be recorded (a message can quote them)."""
    name = type_name(type(exc))
    if not values:
        return f"{name} inside the collector"
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001
        message = ""
    return f"{name}: {message[:200]}" if message else name


def rss_bytes() -> int | None:
    """RssAnon + RssShmem in bytes, the metric the supervisor caps (None if /proc is
    unreadable)."""
    try:
        return self_rss()
    except OSError:
        return None
