"""Names for the references of a chain, the way the user wrote them in their code.

A chain is a list of objects, root first; :meth:`Namer.chain` turns each reference into
text: ``mymodule._CACHE``, ``Session.history``, ``.history``, ``['key']``, ``[3]``,
``load_tile (lru_cache)``, ``make_handler.<locals>.handler closure cell 'cache'``,
``local 'payload' in fail()``. Some references span several objects (a closure is
function -> tuple -> cell -> value) and become one name. Names of variables,
attributes, modules and functions are code and always shown; dict keys are data: the
"types" level shows only their type (``[<str>]``), the others a repr cut to
``max_repr`` characters. Attributes are read through C-level descriptors only, so no
user code (properties, ``__getattr__``) runs.
"""

from __future__ import annotations

import functools
import gc
from collections import deque
from types import (
    AsyncGeneratorType,
    CellType,
    CoroutineType,
    FrameType,
    FunctionType,
    GeneratorType,
    MemberDescriptorType,
    MethodType,
    TracebackType,
)
from typing import Any

from ._common import MISSING, safe_repr, type_name
from ._common import c_attr as _get
from ._common import instance_dict as _instance_dict
from ._stack import function_label, read_locals

_LRU = getattr(functools, "_lru_cache_wrapper", None)
_MRO = type.__dict__["__mro__"]
_CLASS_DICT = type.__dict__["__dict__"]
_FRAME_OF = {GeneratorType: "gi_frame", CoroutineType: "cr_frame", AsyncGeneratorType: "ag_frame"}
_ATTRS: dict[type, tuple[str, ...]] = {
    TracebackType: ("tb_frame", "tb_next"),
    MethodType: ("__self__", "__func__"),
    functools.partial: ("func", "args", "keywords"),
    CellType: ("cell_contents",),
    FrameType: ("f_back", "f_globals"),
    FunctionType: ("__defaults__", "__kwdefaults__", "__globals__"),
}
_EXC_ATTRS = ("__traceback__", "__context__", "__cause__", "args")
_C_ATTRS = ("base", "obj", "__self__", "__func__")  # numpy views, memoryviews, methods
_MISSING = MISSING
Edge = tuple[str, int]  # (name, index of the node the reference leads to)


class Namer:
    """Names references for one report level."""

    def __init__(self, values: bool, max_repr: int, drop: bool, exact: bool = True) -> None:
        self.values = values  # may data (dict keys) be shown?
        self.max_repr = max_repr
        self.drop = drop  # may f_locals snapshots be cleared after reading?
        self.exact = exact  # False: ``[*]`` for any key or index (no search in big dicts)

    def key(self, key: object) -> str:
        """``['key']`` (level default) or ``[<str>]`` (level types)."""
        if not self.values:
            return f"[<{type_name(type(key)).rpartition('.')[2]}>]"
        return f"[{safe_repr(key, self.max_repr)}]"

    def attribute(self, name: object) -> str:
        """``.history``; a key no code could spell as an attribute is data (a key)."""
        return f".{name}" if type(name) is str and name.isidentifier() else self.key(name)

    def chain(self, kind: str, label: str, nodes: list[Any]) -> list[Edge]:
        """Every reference of ``nodes``; the first is named after the root."""
        if kind == "module" and len(nodes) > 1:
            name = self.attribute(_key_in(nodes[0], nodes[1]))
            return [(label + name, 1), *self.edges(nodes, 1)]
        if kind == "class" and len(nodes) > 2 and nodes[1] is class_dict(nodes[0]):
            return [(f"{label}{self.attribute(_key_in(nodes[1], nodes[2]))}", 2),
                    *self.edges(nodes, 2)]
        return [(label, 0), *self.edges(nodes, 0)]

    def edges(self, nodes: list[Any], i: int) -> list[Edge]:
        found: list[Edge] = []
        while i < len(nodes) - 1:
            text, used = self.edge(nodes, i)
            i += used
            found.append((text, i))
        return found

    def edge(self, nodes: list[Any], i: int) -> tuple[str, int]:
        """The name of the reference ``nodes[i] -> nodes[i+1]``, and how many nodes
        it covers (more than one when several objects make one thing in the code)."""
        parent, child = nodes[i], nodes[i + 1]
        after = nodes[i + 2] if i + 2 < len(nodes) else _MISSING
        cls = type(parent)
        if issubclass(cls, dict):
            return (self.key(_key_in(parent, child)) if self.exact else "[*]"), 1
        if issubclass(cls, (list, tuple, deque)):
            return (_index(parent, child) if self.exact else "[*]"), 1
        if issubclass(cls, (set, frozenset)):
            return "{<member>}", 1
        if cls is FunctionType and child is _get(parent, "__closure__"):
            return _closure(parent, after, len(nodes) - i - 2)
        if cls is FunctionType and after is not _MISSING and (
                child is _get(parent, "__defaults__") or child is _get(parent, "__kwdefaults__")):
            return _default(parent, child, after), 2
        if cls is _LRU and child is not _instance_dict(parent):
            if child is (_instance_dict(parent) or {}).get("__wrapped__"):
                return ".__wrapped__", 1
            return f"{_qualname(parent)} (lru_cache)", 1  # its cache, or a cached result
        if cls is FrameType or cls in _FRAME_OF:
            found = self._local(parent, child, after)
            if found is not None:
                return found
        for attr in _ATTRS.get(cls, _EXC_ATTRS if issubclass(cls, BaseException) else ()):
            if _get(parent, attr) is child:
                return f".{attr}", 1
        return self._in_object(parent, child, after)

    def _local(self, parent: Any, child: object, after: object) -> tuple[str, int] | None:
        frame = parent if type(parent) is FrameType else _get(parent, _FRAME_OF[type(parent)])
        if type(frame) is not FrameType:
            return None
        where = f"{function_label(frame)}" + ("" if frame is parent else " (generator)")
        items = read_locals(frame, self.drop)
        for name, value in items:
            if value is child:
                return f"local '{name}' in {where}", 1
        if type(child) is CellType:  # a cell variable: the frame holds the cell
            inside = _get(child, "cell_contents")
            for name, value in items:
                if value is inside:
                    return f"local '{name}' in {where}", 1 if after is _MISSING else 2
        return None

    def _in_object(self, parent: object, child: object, after: object) -> tuple[str, int]:
        attrs = _instance_dict(parent)
        if attrs is not None:
            if child is attrs and after is not _MISSING:
                return self.attribute(_key_in(attrs, after)), 2
            for name, value in dict.items(attrs):
                if value is child:  # 3.11 keeps attribute values inline, without a dict
                    return self.attribute(name), 1
        for klass in _MRO.__get__(type(parent)):
            for name, slot in _CLASS_DICT.__get__(klass).items():
                if type(slot) is MemberDescriptorType and _get(parent, name) is child:
                    return f".{name}", 1
        if child is type(parent):
            return ".__class__", 1
        for name in _C_ATTRS:
            if _get(parent, name) is child:
                return f".{name}", 1
        where = next((n for n, ref in enumerate(gc.get_referents(parent)) if ref is child), -1)
        return f"<reference {where} of {type_name(type(parent))}>", 1


def class_dict(cls: object) -> object:
    """The dict a class keeps its attributes in (``__dict__`` is only a proxy of it)."""
    if not issubclass(type(cls), type):
        return _MISSING
    refs = gc.get_referents(_CLASS_DICT.__get__(cls))
    return refs[0] if refs else _MISSING


def _closure(func: Any, cell: object, more: int) -> tuple[str, int]:
    if type(cell) is not CellType:
        return ".__closure__", 1
    index = next((i for i, item in enumerate(func.__closure__) if item is cell), -1)
    name = func.__code__.co_freevars[index] if index >= 0 else "?"
    return f"{func.__qualname__} closure cell '{name}'", 3 if more > 1 else 2


def _default(func: Any, defaults: Any, value: object) -> str:
    """``normalize default '_seen'``: the parameter whose default holds ``value``."""
    name: object = "?"
    if type(defaults) is dict:
        name = _key_in(defaults, value)
    else:
        code = func.__code__
        index = next((i for i, item in enumerate(defaults) if item is value), None)
        if index is not None:
            position = code.co_argcount - len(defaults) + index
            name = code.co_varnames[position] if 0 <= position < len(code.co_varnames) else "?"
    return f"{func.__qualname__} default '{name}'"


def _key_in(mapping: Any, child: object) -> object:
    for key, value in dict.items(mapping):
        if value is child:
            return key
    return "<a key>" if any(key is child for key in dict.keys(mapping)) else "?"


def _index(seq: Any, child: object) -> str:
    base = next(b for b in (list, tuple, deque) if issubclass(type(seq), b))
    items: Any = base.__iter__(seq)
    for i, item in enumerate(items):
        if item is child:
            return f"[{i}]"
    return "[?]"


def _qualname(obj: object) -> str:
    attrs = _instance_dict(obj)
    name = attrs.get("__qualname__") if attrs is not None else None
    return name if type(name) is str else type_name(type(obj))
