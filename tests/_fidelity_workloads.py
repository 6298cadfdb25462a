"""What the stdlib-fidelity tests run, in the stdlib's pools and in isolator's alike
(importable, so that both pickle them by reference)."""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections.abc import Iterator
from typing import Any


def square(x: int) -> int:
    return x * x


def identity(x: Any) -> Any:
    return x


def pid(_: Any = None) -> int:
    return os.getpid()


def sleep_then(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


class Counted:
    """Counts its live instances in this process, as CPython's test suite does to see
    that a pool keeps no copy of what it returned."""

    live = 0

    def __new__(cls) -> Counted:
        cls.live += 1
        return object.__new__(cls)

    def __del__(self) -> None:
        type(self).live -= 1


def make_counted(_: Any = None) -> Counted:
    return Counted()


class Unpicklable:
    """Its ``__reduce__`` refuses, as an open resource's would."""

    def __reduce__(self) -> Any:
        raise pickle.PicklingError("Unpicklable refuses to be pickled")


def return_unpicklable(_: Any = None) -> Unpicklable:
    return Unpicklable()


def return_lambda(_: Any = None) -> Any:
    return lambda: 42


class ExitsWhenLoaded:
    """Unpickling it calls ``sys.exit``."""

    def __reduce__(self) -> Any:
        return (sys.exit, ("raised while unpickling",))


def return_exits_when_loaded() -> ExitsWhenLoaded:
    return ExitsWhenLoaded()


def read_items(n: int, bad: int) -> Iterator[int]:
    """An input iterator that raises when item ``bad`` is asked for."""
    for i in range(n):
        if i == bad:
            raise ValueError(f"the input broke at item {bad}")
        yield i


class WellBehavedError(Exception):
    """A custom ``__init__`` that passes all its arguments on: it pickles by ``args``."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message, line)
        self.line = line
        self.hint = "check the line"


class ParseError(Exception):
    """A custom ``__init__`` that passes on only the message: ``ParseError(*args)``
    cannot be called again, so plain pickle cannot load it."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class HopelessError(Exception):
    """Neither its own pickling nor its ``__dict__`` can go anywhere."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.handle = (x for x in range(3))  # a generator: no pickler takes it


def raise_well_behaved() -> None:
    raise WellBehavedError("bad token", 3)


def raise_parse_error() -> None:
    raise ParseError("bad token", 3)


def raise_hopeless() -> None:
    raise HopelessError("lost in transit")


# -- multiprocessing's objects -----------------------------------------------------------

_kept: Any = None


def keep(value: Any) -> None:
    """An initializer: keep what ``initargs`` gave, for the tasks that follow."""
    global _kept
    _kept = value


def put_in_kept(x: int) -> int:
    _kept.put((x, os.getpid()))
    return x


def append_to(shared: Any, x: int) -> int:
    shared.append(x)
    return x


def count_in(shared: Any, key: str) -> int:
    shared[key] = shared.get(key, 0) + 1
    return int(shared[key])


def try_acquire(lock: Any) -> bool:
    got = bool(lock.acquire(False))
    if got:
        lock.release()
    return got


def try_acquire_kept(_: Any = None) -> bool:
    return try_acquire(_kept)


def add_to(value: Any, n: int) -> int:
    with value.get_lock():
        value.value += n
        return int(value.value)


def set_event(event: Any) -> bool:
    event.set()
    return bool(event.is_set())


def total(array: Any) -> int:
    return sum(array[:])


def put_then_return(queue: Any, items: list[Any]) -> int:
    for item in items:
        queue.put(item)
    return len(items)


def get_and_mark_done(queue: Any) -> Any:
    item = queue.get(timeout=30)
    queue.task_done()
    return item


def send_on(connection: Any, value: Any) -> bool:
    connection.send(value)
    return True


def append_then_grow(shared: Any, mib: int) -> int:
    """Use a Manager's proxy, then grow to four times ``mib`` MiB."""
    shared.append("about to grow")
    hold = [bytearray(b"\x01") * (1 << 20) for _ in range(4 * mib)]
    return len(hold)


def raise_from_a_module_only_the_child_has() -> None:
    """An exception whose class lives in a module made in the child alone."""
    import types

    module = types.ModuleType("made_in_the_child")
    sys.modules[module.__name__] = module
    cls = type("ChildOnlyError", (Exception,), {"__module__": module.__name__})
    module.ChildOnlyError = cls  # type: ignore[attr-defined]
    raise cls("its class is not importable in the caller")
