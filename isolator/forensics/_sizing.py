"""Sizing many objects fast, and reading big containers in pieces.

``sys.getsizeof`` costs ~230 ns an object (a special-method lookup every time). Grouped
by type, the C ``__sizeof__`` of that type costs ~25 ns, and a type whose instances all
have one size needs no call at all. Iteration stays in C (``map``, ``compress``,
``Counter``): a Python loop per object would take seconds on a big heap.
"""

from __future__ import annotations

import gc
import sys
from collections import Counter
from collections.abc import Iterator
from itertools import chain, compress, islice, repeat
from operator import gt, is_
from types import MethodDescriptorType
from typing import Any

from ._common import sizeof

PIECE = 8192  # referents read at once from one big container
_GROUP = 64  # a type this common in a batch is sized in one C loop
_GC_HEAD = sys.getsizeof([]) - [].__sizeof__()
_HAVE_GC = 1 << 14
_OBJECT_SIZEOF = object.__dict__["__sizeof__"]
_MRO = type.__dict__["__mro__"]
_ITEMSIZE = type.__dict__["__itemsize__"]
_FLAGS = type.__dict__["__flags__"]
_CLASS_DICT = type.__dict__["__dict__"]
_sizers: dict[type, Any] = {}


def _sizer(cls: type, example: object) -> Any:
    """How to size instances of ``cls``: an int (all the same size), the C
    ``__sizeof__`` to map over them, or None (``sys.getsizeof`` one by one)."""
    how: Any = None
    try:
        found = None
        for klass in _MRO.__get__(cls):
            found = _CLASS_DICT.__get__(klass).get("__sizeof__")
            if found is not None:
                break
        if found is _OBJECT_SIZEOF and _ITEMSIZE.__get__(cls) == 0 and cls is not type:
            how = sys.getsizeof(example)
        elif type(found) is MethodDescriptorType and cls is not type:
            how = found
    except Exception:  # noqa: BLE001 - an odd class is sized the slow way
        how = None
    _sizers[cls] = how
    return how


def measure(
    objs: list[Any], threshold: int
) -> tuple[Counter[type], dict[type, int], list[tuple[int, Any]]]:
    """Count and bytes per type of ``objs`` (distinct objects), and ``(size, obj)`` of
    those of ``threshold`` bytes or more."""
    types = list(map(type, objs))
    counts = Counter(types)
    totals: dict[type, int] = {}
    big: list[tuple[int, Any]] = []
    slow: set[type] = set()
    for cls, n in counts.items():
        how = _sizers[cls] if cls in _sizers else _sizer(cls, objs[types.index(cls)])
        if type(how) is int:
            totals[cls] = n * how
        elif how is None or n < _GROUP:
            slow.add(cls)
        else:
            group = list(compress(objs, map(is_, types, repeat(cls))))
            try:
                sizes = list(map(how, group))
            except Exception:  # noqa: BLE001 - fall back to getsizeof, one by one
                slow.add(cls)
                continue
            head = _GC_HEAD if _FLAGS.__get__(cls) & _HAVE_GC else 0
            totals[cls] = sum(sizes) + head * n
            if max(sizes) + head >= threshold:
                big.extend((size + head, obj) for obj, size in zip(group, sizes, strict=True)
                           if size + head >= threshold)
    if slow:
        for obj in compress(objs, map(slow.__contains__, types)):
            size = sizeof(obj)
            totals[type(obj)] = totals.get(type(obj), 0) + size
            if size >= threshold:
                big.append((size, obj))
    return counts, totals, big


def containers(objs: list[Any], counts: Counter[type]) -> tuple[list[Any], list[Any]]:
    """What among ``objs`` holds more objects that gc cannot reach: dicts and tuples
    (exact types: untracked ones hold atoms), and the bases of numpy views (an array
    does not tell gc about its ``base``). ``counts`` are their types, from :func:`measure`.
    """
    arrays = _array_types(counts)
    if not counts[dict] and not counts[tuple] and not arrays:
        return [], []
    types = list(map(type, objs))
    dicts = list(compress(objs, map(is_, types, repeat(dict)))) if counts[dict] else []
    others = list(compress(objs, map(is_, types, repeat(tuple)))) if counts[tuple] else []
    if arrays:
        base = _ndarray_base()
        views = compress(objs, map(arrays.__contains__, types))
        others.extend(view for view in views if base.__get__(view) is not None)
    return dicts, others


def _ndarray_base() -> Any:
    return sys.modules["numpy"].ndarray.__dict__["base"]


def _array_types(counts: Counter[type]) -> set[type]:
    numpy = sys.modules.get("numpy")
    ndarray = getattr(numpy, "ndarray", None) if numpy is not None else None
    if type(ndarray) is not type:
        return set()
    return {cls for cls in counts if issubclass(cls, ndarray)}


def huge(objs: list[Any]) -> list[Any]:
    """The containers of ``objs`` with more than ``PIECE`` items."""
    return list(compress(objs, map(gt, map(len, objs), repeat(PIECE))))


def contents(dicts: list[Any], others: list[Any]) -> list[Any]:
    """Keys and values of ``dicts``, items of tuples and bases of arrays in ``others``,
    in one list (C loops)."""
    tuples = [obj for obj in others if type(obj) is tuple]
    found: list[Any] = list(chain.from_iterable(tuples))
    if len(tuples) < len(others):
        base = _ndarray_base()
        found.extend(base.__get__(obj) for obj in others if type(obj) is not tuple)
    found.extend(chain.from_iterable(map(dict.keys, dicts)))
    found.extend(chain.from_iterable(map(dict.values, dicts)))
    return found


def pieces(obj: Any) -> Iterator[list[Any]]:
    """The referents of one big object, ``PIECE`` at a time (C-level access only)."""
    cls = type(obj)
    base = next((b for b in (list, tuple, dict, set, frozenset) if issubclass(cls, b)), None)
    if base is list or base is tuple:
        for start in range(0, base.__len__(obj), PIECE):
            yield list(base.__getitem__(obj, slice(start, start + PIECE)))
    elif base is not None:
        parts = (dict.keys(obj), dict.values(obj)) if base is dict else (base.__iter__(obj),)
        for part in parts:
            items = iter(part)
            while piece := list(islice(items, PIECE)):
                yield piece
    else:
        yield gc.get_referents(obj)


def holds(container: Any, child: object) -> bool:
    """Whether a dict, tuple or array from :func:`containers` holds ``child``."""
    if type(container) is dict:
        return any(item is child for part in (container, container.values()) for item in part)
    if type(container) is tuple:
        return any(item is child for item in container)
    return _ndarray_base().__get__(container) is child
