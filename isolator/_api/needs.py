"""What a task will import, worked out in the caller before the first child is forked.

The zygote imports these before it forks the task's child (``warm_modules``), so that
even the first child of a function starts warm, and the ones after it too without
waiting for the zygote to learn from the first (``isolator._child.preload``):

- the module of each function the task runs: the user's, also when it arrives wrapped
  by isolator (a chunk of a ``map``, a pool's initializer) or by a ``functools.partial``;
- for code the child will get by value (a ``__main__`` function, a closure, a lambda),
  the modules its globals and closure cells refer to: a script's ``import numpy as np``
  that the function uses as ``np``;
- the modules its body imports (``import numpy as np`` inside the function), those that
  exist here.

Worked out once per code object (a small cache): reading the bytecode costs about as
much as one pickling of the function.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

_BY_CODE: dict[types.CodeType, tuple[str, ...]] = {}
_CACHED_AT_MOST = 1024


def task_functions(fn: Callable[..., Any], args: tuple[Any, ...]) -> Iterator[Any]:
    """The user's functions inside isolator's wrappers of a task ``fn(*args)``."""
    from .._child import calls

    if fn is calls.run_chunk or fn is calls.run_items:
        yield from task_functions(args[0], ())
    elif fn is calls.timed:
        yield from task_functions(args[0], args[1:])
    elif fn is calls.with_initializer:
        yield from task_functions(args[1], ())  # the initializer
        yield from task_functions(args[3], args[4:])
    elif isinstance(fn, functools.partial):
        yield from task_functions(fn.func, ())
    else:
        yield getattr(fn, "__wrapped__", fn)


_BY_FUNCTION: weakref.WeakKeyDictionary[Any, tuple[str, ...]] = weakref.WeakKeyDictionary()


def modules_needed(fn: Any) -> tuple[str, ...]:
    """The modules ``fn`` (a function, or a class or callable's ``__call__``) will use;
    worked out once per function (a pool submits it unit after unit)."""
    try:
        return _BY_FUNCTION[fn]
    except (KeyError, TypeError):  # new, or neither hashable nor weakly referable
        pass
    found = _modules_needed(fn)
    try:
        _BY_FUNCTION[fn] = found
    except TypeError:
        pass
    return found


def _modules_needed(fn: Any) -> tuple[str, ...]:
    module = getattr(fn, "__module__", None)
    found: dict[str, None] = {}
    if isinstance(module, str) and module != "__main__" and module in sys.modules:
        found[module] = None
    # A callable object's code is its class's __call__.
    function = fn if isinstance(fn, types.FunctionType) else vars(type(fn)).get("__call__")
    if isinstance(function, types.FunctionType):
        for name in _from_code(function.__code__):
            found[name] = None
        for name in _from_namespace(function):
            found[name] = None
    return tuple(found)


def _from_namespace(function: types.FunctionType) -> Iterator[str]:
    """Modules that the globals and closure cells the function names refer to live in."""
    values: list[Any] = [function.__globals__.get(name)
                         for name in _names(function.__code__)]
    for cell in function.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    for value in values:
        if isinstance(value, types.ModuleType):
            yield value.__name__
        elif callable(value):
            home = getattr(value, "__module__", None)
            if isinstance(home, str) and home not in ("__main__", "builtins") \
                    and home in sys.modules:
                yield home


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _from_code(code: types.CodeType) -> tuple[str, ...]:
    """The absolute imports in a code object and those nested in it, that exist here."""
    known = _BY_CODE.get(code)
    if known is not None:
        return known
    import dis

    found: dict[str, None] = {}
    for inner in _codes(code):
        level = 0
        for instruction in dis.get_instructions(inner):
            if instruction.opname == "LOAD_CONST" and isinstance(instruction.argval, int):
                level = instruction.argval
            elif instruction.opname == "IMPORT_NAME":
                name = instruction.argval
                if level == 0 and isinstance(name, str) and _exists(name):
                    found[name] = None
    result = tuple(found)
    if len(_BY_CODE) >= _CACHED_AT_MOST:
        _BY_CODE.clear()
    _BY_CODE[code] = result
    return result


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


@functools.cache
def _exists(name: str) -> bool:
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name.partition(".")[0]) is not None
    except (ImportError, ValueError):
        return False
