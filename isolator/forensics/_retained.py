"""Retained size: the memory reachable from a root, walked level by level, sampled.

A walk starts at one object and follows what it refers to (``gc.get_referents``, and
what gc does not report: the str keys of dicts, the base of a numpy view, the calling
thread's ``threading.local`` attributes), never into code (modules, classes,
functions' globals and code objects), never into another named root (``stops``: every
root keeps its own row) and never into isolator's own objects. The bytes it counts are
``sys.getsizeof`` of each object, plus what that leaves out: the text of an
``io.StringIO`` (a byte per character while it is only written to), the pages of an
``mmap``, and on 3.11 the attribute slots an instance keeps inline (8 bytes each).

This is an approximation of the retained size, documented in docs/reports.md: an object
referred to from outside the walk (by a root not named, or from C) is counted as held
when the walk reaches it first. Objects referred to once (reference count 3 at the test:
the container, the walk's list, the call) need no memory to be counted once; shared
ones go through a set of ids, bounded by the memory budget. A level with more than
``LEVEL_CAP`` objects to follow is sampled evenly and the sample's weight scaled up, so
a walk costs about the same for a thousand rows as for a million.
"""

from __future__ import annotations

import gc
import io
import mmap
import random
import sys
import threading
from collections import Counter, deque
from itertools import chain, compress, islice, repeat
from operator import eq, ne, not_, or_
from types import (
    CodeType,
    FrameType,
    FunctionType,
    GetSetDescriptorType,
    MemberDescriptorType,
    MethodDescriptorType,
    ModuleType,
    WrapperDescriptorType,
)
from typing import Any

from ._common import OURS, Budget, c_attr, is_code
from ._sizing import measure
from ._stack import is_ours

LEVEL_CAP = 4096  # objects followed per level and weight, at most (then sampled)
PIECE_CAP = 16384  # a single container longer than this is sampled before it is read
MAX_LEVELS = 100_000  # a linked list of tee buffers is this deep and more
MAX_SIZED = 400_000  # objects sized in one walk, at most (then a lower bound)
BIG = 16 * 1024  # an object this big is one of the "objects" a holder keeps
_UNIQUE = 3
_LOCAL = threading.local
_STOP_TYPES = (type, ModuleType, CodeType, WrapperDescriptorType, MethodDescriptorType,
               GetSetDescriptorType, MemberDescriptorType)
_FOLLOW = (dict, tuple)  # untracked by gc when they hold only atoms, yet worth reading
_LONG = (list, tuple, dict, set, frozenset, deque)
_RANDOM = random.Random()  # noqa: S311 - sampling, not secrets; seeded per collect
LEVEL_KIDS = 262_144  # references read in one level and weight, about (then sampled)
MAX_CHAIN = 10_000_000  # links of a linked structure counted past the walk's end


class Walk:
    """What one walk found: bytes and objects (weighted estimates when sampled)."""

    __slots__ = ("big", "bytes", "cut", "estimated", "objects", "text", "types", "view_shape",
                 "views")

    def __init__(self) -> None:
        self.bytes = 0.0
        self.objects = 0.0
        self.estimated = False  # a level was sampled
        self.cut: str | None = None  # why the walk stopped before the end
        self.big: list[tuple[int, float, Any]] = []  # (size, weight, object), the biggest
        self.types: dict[type, float] = {}  # bytes per type
        self.views = [0.0, 0.0, 0.0]  # numpy views keeping a bigger base: count, bytes, base
        self.view_shape: tuple[int, ...] | None = None  # one such view's shape
        self.text = 0  # characters in StringIO buffers

    def release(self) -> None:
        self.big.clear()
        self.types.clear()


class Walker:
    """Walks from roots; ``seen`` (shared objects counted once) spans every walk that
    does not ask for a fresh one, so an object is counted for the first root only."""

    def __init__(self, stops: set[int], budget: Budget, max_seen: int) -> None:
        self.stops = stops  # never entered: namespaces, roots walked or of the same rank
        self.base = set(stops)  # the namespaces alone
        self.ranks: dict[int, list[int]] = {}  # ids of the roots of each rank
        self.later: set[int] = set()  # roots of a worse name, walked later unless met
        self.absorbed: set[int] = set()  # ... those a walk went through: no rows of their own
        self.budget = budget
        self.max_seen = max_seen
        self.seen: set[int] = set()
        self.big_ids: set[int] = set()  # every big object any walk sized
        self.approximate = False  # the seen set was full: shared objects may count twice
        OURS.update((id(self.seen), id(self.big_ids), id(stops), id(self.later),
                     id(self.absorbed), id(self.base), id(self.ranks)))
        _RANDOM.seed(len(stops))  # the same heap samples the same way

    def release(self) -> None:
        self.seen.clear()
        self.big_ids.clear()
        self.later.clear()
        self.absorbed.clear()
        self.ranks.clear()

    def stop_as(self, rank: int, value: Any) -> None:
        """Stop where the walk of a root of ``rank`` stopped: at roots as good."""
        self.stops.clear()
        self.stops.update(self.base)
        for other, ids in self.ranks.items():
            if other <= rank:
                self.stops.update(ids)
        self.stops.discard(id(value))

    def kids_of(self, obj: Any) -> list[Any]:
        """What a walk would follow from ``obj`` (one level), in the order of a list's
        or tuple's items (gc reports them last first)."""
        if issubclass(type(obj), (list, tuple)):
            base: Any = list if issubclass(type(obj), list) else tuple
            return self.allowed(list(base.__iter__(obj)))
        return self.allowed(self._kids([obj], Walk(), 1.0))

    def walk(self, value: Any, fresh: bool = False, limit: int = 0,
             seen: set[int] | None = None, levels: int = MAX_LEVELS,
             piece: int = PIECE_CAP) -> Walk:
        """The retained size of ``value`` (see the module doc); ``fresh`` walks do not
        share the record of objects counted (or share ``seen``, when given); ``limit``
        caps the objects sized, ``levels`` the depth and ``piece`` what is read of one
        long container (a probe walks little of each)."""
        if seen is None:
            seen = set() if fresh else self.seen
        OURS.add(id(seen))
        seen.add(id(value))  # reached again from below (or from a later walk): counted
        found = Walk()
        start = [value]
        self._count(start, 1.0, found)
        frontier: dict[float, list[Any]] = {1.0: self._expandable(start)}
        sized = depth = narrow = 0
        singles: set[type] = set()  # types with one object in the last level: a chain's
        for depth in range(levels):  # noqa: B007 - depth is used after the loop
            frontier = {w: objs for w, objs in frontier.items() if objs}
            if not frontier:
                break
            if self.budget.expired():
                found.cut = "the time budget ran out"
                break
            if sized > (limit or MAX_SIZED):
                found.cut = f"{limit or MAX_SIZED} objects were sized"
                break
            now = {cls for cls, n in Counter(map(type, chain(*frontier.values()))).items()
                   if n == 1}
            narrow = narrow + 1 if now & singles else 0
            singles = now
            following: dict[float, list[Any]] = {}
            for weight, objs in frontier.items():
                sized += self._level(objs, weight, seen, found, following, piece)
            frontier = following
        if found.cut and narrow >= 8 and not limit:
            _extrapolate_chain(frontier, singles, depth, found)
        OURS.discard(id(seen))
        return found

    def _level(self, objs: list[Any], weight: float, seen: set[int], found: Walk,
               following: dict[float, list[Any]], piece: int) -> int:
        long = [obj for obj in objs if type(obj) in _LONG and len(obj) > piece]
        if long:  # read in a sample, each weighed by its own sampling step
            objs = [obj for obj in objs if not (type(obj) in _LONG and len(obj) > piece)]
            for obj in long:
                step = len(obj) // piece + 1
                found.estimated = True
                kids = self.allowed(_sample_items(obj, step))
                self._absorb(kids, weight * step, seen, found, following)
        fanout = sum(len(obj) if type(obj) in _LONG else 8 for obj in objs)
        if fanout > LEVEL_KIDS:  # many objects with many items each: read some of them
            keep = max(1, len(objs) * LEVEL_KIDS // fanout)
            weight *= len(objs) / keep
            objs = _RANDOM.sample(objs, keep)
            found.estimated = True
        done = 0
        for part in _chunks(objs):  # a level of big dicts: their items a chunk at a time
            kids = self.allowed(self._kids(part, found, weight))
            done += self._absorb(kids, weight, seen, found, following)
        objs.clear()
        return done

    def _absorb(self, kids: list[Any], weight: float, seen: set[int], found: Walk,
                following: dict[float, list[Any]]) -> int:
        """Count ``kids`` (shared ones once) and queue what they refer to."""
        refcounts = list(map(sys.getrefcount, kids))
        unique = list(compress(kids, map(eq, refcounts, repeat(_UNIQUE))))
        shared = list(compress(kids, map(ne, refcounts, repeat(_UNIQUE))))
        counts = list(compress(refcounts, map(ne, refcounts, repeat(_UNIQUE))))
        del kids[:], refcounts
        ids = list(map(id, shared))
        new = list(map(not_, map(seen.__contains__, ids)))
        pairs = zip(compress(shared, new), compress(counts, new), strict=True)
        first = dict(zip(compress(ids, new), pairs, strict=True))
        del shared, new, counts
        many = Counter(ids)
        del ids
        if len(seen) + len(first) <= self.max_seen:
            seen.update(first)
        else:
            self.approximate = True
        groups = [(weight, unique), (1.0, [])]
        _weigh_shared(first, many, weight, groups)
        del first, many
        done = 0
        for w, group in groups:
            done += len(group)
            if group:
                self._count(group, w, found)
                more = self._expandable(group)
                if len(more) > LEVEL_CAP:
                    # At random, not every k-th: a level alternates types (the args and
                    # the keywords of partials), and a stride would keep only one.
                    w *= len(more) / LEVEL_CAP
                    more = _RANDOM.sample(more, LEVEL_CAP)
                    found.estimated = True
                following.setdefault(round(w, 3), []).extend(more)
        return done

    def _expandable(self, objs: list[Any]) -> list[Any]:
        """The objects of ``objs`` that refer to others (C loops)."""
        types = list(map(type, objs))
        always = {cls for cls in set(types) if cls in _FOLLOW or _special_type(cls)}
        tracked = map(gc.is_tracked, objs)
        if not always:
            return list(compress(objs, tracked))
        return list(compress(objs, map(or_, map(always.__contains__, types), tracked)))

    def allowed(self, kids: list[Any]) -> list[Any]:
        """``kids`` without code, other roots and isolator's own objects (C loops)."""
        blocked = self.stops
        kids = list(compress(kids, map(not_, map(blocked.__contains__, map(id, kids)))))
        if self.later:  # a root with a worse name, met on the way: its memory is this one's
            self.absorbed.update(self.later.intersection(map(id, kids)))
        if OURS:
            kids = list(compress(kids, map(not_, map(OURS.__contains__, map(id, kids)))))
        types = list(map(type, kids))
        bad = {cls for cls in set(types) if issubclass(cls, _STOP_TYPES)
               or _isolator_type(cls)}
        if bad:
            kids = list(compress(kids, map(not_, map(bad.__contains__, types))))
        return kids

    def _kids(self, objs: list[Any], found: Walk, weight: float) -> list[Any]:
        """Everything ``objs`` refer to that a walk follows (see the module doc)."""
        plain: list[Any] = []
        extra: list[Any] = []
        for obj in objs:
            cls = type(obj)
            if cls is FunctionType:
                skip = (id(c_attr(obj, "__globals__")), id(c_attr(obj, "__builtins__")))
                extra.extend(ref for ref in gc.get_referents(obj) if type(ref) is not str
                             and id(ref) not in skip and not is_code(ref))
            elif cls is FrameType:
                if not is_ours(obj):  # a finished frame, reached from a traceback
                    extra.extend(ref for ref in gc.get_referents(obj) if not is_code(ref))
            elif _special(obj):
                extra.extend(_special_kids(obj, found, weight))
            else:
                plain.append(obj)
                if cls is dict and obj and type(next(iter(obj))) is str:
                    extra.extend(dict.keys(obj))  # gc leaves str keys out
        kids = gc.get_referents(*plain) if plain else []
        del plain
        kids.extend(extra)
        return kids

    def _count(self, group: list[Any], weight: float, found: Walk) -> None:
        counts, totals, big = measure(group, BIG)
        for cls in counts:
            if cls in _HIDDEN_TYPES or _inline(cls):
                totals[cls] = totals.get(cls, 0) + _hidden(cls, group, found)
        found.bytes += weight * sum(totals.values())
        found.objects += weight * len(group)
        for cls, size in totals.items():
            found.types[cls] = found.types.get(cls, 0.0) + weight * size
        for size, obj in big:
            self.big_ids.add(id(obj))
            found.big.append((size, weight, obj))
        if len(found.big) > 256:
            found.big.sort(key=lambda item: item[0] * item[1], reverse=True)
            del found.big[64:]


def _weigh_shared(first: dict[int, tuple[Any, int]], many: Counter[int], weight: float,
                  groups: list[tuple[float, list[Any]]]) -> None:
    """Add the shared objects met for the first time to ``groups`` with their weight.

    One met many times in this level is shared by the level itself (a dict key, a small
    int): counted once, whatever the sampling (weight 1, ``groups[1]``). One met once
    is referred to from elsewhere too: with ``k`` referrers (its reference count less
    the walk's own two), each kept in the sample with probability ``1 / weight``, it is
    met with probability ``1 - (1 - 1 / weight) ** k``, so it stands for one over that
    (a cache value that also is its key is met from both sides: twice as likely)."""
    single = groups[0][1]
    by_weight: dict[float, list[Any]] = {}
    for ident, (obj, refs) in first.items():
        if many[ident] > 1:
            groups[1][1].append(obj)
        elif weight <= 1.0 or refs <= _UNIQUE:
            single.append(obj)
        else:
            chance = 1.0 - (1.0 - 1.0 / weight) ** (refs - _UNIQUE + 1)
            by_weight.setdefault(round(1.0 / chance, 2), []).append(obj)
    groups.extend(by_weight.items())


def _extrapolate_chain(frontier: dict[float, list[Any]], links_types: set[type], depth: int,
                       found: Walk) -> None:
    """A walk cut inside a linked structure (a tee's buffers, a user's linked list):
    count the links left without sizing them, and scale up by the depth walked."""
    ends = [obj for objs in frontier.values() for obj in objs if type(obj) in links_types]
    node = ends[0] if len(ends) == 1 else None
    links = 0
    while node is not None and links < MAX_CHAIN:
        nxt = [kid for kid in gc.get_referents(node) if type(kid) is type(node)]
        node = nxt[0] if len(nxt) == 1 else None
        links += 1
    if links and depth:
        scale = (depth + links) / depth
        found.bytes *= scale
        found.objects *= scale
        found.estimated = True
        found.cut = f"{found.cut}; {links} more links of a chain were counted, not sized"


KIDS_CHUNK = 65536  # references read at once, about


def _chunks(objs: list[Any]) -> list[list[Any]]:
    """``objs`` in runs that refer to about ``KIDS_CHUNK`` objects each."""
    sizes = [len(obj) if type(obj) in _LONG else 8 for obj in objs]
    if sum(sizes) <= KIDS_CHUNK:
        return [objs]
    parts, start, total = [], 0, 0
    for i, size in enumerate(sizes):
        total += size
        if total >= KIDS_CHUNK:
            parts.append(objs[start : i + 1])
            start, total = i + 1, 0
    if start < len(objs):
        parts.append(objs[start:])
    return parts


def _isolator_type(cls: type) -> bool:
    module = type.__dict__["__module__"].__get__(cls)
    return type(module) is str and module.startswith("isolator")


def _array_type() -> Any:
    numpy = sys.modules.get("numpy")  # never imported here: only if the task did
    ndarray = getattr(numpy, "ndarray", None) if numpy is not None else None
    return ndarray if type(ndarray) is type else None


def _special(obj: object) -> bool:
    return _special_type(type(obj))


def _special_type(cls: type) -> bool:
    if cls is _LOCAL:
        return True
    ndarray = _array_type()
    return ndarray is not None and issubclass(cls, ndarray)


def _special_kids(obj: Any, found: Walk, weight: float) -> list[Any]:
    if type(obj) is _LOCAL:  # this thread's attributes (other threads' are out of reach)
        try:
            attrs = _LOCAL.__getattribute__(obj, "__dict__")
        except Exception:  # noqa: BLE001
            return []
        return [attrs] if type(attrs) is dict else []
    ndarray = _array_type()
    base = ndarray.__dict__["base"].__get__(obj)
    if base is None:
        return []
    if issubclass(type(base), ndarray):
        mine, theirs = _nbytes(obj), _nbytes(base)
        if theirs > 4 * max(mine, 1):
            if found.view_shape is None:
                shape = ndarray.__dict__["shape"].__get__(obj)
                found.view_shape = tuple(shape) if type(shape) is tuple else None
            found.views[0] += weight
            found.views[1] += weight * mine
            found.views[2] += weight * theirs
    return [base]


def _sample_items(obj: Any, step: int) -> list[Any]:
    """Every ``step``-th item of a very long container (keys and values of a dict)."""
    cls = type(obj)
    if issubclass(cls, dict):
        # Keys and values from different items: a value that holds its own key (a
        # cache of parsed strings) must not be met from both sides at once, or the
        # weights of what is shared would be off by half (see ``_weigh_shared``).
        return [*islice(dict.keys(obj), 0, None, step),
                *islice(dict.values(obj), step // 2, None, step)]
    if issubclass(cls, (list, tuple)):
        sequence: Any = list if issubclass(cls, list) else tuple
        n = sequence.__len__(obj)
        picked = sorted(_RANDOM.sample(range(n), max(n // step, 1)))
        return [sequence.__getitem__(obj, i) for i in picked]
    members: Any = next(b for b in (set, frozenset, deque) if issubclass(cls, b))
    return list(islice(members.__iter__(obj), 0, None, step))


def _nbytes(array: Any) -> int:
    try:
        return int(_array_type().__dict__["nbytes"].__get__(array))
    except Exception:  # noqa: BLE001
        return 0


_HIDDEN_TYPES = (io.StringIO, mmap.mmap)
_MANAGED_DICT = 1 << 4  # Py_TPFLAGS_MANAGED_DICT: 3.11 keeps attribute values inline
_FLAGS = type.__dict__["__flags__"]


def _inline(cls: type) -> bool:
    return bool(_FLAGS.__get__(cls) & _MANAGED_DICT)


def _hidden(cls: type, group: list[Any], found: Walk) -> int:
    """Bytes of ``cls`` objects in ``group`` that ``sys.getsizeof`` does not count."""
    objs = [obj for obj in group if type(obj) is cls]
    if cls is io.StringIO:
        chars = sum(_stringio_chars(obj) for obj in objs)
        found.text += chars
        return chars
    if cls is mmap.mmap:
        return sum(_mmap_length(obj) for obj in objs)
    return 8 * sum(max(len(gc.get_referents(obj)) - 1, 0) for obj in objs)


def _stringio_chars(buffer: Any) -> int:
    # The text StringIO keeps, in characters: its end position (seeking to the end
    # and back does not copy the buffer, unlike getvalue()).
    try:
        here = io.StringIO.tell(buffer)
        end = io.StringIO.seek(buffer, 0, io.SEEK_END)
        io.StringIO.seek(buffer, here)
    except (ValueError, OSError):  # closed
        return 0
    return end


def _mmap_length(mapping: Any) -> int:
    try:
        return mmap.mmap.__len__(mapping)
    except (ValueError, OSError):  # closed
        return 0
