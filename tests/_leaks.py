"""A corpus of leak scenarios with known culprits, for the heap forensics.

Each scenario grows memory by about ``SIZE`` in its own way, then calls ``probe()`` at
the point where a capped child would have crossed its limit, and returns what the probe
returned. The probe runs the collectors in-process (``sys._getframe(1)`` is the
scenario's frame). :func:`reset` frees everything the scenarios keep.
"""

from __future__ import annotations

import ctypes
import functools
from collections import defaultdict
from collections.abc import Callable
from typing import Any

MiB = 1 << 20
SIZE = 64 * MiB
PIECES = SIZE // MiB

Probe = Callable[[], dict[str, Any]]


def filled(n: int, seed: int = 0) -> bytes:
    """``n`` bytes that really take memory (``bytes(n)`` maps untouched zero pages)."""
    return bytes([seed % 251 + 1]) * n


# 1. A module-level dict cache.
_CACHE: dict[str, bytes] = {}


def module_dict_cache(probe: Probe) -> dict[str, Any]:
    for i in range(PIECES):
        _CACHE[f"tile-{i}"] = filled(MiB, i)
    return probe()


# 2. An lru_cache without a bound.
@functools.cache
def load_tile(i: int) -> bytes:
    return filled(MiB, i)


def unbounded_lru_cache(probe: Probe) -> dict[str, Any]:
    for i in range(PIECES):
        load_tile(i)
    return probe()


# 3. A class attribute list of callbacks, each closing over its data.
class Registry:
    callbacks: list[Callable[[], int]] = []  # noqa: RUF012 - the leak under test


def _callback(data: bytes) -> Callable[[], int]:
    return lambda: len(data)


def class_attribute_callbacks(probe: Probe) -> dict[str, Any]:
    for i in range(PIECES):
        Registry.callbacks.append(_callback(filled(MiB, i)))
    return probe()


# 4. numpy arrays appended to a module-level list.
_ARRAYS: list[Any] = []


def numpy_arrays(probe: Probe) -> dict[str, Any]:
    import numpy as np

    for i in range(PIECES):
        _ARRAYS.append(np.full(MiB // 8, float(i)))
    return probe()


# 5. Exceptions kept in a list: each traceback holds a frame with a big local.
_ERRORS: list[BaseException] = []


def _parse(i: int) -> None:
    payload = filled(4 * MiB, i)  # noqa: F841 - kept alive by the traceback
    raise ValueError(f"tile {i} is corrupt")


def kept_exceptions(probe: Probe) -> dict[str, Any]:
    for i in range(PIECES // 4):
        try:
            _parse(i)
        except ValueError as exc:
            _ERRORS.append(exc)
    return probe()


# 6. One big local bytearray.
def big_local(probe: Probe) -> dict[str, Any]:
    blob = bytearray(b"\x01") * SIZE
    report = probe()
    del blob
    return report


# 7. An instance attribute of a module-level object.
class Session:
    def __init__(self) -> None:
        self.history: list[bytes] = []


session = Session()


def instance_attribute(probe: Probe) -> dict[str, Any]:
    for i in range(PIECES):
        session.history.append(filled(MiB, i))
    return probe()


# 8. Native memory: malloc through ctypes, invisible to Python.
def native_malloc(probe: Probe) -> dict[str, Any]:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = []
    try:
        for _ in range(PIECES):
            block = libc.malloc(MiB)
            ctypes.memset(block, 1, MiB)
            blocks.append(block)
        return probe()
    finally:
        for block in blocks:
            libc.free(block)


# 9. A closure cell.
def make_handler() -> Callable[[bytes], int]:
    cache: list[bytes] = []

    def handler(item: bytes) -> int:
        cache.append(item)
        return len(cache)

    return handler


def closure_cell(probe: Probe) -> dict[str, Any]:
    handler = make_handler()
    for i in range(PIECES):
        handler(filled(MiB, i))
    return probe()


# 10. A nested defaultdict.
_INDEX: defaultdict[str, defaultdict[str, list[bytes]]] = defaultdict(
    lambda: defaultdict(list)
)


def nested_defaultdict(probe: Probe) -> dict[str, Any]:
    for i in range(PIECES):
        _INDEX[f"user-{i % 4}"][f"day-{i % 8}"].append(filled(MiB, i))
    return probe()


SCENARIOS = [
    module_dict_cache, unbounded_lru_cache, class_attribute_callbacks, numpy_arrays,
    kept_exceptions, big_local, instance_attribute, native_malloc, closure_cell,
    nested_defaultdict,
]


def reset() -> None:
    """Free what the scenarios keep."""
    _CACHE.clear()
    load_tile.cache_clear()
    Registry.callbacks.clear()
    _ARRAYS.clear()
    _ERRORS.clear()
    session.history.clear()
    _INDEX.clear()


def native_malloc_in_a_fresh_process() -> dict[str, Any]:
    """The native scenario as isolator runs it: in a small child, baseline at its start
    (in a big test process the baseline's Python-size estimate drowns 64 MiB)."""
    from isolator import forensics

    baseline = forensics.take_baseline()

    def probe() -> dict[str, Any]:
        import sys

        return forensics.collect(level="default", frame=sys._getframe(1), baseline=baseline,
                                 time_budget=30.0)

    return native_malloc(probe)
