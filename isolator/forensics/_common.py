"""Helpers every collector shares: the time budget, safe sizes, names and reprs.

Everything here runs inside a process that has just crossed its memory cap, on a heap
that may hold objects with broken ``__repr__`` or ``__sizeof__``: no helper raises, and
none builds a string proportional to the size of the user's data.
"""

from __future__ import annotations

import gc
import os
import reprlib
import sys
import sysconfig
import time
import types
from collections import deque
from itertools import islice
from typing import Any, TypeVar

from .._wire.procfs import self_rss

_T = TypeVar("_T")

# A report's value reprs are cut to this many characters by default (``max_repr``).
DEFAULT_MAX_REPR = 80

_QUALNAME = type.__dict__["__qualname__"]
_MRO = type.__dict__["__mro__"]
_CLASS_DICT = type.__dict__["__dict__"]
_C_DESCRIPTORS = (types.GetSetDescriptorType, types.MemberDescriptorType)
MISSING = object()
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


def _dirs(*keys: str) -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {os.path.realpath(paths[key]) + os.sep for key in keys if paths.get(key)}
    if "purelib" in keys:
        found.update(os.path.realpath(p) + os.sep for p in sys.path
                     if p.rstrip(os.sep).endswith(("site-packages", "dist-packages")))
    return tuple(sorted(found))


PACKAGES_DIRS = _dirs("purelib", "platlib")
STDLIB_DIRS = _dirs("stdlib", "platstdlib")
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_origins: dict[str, str] = {}


def origin(path: object) -> str:
    """Whose code a file is: ``"user"``, ``"package"`` (an installed package),
    ``"stdlib"`` or ``"isolator"``."""
    if type(path) is not str or not path:
        return "stdlib"
    if path.startswith("<"):  # <frozen ...> is the stdlib; <string> and <stdin> are code
        return "user" if path in ("<stdin>", "<string>") else "stdlib"
    found = _origins.get(path)
    if found is None:
        real = os.path.realpath(path)
        if path.startswith(PACKAGE_DIR) or real.startswith(PACKAGE_DIR):
            found = "isolator"
        elif real.startswith(PACKAGES_DIRS):  # before the stdlib: a venv may sit inside it
            found = "package"
        elif real.startswith(STDLIB_DIRS):
            found = "stdlib"
        else:
            found = "user"
        _origins[path] = found
    return found


def is_library_file(path: object) -> bool:
    """A file of the standard library, an installed package or isolator itself."""
    return origin(path) != "user"


def c_attr(obj: object, attr: str) -> object:
    """``obj.attr`` through a C-level descriptor of its class only, else ``MISSING``:
    no property, ``__getattr__`` or other code of the user's runs."""
    for klass in _MRO.__get__(type(obj)):
        slot = _CLASS_DICT.__get__(klass).get(attr)
        if slot is not None:
            if type(slot) not in _C_DESCRIPTORS:
                return MISSING
            try:
                return slot.__get__(obj, type(obj))
            except Exception:  # noqa: BLE001 - an empty slot or a failing getter
                return MISSING
    return MISSING


def instance_dict(obj: object) -> dict[str, Any] | None:
    """An object's ``__dict__`` read through its C descriptor (on 3.11 this makes the
    dict exist if the attributes were kept inline: use it on few objects)."""
    found = c_attr(obj, "__dict__")
    return found if type(found) is dict else None


#: ids of the collectors' own structures that hold the user's objects (lists of
#: targets, the walks' sets, the stack's values...): never walked, sized or named.
OURS: set[int] = set()


def ours(obj: _T) -> _T:
    """Register one of the collectors' own structures; returns it."""
    OURS.add(id(obj))
    return obj


def is_isolator(obj: object) -> bool:
    """An object whose class is isolator's own, or one of its registered structures."""
    return id(obj) in OURS or type_name(type(obj)).startswith("isolator.")


class Skipped(Exception):
    """A collector could not run; the message (ours, never user data) says why."""


class OutOfTime(Skipped):
    """A collector stopped because the time budget ran out."""


class Budget:
    """A budget of CPU seconds of this process, checked between steps, with a deadline
    on the wall clock at ``WALL_FACTOR`` times as long.

    CPU time, so that a report says the same on a busy machine as on an idle one (the
    walk is the same work however many other processes share the cores); the wall
    clock bounds the wait when the machine is so loaded that the work barely runs.
    """

    __slots__ = ("cpu_end", "end", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.cpu_end = time.process_time() + seconds
        self.end = time.monotonic() + seconds * WALL_FACTOR

    def left(self) -> float:
        return min(self.cpu_end - time.process_time(),
                   (self.end - time.monotonic()) / WALL_FACTOR)

    def expired(self) -> bool:
        return time.process_time() >= self.cpu_end or time.monotonic() >= self.end

    def share(self, fraction: float) -> Budget:
        """A budget of ``fraction`` of this one's seconds, within what is left of it."""
        part = Budget(max(min(self.left(), self.seconds * fraction), 0.0))
        part.seconds = round(part.seconds, 3)
        return part

    def check(self, what: str) -> None:
        if self.expired():
            raise OutOfTime(f"time budget of {self.seconds:g} s exhausted {what}".rstrip())


WALL_FACTOR = 4.0


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
    """ids of the collectors' own caches, and of what isolator put in the standard
    library's (the source lines of its own files, which formatting the breach's
    traceback loaded into linecache): never reported as the user's memory."""
    from . import _registries, _sizing

    found = [id(_type_names), id(_sizing._sizers), id(_origins), *_registries.own_lists()]
    cache = getattr(sys.modules.get("linecache"), "cache", None)
    if type(cache) is dict:
        found.extend(id(entry) for path, entry in list(cache.items())
                     if type(path) is str and origin(path) == "isolator")
    return found


def clear_caches() -> None:
    """Forget the classes seen (a cache keyed by class keeps the class alive)."""
    from . import _sizing

    _type_names.clear()
    _sizing._sizers.clear()
    _origins.clear()
    OURS.clear()


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


_CONTAINERS = (list, tuple, dict, set, frozenset, deque)
_REPRLIB_TYPES = (str, bytes, bytearray, int, float, complex, bool, type(None), *_CONTAINERS)
_LONG_ITEMS = 256  # a container this long inside an object makes its repr unsafe


def _repr_is_bounded(obj: object) -> bool:
    """Whether an object's own ``__repr__`` cannot be huge: none of what it holds, two
    levels down, is a long container. ``asyncio.Queue``'s repr lists its whole queue and
    a dataclass's every field: on a leak, one such repr is a hundred MiB."""
    level = [ref for ref in gc.get_referents(obj) if type(ref) is not type]
    for _ in range(2):
        inner: list[Any] = []
        for ref in level[:64]:
            cls: Any = type(ref)
            if issubclass(cls, _CONTAINERS):
                if cls.__len__(ref) > _LONG_ITEMS:
                    return False
                items = dict.values(ref) if issubclass(cls, dict) else cls.__iter__(ref)
                inner.extend(islice(items, 64))
            elif issubclass(cls, (str, bytes, bytearray)) and cls.__len__(ref) > 1 << 16:
                return False
            elif gc.is_tracked(ref):
                inner.extend(gc.get_referents(ref)[:64])
        level = inner
    return True


def safe_repr(obj: object, limit: int) -> str:
    """A repr of at most ``limit`` characters; never raises, and never calls a
    ``__repr__`` that could build a string as big as the data (see above)."""
    cls = type(obj)
    if not issubclass(cls, _REPRLIB_TYPES) and \
            _class_repr(cls) is not object.__repr__ and not _repr_is_bounded(obj):
        return f"<{type_name(cls)} object at {id(obj):#x}; too big to repr>"
    maker = _Repr()
    maker.maxstring = maker.maxother = maker.maxlong = max(limit, 8)
    try:
        text = maker.repr(obj)
    except Exception:  # noqa: BLE001 - a broken __repr__ is the user's, not ours
        return f"<{type_name(type(obj))} object; repr failed>"
    if type(text) is not str:
        return f"<{type_name(type(obj))} object>"
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _class_repr(cls: type) -> object:
    for klass in _MRO.__get__(cls):
        found = _CLASS_DICT.__get__(klass).get("__repr__")
        if found is not None:
            return found
    return None


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
