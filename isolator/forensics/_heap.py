"""One pass over the heap: count and bytes per type, including objects gc does not track.

``gc.get_objects()`` lists only containers. Strings, bytes, bytearrays, numbers and numpy
arrays are not tracked, and neither are dicts and tuples that hold only such atoms (a
``{name: bytes}`` cache is invisible to gc). They are found as referents of the tracked
objects (``gc.get_referents`` over chunks of them), then inside the untracked dicts and
tuples among those, level after level. The str keys of dicts are added: get_referents
leaves them out.

An object reached from several containers must be counted once. Keeping every id in a
set would cost ~70 bytes per object; the reference count tells instead: an object whose
only owner is the container being read has exactly ``_UNIQUE`` references at the test
(that container, our list of referents, our list of untracked ones, getrefcount's
argument), so only shared objects go through the id set.

Big objects inside untracked containers cannot be found by ``gc.get_referrers`` later,
so the scan remembers their container in ``parents``, for the holder search.
``sys.getsizeof`` of a numpy array that owns its data includes the buffer; a view counts
its header only (its base is counted where it is found).
"""

from __future__ import annotations

import gc
import heapq
import sys
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Iterator
from itertools import chain, compress, count, filterfalse, repeat
from operator import eq, ge, itemgetter, not_
from typing import Any

from ._common import Budget, OutOfTime, is_code
from ._sizing import containers, contents, holds, huge, measure, pieces

_CHUNK = 2048
_BULKY = 4096  # tracked objects this big (~500 referents) are read in pieces
_UNIQUE = 4
_MAX_SHARED = 1_000_000  # ids kept for de-duplication, at most (the memory budget decides)
_MAX_PARENTS = 10_000
_BIG_FLOOR = 16 * 1024  # smallest object worth a holder chain
_LEVEL_CHUNK = 2048  # untracked containers whose contents are read at once, at most
_LEVEL_ITEMS = 32768  # ... and about this many items of theirs
_LONG_TYPES = frozenset((list, tuple, dict, set, frozenset, deque, defaultdict, OrderedDict,
                         Counter))
_LONG_ITEMS = 512  # a container this long is read in full even when the scan samples


class HeapScan:
    """The result of :func:`scan`: per-type count and bytes, and the biggest objects."""

    def __init__(self, top: int, exclude: set[int] | None = None,
                 max_shared: int = _MAX_SHARED) -> None:
        self.stats: dict[type, list[int]] = {}
        self.tracked_counts: Counter[type] = Counter()  # gc-tracked objects only
        self.tracked = 0  # gc-tracked objects read
        self.total = 0  # gc-tracked objects that exist
        self.python_bytes = 0
        self.objects = 0
        self.partial: str | None = None  # why the scan stopped early
        self.approximate = False  # de-duplication was given up (too many shared objects)
        self.sampled: str | None = None  # how the heap was sampled, if it was
        self.parents: dict[int, Any] = {}  # id(object) -> the untracked container holding it
        self._top = top
        self.budget: Budget | None = None
        self._exclude = exclude or set()  # ids of the collectors' own objects
        self._floor = _BIG_FLOOR
        self._seq = count()
        self._big: list[tuple[int, int, Any]] = []
        self._fresh: list[Any] = []  # offered to _big by the last _add
        self._shared: set[int] = set()
        self._max_shared = max_shared

    def scale(self, stride: int) -> None:
        """Counts and sizes of a sample of one chunk in ``stride``, scaled up."""
        self.sampled = (f"every {stride}th run of {_CHUNK} gc-tracked objects (with what "
                        f"they hold) was read, counts and sizes scaled up by {stride}")
        for entry in self.stats.values():
            entry[0] *= stride
            entry[1] *= stride
        for cls in self.tracked_counts:
            self.tracked_counts[cls] *= stride
        self.python_bytes *= stride
        self.objects *= stride

    def merge(self, other: HeapScan) -> None:
        """Add what ``other`` counted (the big containers of a sampled scan)."""
        for cls, (n, size) in other.stats.items():
            entry = self.stats.setdefault(cls, [0, 0])
            entry[0] += n
            entry[1] += size
        self.tracked_counts.update(other.tracked_counts)
        self.python_bytes += other.python_bytes
        self.objects += other.objects
        self.approximate |= other.approximate
        self.parents.update(other.parents)
        for size, _, obj in other._big:
            self._offer(size, obj)
        other.release()

    def biggest(self) -> tuple[list[int], list[Any]]:
        """Sizes and the objects themselves, biggest first, handed over: two plain
        lists, so that a referrer search can ignore the one list that holds them."""
        ranked = sorted(self._big, key=itemgetter(0), reverse=True)
        self._big.clear()
        self._fresh.clear()
        return [size for size, _, _ in ranked], [obj for _, _, obj in ranked]

    def release(self) -> None:
        """Drop every reference to the user's objects."""
        self._big.clear()
        self._fresh.clear()
        self._shared.clear()
        self.parents.clear()

    def add_chunk(self, chunk: list[Any]) -> None:
        """Count a chunk of gc-tracked objects and what they refer to."""
        self.tracked += len(chunk)
        bulky: list[Any] = []
        counts = self._add(chunk, bulky)
        self.tracked_counts.update(counts)
        if bulky:
            skip = set(map(id, bulky))
            chunk = [obj for obj in chunk if id(obj) not in skip]
        dict_types = {cls for cls in counts if issubclass(cls, dict)}
        dicts = compress(chunk, map(dict_types.__contains__, map(type, chunk)))
        keys = list(chain.from_iterable(map(dict.keys, dicts)))
        self._account(gc.get_referents(*chunk), keys, None)
        for obj in bulky:
            for piece in self._pieces(obj):
                self._account(piece, [], None)

    def _pieces(self, obj: Any) -> Iterator[list[Any]]:
        """:func:`pieces`, with the time budget checked between them."""
        for piece in pieces(obj):
            if self.budget is not None:
                self.budget.check("inside a big container")
            yield piece

    def _add(self, objs: list[Any], bulky: list[Any] | None = None) -> Counter[type]:
        threshold = self._floor if bulky is None else min(self._floor, _BULKY)
        counts, totals, big = measure(objs, threshold)
        stats = self.stats
        for cls, n in counts.items():
            entry = stats.get(cls)
            if entry is None:
                stats[cls] = [n, totals[cls]]
            else:
                entry[0] += n
                entry[1] += totals[cls]
        self.objects += len(objs)
        self.python_bytes += sum(totals.values())
        self._fresh.clear()
        for size, obj in big:
            if size >= self._floor and self._top and not is_code(obj) \
                    and id(obj) not in self._exclude:
                self._offer(size, obj)
            if size >= _BULKY and bulky is not None:
                bulky.append(obj)
        return counts

    def _offer(self, size: int, obj: Any) -> None:
        self._fresh.append(obj)
        heapq.heappush(self._big, (size, next(self._seq), obj))
        if len(self._big) > self._top:
            heapq.heappop(self._big)
            self._floor = max(self._floor, self._big[0][0])

    def _untracked(self, refs: list[Any]) -> list[Any]:
        """The untracked objects of ``refs`` not counted yet, each once."""
        untracked = list(filterfalse(gc.is_tracked, refs))
        unique = list(map(eq, map(sys.getrefcount, untracked), repeat(_UNIQUE)))
        found = list(compress(untracked, unique))
        if len(found) < len(untracked):
            shared = list(compress(untracked, map(not_, unique)))
            del untracked, unique
            by_id = dict(zip(map(id, shared), shared, strict=True))
            del shared
            new = by_id.keys() - self._shared
            found.extend(map(by_id.__getitem__, new))
            if len(self._shared) < self._max_shared:
                self._shared |= new
            else:
                self.approximate = True
        return found

    def _account(self, refs: list[Any], keys: list[Any], holder: Any) -> None:
        """Count the untracked objects in ``refs`` and ``keys``, then what the untracked
        dicts and tuples among them hold, level after level. ``holder`` is the
        untracked container ``refs`` came from, if any."""
        found = self._untracked(refs)
        # ``refs`` is still alive here: an object in both lists looks shared both times
        found.extend(self._untracked(keys))
        del keys
        counts = self._add(found)
        self._adopt(list(self._fresh), [], holder)
        self._inside(found, counts, [], holder)

    def _inside(self, found: list[Any], counts: Counter[type], levels: list[list[Any]],
                holder: Any) -> None:
        """What the untracked dicts and tuples among ``found`` hold, level after level,
        read ``_LEVEL_CHUNK`` containers at a time: a level of a million row dicts
        must not become one list of their six million keys and values."""
        dicts, others = containers(found, counts)
        del found
        if not dicts and not others:
            return
        tuples = [obj for obj in others if type(obj) is tuple]
        outsize = huge(dicts) + huge(tuples)
        if outsize:
            skip = set(map(id, outsize))
            dicts = [obj for obj in dicts if id(obj) not in skip]
            others = [obj for obj in others if id(obj) not in skip]
        for part in _runs(dicts, others):
            level = [*levels, part[0] + part[1]]
            inner = self._untracked(contents(*part))
            inner_counts = self._add(inner)
            self._adopt(list(self._fresh), level, holder)
            self._inside(inner, inner_counts, level, holder)
        for obj in outsize:
            self._adopt([obj], levels, holder)
            for piece in self._pieces(obj):
                self._account(piece, [], obj)

    def _adopt(self, objs: list[Any], levels: list[list[Any]], holder: Any) -> None:
        """Remember which untracked container holds each of ``objs`` (and which holds
        that one, up the ``levels`` read so far), for the holder search."""
        for child in objs:
            for level in reversed(levels):
                if len(self.parents) >= _MAX_PARENTS:
                    return
                parent = next((c for c in level if holds(c, child)), None)
                if parent is None:
                    break
                self.parents[id(child)] = parent
                child = parent
            else:
                if holder is not None:
                    self.parents[id(child)] = holder


def _runs(dicts: list[Any], others: list[Any]) -> Iterator[tuple[list[Any], list[Any]]]:
    """The containers in runs holding about ``_LEVEL_ITEMS`` items each."""
    for group, is_dict in ((dicts, True), (others, False)):
        start, total = 0, 0
        for i, obj in enumerate(group):
            total += len(obj) if is_dict or type(obj) is tuple else 1
            if total >= _LEVEL_ITEMS or i - start >= _LEVEL_CHUNK:
                part = group[start : i + 1]
                yield (part, []) if is_dict else ([], part)
                start, total = i + 1, 0
        if start < len(group):
            part = group[start:]
            yield (part, []) if is_dict else ([], part)


def scan(budget: Budget, exclude: set[int] | None = None, top: int = 64,
         stride: int = 1, max_shared: int = _MAX_SHARED, max_objects: int = 0) -> HeapScan:
    """Walk the gc-tracked objects and their untracked referents within ``budget``.

    With ``stride`` > 1 only every stride-th chunk is read (a sample: the baseline's
    cheap estimate); ``tracked`` then tells how many of ``total`` were read. With
    ``max_objects``, a heap of more gc-tracked objects is read on such a sample and its
    counts and sizes scaled up (``sampled`` says so): the holders come from the walk
    from named roots, this scan only sizes the heap by type.
    """
    result = HeapScan(top, exclude, max_shared)
    result.budget = budget
    objs = gc.get_objects()
    result.total = len(objs)
    sampling = bool(max_objects) and len(objs) > max_objects
    if sampling:
        stride = -(-len(objs) // max_objects)
        bulky = HeapScan(top, exclude, max_shared)  # read in full, never scaled
        bulky.budget = budget
    start = 0
    try:
        for start in range(0, len(objs), _CHUNK if sampling else _CHUNK * stride):
            budget.check("")
            chunk = objs[start : start + _CHUNK]
            if sampling:
                # A big container (the leak's dict) is read wherever it is: scaled up
                # from a sample, it would count its items ``stride`` times or not at all.
                sized = list(compress(chunk, map(_LONG_TYPES.__contains__, map(type, chunk))))
                big = list(compress(sized, map(ge, map(len, sized), repeat(_LONG_ITEMS))))
                if big:
                    bulky.add_chunk(big)
                    skip = set(map(id, big))
                    chunk = [obj for obj in chunk if id(obj) not in skip]
                if (start // _CHUNK) % stride:
                    continue
            result.add_chunk(chunk)
    except OutOfTime as exc:
        result.partial = f"{exc} after {start} of {len(objs)} gc-tracked objects"
    finally:
        objs.clear()
        del objs
    if sampling:
        result.scale(stride)
        result.merge(bulky)
    return result
