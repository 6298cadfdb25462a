"""The roots a user can name, best names first: where a search for holders starts.

A root is an object and the name the user's code gives it: ``etl.cache._TILES`` (a
module's global), ``Record._instances`` (a class attribute), ``etl.normalize`` (a
function, whose defaults and closure cells it holds), ``local 'rows' in load()`` (a
running frame's local, in any thread), ``atexit.register(flush)`` and the other places
the interpreter holds things from C (``_registries``).

The same object often has several names: the user's module global that holds a
``queue.Queue``, and ``local 'self' in Queue.put()``. Each object keeps its best one,
by rank: the user's modules, then the user's running frames, then the interpreter's
registries, then installed packages, the standard library, and frames of library code
last. isolator's own modules and frames are never roots.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Iterator
from types import FunctionType, MethodType, ModuleType
from typing import Any, NamedTuple

from ._common import c_attr, instance_dict, is_code, is_isolator, origin, sizeof, type_name
from ._edges import class_dict
from ._registries import registry_roots
from ._stack import Stack

USER, USER_FRAME, REGISTRY, PACKAGE, STDLIB, LIBRARY_FRAME = range(6)
_RANK = {"user": USER, "package": PACKAGE, "stdlib": STDLIB}
_MODULE_DICT: Any = vars(ModuleType)["__dict__"]
_LRU = type(__import__("functools").lru_cache()(lambda: None))
BIG_ATOM = 64 * 1024  # a str or bytes global this big is a root of its own
_ATOMS = (str, bytes, int, float, complex, bool, type(None), range)
_WRAPPERS = (staticmethod, classmethod, property)  # methods, in a class's namespace


class Root(NamedTuple):
    """One named root: the object, what the code calls it, and where it lives."""

    rank: int
    kind: str  # "module", "class", "frame" or "registry"
    label: str  # the first name of a chain: "etl._CACHE", "local 'rows' in load()"
    root_name: str  # its module, class, frame or registry: "etl", "etl.Record"
    value: Any


def module_rank(name: str, namespace: dict[str, Any]) -> int | None:
    """Whose module this is (see the module doc); None for isolator's own."""
    if name == "isolator" or name.startswith("isolator."):
        return None
    if name == "__main__":
        return USER
    where = namespace.get("__file__")
    if type(where) is not str:  # built in, or made by code
        return STDLIB if name in sys.builtin_module_names or name.startswith("_") else USER
    kind = origin(where)
    return None if kind == "isolator" else _RANK[kind]


def collect_roots(modules: dict[int, str], stack: Stack) -> list[Root]:
    """Every named root, each object once under its best name, best first."""
    best: dict[int, Root] = {}
    variables: dict[int, str] = {}  # context variables by the global that names them
    for root in _all_roots(modules, stack, variables):
        if root.rank < best.get(id(root.value), _WORST).rank:
            best[id(root.value)] = root
    found = sorted(best.values(), key=lambda root: root.rank)
    best.clear()
    return found


_WORST = Root(99, "", "", "", None)


def _all_roots(modules: dict[int, str], stack: Stack, variables: dict[int, str]
               ) -> Iterator[Root]:
    for key, module in list(sys.modules.items()):
        if not issubclass(type(module), ModuleType):
            continue
        namespace = _MODULE_DICT.__get__(module)
        name = namespace.get("__name__")
        name = name if type(name) is str else key
        rank = module_rank(name, namespace)
        if rank is not None:
            yield from namespace_roots(name, namespace, rank, variables)
    for ident, (name, namespace) in list(stack.namespaces.items()):
        if ident not in modules:
            yield from namespace_roots(name, namespace, USER, variables)
    for index, value in enumerate(stack.values):
        # Every frame that names the object offers its name: the user's frame outranks
        # the library frame it called (``local 'queue' in produce()`` over ``self``).
        if is_code(value) and type(value) not in (FunctionType, MethodType):
            continue
        if not is_isolator(value):
            frame, function, local = stack.names[index]
            rank = LIBRARY_FRAME if stack.library[index] else USER_FRAME
            yield Root(rank, "frame", f"local '{local}' in {function}", frame, value)
    for label, value in registry_roots(variables, is_isolator):
        yield Root(REGISTRY, "registry", label, label.partition("(")[0], value)


def namespace_roots(module: str, namespace: dict[str, Any], rank: int,
                    variables: dict[int, str]) -> Iterator[Root]:
    """The roots of one module's globals: values, and the state its own classes and
    functions hold."""
    for name, value in list(dict.items(namespace)):
        if type(name) is not str or name[:2] == "__" == name[-2:]:
            continue
        cls = type(value)
        if is_isolator(value):
            continue
        if issubclass(cls, type):
            if _defined_in(value, module):
                yield from _class_roots(value, rank)
        elif cls is FunctionType or cls is _LRU:
            if _defined_in(value, module) and _has_state(value):
                yield Root(rank, "module", f"{module}.{name}", module, value)
        elif cls is contextvars.ContextVar:
            variables.setdefault(id(value), f"{module}.{name}")
        elif _worth_walking(value):
            yield Root(rank, "module", f"{module}.{name}", module, value)


def _class_roots(cls: type, rank: int) -> Iterator[Root]:
    attrs = class_dict(cls)
    if type(attrs) is not dict:
        return
    owner = type_name(cls)
    qualname = type.__dict__["__qualname__"].__get__(cls)
    for name, value in list(attrs.items()):
        if type(name) is not str or name[:2] == "__" == name[-2:]:
            continue
        kind = type(value)
        if kind is FunctionType:
            if not _has_state(value):
                continue
        elif kind is not _LRU and (issubclass(kind, (type, *_WRAPPERS))
                                   or not _worth_walking(value)):
            continue
        yield Root(rank, "class", f"{qualname}.{name}", owner, value)


def _has_state(func: Any) -> bool:
    """A function holding data: defaults, closure cells, or a cache."""
    if type(func) is _LRU:
        return True
    return any(c_attr(func, attr) not in (None, (), {}) for attr in
               ("__defaults__", "__kwdefaults__", "__closure__"))


def _defined_in(value: Any, module: str) -> bool:
    where = c_attr(value, "__module__")
    if type(value) is _LRU:  # functools.wraps copied it into the wrapper's own dict
        where = (instance_dict(value) or {}).get("__module__")
    return where == module


def _worth_walking(value: object) -> bool:
    if is_code(value) and type(value) is not MethodType:
        return False
    if isinstance(value, ModuleType):
        return False
    if type(value) in _ATOMS:
        return sizeof(value) >= BIG_ATOM
    return True
