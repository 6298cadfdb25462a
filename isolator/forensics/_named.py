"""Holders found from the top: every named root walked, the biggest ones explained.

Roots come best name first (``_roots``); each is walked for its retained size
(``_retained``), so the time budget goes to the user's modules and frames before the
standard library's, and what was found stays found when the budget runs out (the rows
say which roots were not walked). Roots with the same name (ten thousand
``atexit.register(flush)`` callbacks, one frame per recursion) make one row; a big
group is walked on a sample. For the biggest rows the walk then goes down from the root
to the container that holds the memory (``_PENDING`` -> its ``.queue`` deque) and on
to one big object it holds (the example), naming each reference as the code does.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from itertools import islice
from typing import Any

from .._units import format_size
from ._common import Budget, sizeof, type_name
from ._edges import Namer
from ._holders import join
from ._retained import Walk, Walker
from ._roots import Root

TOP = 8  # rows explained in full
KEPT = 32  # walks kept for ranking (the rest are summed)
GROUP_SAMPLE = 64  # roots of one name walked, at most (the rest estimated from them)
FEW = 16  # an object with more references than this is a collection: a container
MAX_DESCENT = 10
PROBE = 3000  # objects a walk made only to choose a branch may size (after a level)
PROBE_LEVELS = 4  # ... and how deep it goes: containers' own sizes grow with their length
PROBE_PIECE = 256  # ... and how many items of a long container it reads
MAX_PROBE_LEVELS = 64
_SIZED = (list, tuple, dict, set, frozenset)


class Found:
    """One row in the making: a root (or a group of same-named roots) and its walk."""

    __slots__ = ("bytes", "count", "root", "walk")

    def __init__(self, root: Root, walk: Walk, count: int, scale: float) -> None:
        self.root, self.walk, self.count = root, walk, count
        self.bytes = walk.bytes * scale
        if scale != 1.0:
            walk.objects *= scale
            walk.estimated = True
            walk.big = [(size, weight * scale, obj) for size, weight, obj in walk.big]


def walk_roots(roots: list[Root], walker: Walker, budget: Budget
               ) -> tuple[list[Found], dict[str, Any]]:
    """Walk every root, best first; the biggest rows and what the walk covered.

    A walk stops at the roots of its own rank or better (they have rows of their own)
    and goes through those of worse names (a library frame's ``self`` that is the
    user's module global's queue): their memory is the better name's."""
    groups: dict[str, list[Root]] = {}
    for root in roots:
        groups.setdefault(root.label, []).append(root)
    ranks = walker.ranks
    for root in roots:
        ranks.setdefault(root.rank, []).append(id(root.value))
    opened: set[int] = set()
    kept: list[tuple[float, int, Found]] = []
    walked = total = 0
    rest = 0.0
    order = itertools.count()
    for label, members in groups.items():
        total += len(members)
        rank = members[0].rank
        if rank not in opened:  # roots of this rank (and better) stop every walk now
            opened.add(rank)
            walker.stops.update(ranks[rank])
            walker.later.difference_update(ranks[rank])
        count = len(members)
        members = [root for root in members if id(root.value) not in walker.absorbed]
        walked += count - len(members)  # met by a better name's walk: part of its row
        if not members:
            continue
        if budget.expired():
            continue
        step = max(1, len(members) // GROUP_SAMPLE)
        sample = members[::step]
        merged = Walk()
        for root in sample:
            one = walker.walk(root.value)
            _merge(merged, one)
        walked += len(members)
        found = Found(members[0], merged, len(members), len(members) / len(sample))
        del members
        del label
        item = (found.bytes, next(order), found)
        if len(kept) < KEPT:
            heapq.heappush(kept, item)
        else:
            small = heapq.heappushpop(kept, item)
            rest += small[0]
            small[2].walk.release()
    coverage: dict[str, Any] = {"roots": total, "walked": walked, "other_bytes": int(rest)}
    if walked < total:
        coverage["not_walked"] = (f"{total - walked} of {total} named roots were not walked: "
                                  f"the time budget ran out (the walk goes best names first)")
    if walker.approximate:
        coverage["approximate"] = "too many shared objects to count each once"
    return [found for _, _, found in sorted(kept, key=lambda item: -item[0])], coverage


def _merge(into: Walk, one: Walk) -> None:
    into.bytes += one.bytes
    into.objects += one.objects
    into.estimated |= one.estimated
    into.cut = into.cut or one.cut
    into.big.extend(one.big)
    for cls, size in one.types.items():
        into.types[cls] = into.types.get(cls, 0.0) + size
    into.text += one.text
    for i in range(3):
        into.views[i] += one.views[i]
    into.view_shape = into.view_shape or one.view_shape
    if len(into.big) > 256:
        into.big.sort(key=lambda item: item[0] * item[1], reverse=True)
        del into.big[64:]


def holder_rows(found: list[Found], walker: Walker, namer: Namer, budget: Budget,
                top: int = TOP) -> tuple[list[dict[str, Any]], list[Any]]:
    """Rows for the biggest roots, and their containers (for the back-reference graph)."""
    rows, containers = [], []
    for rank, item in enumerate(found[:top]):
        if item.bytes <= 0:
            break
        walker.stop_as(item.root.rank, item.root.value)  # as when its walk counted it
        if budget.expired():
            rows.append(_row(item, [item.root.value], [], namer, walker, False))
            continue
        path = descend(item.root.value, walker, namer, item.bytes)
        example = example_path(path[-1], walker, item.bytes)
        # The container's own size, walked in full for the first rows while time allows.
        full = rank < 3 and budget.left() > budget.seconds / 4
        rows.append(_row(item, path, example, namer, walker, full))
        containers.append(path[-1])
    return rows, containers


def descend(value: Any, walker: Walker, namer: Namer, expect: float) -> list[Any]:
    """From a root's value down to the container of its memory: the first object on
    the way whose memory is spread over many references (a collection), or a single
    object (a blob) that is most of it. ``expect`` is what the root retains."""
    path = [value]
    for _ in range(MAX_DESCENT):
        current = path[-1]
        if _long(current, FEW) or sizeof(current) >= 0.5 * expect:
            break
        kids = walker.kids_of(current)
        if not kids or len(kids) > FEW:
            break
        # Only along references the code names (an attribute, a key, a local): not
        # into a frame's snapshot of its locals, say, which holds them all again.
        kids = [kid for kid in kids if not namer.edge([current, kid], 0)[0].startswith("<")]
        if not kids:
            break
        best_size, best, total = _biggest(kids, walker, expect)
        if best_size < 0.5 * total:
            break
        path.append(best)
        expect = best_size
    return path


def _probe(walker: Walker, value: Any, seen: set[int], levels: int) -> float:
    """A quick, rough size: enough to tell which branch holds the memory."""
    return walker.walk(value, limit=PROBE, seen=seen, levels=levels,
                       piece=PROBE_PIECE).bytes


def _biggest(kids: list[Any], walker: Walker, expect: float) -> tuple[float, Any, float]:
    """The kid that retains most, its size and all kids' (an object two kids share
    counts for the first). Probes go deeper until they find most of ``expect``: the
    memory under a traceback is a dozen references down."""
    levels = PROBE_LEVELS
    while True:
        shared: set[int] = set()
        sized = [(_probe(walker, kid, shared, levels), i) for i, kid in enumerate(kids)]
        total = sum(size for size, _ in sized)
        if total >= 0.5 * expect or levels >= MAX_PROBE_LEVELS:
            break
        levels *= 2
    best_size, index = max(sized)
    return best_size, kids[index], total


def example_path(container: Any, walker: Walker, expect: float) -> list[Any]:
    """From the container down to one of the biggest single objects it holds."""
    path = [container]
    for _ in range(MAX_DESCENT):
        current = path[-1]
        kids = _items(current, walker)
        if not kids:
            break
        best_size, best, _ = _biggest(kids, walker, expect)
        path.append(best)
        if sizeof(best) >= 0.5 * best_size:  # a blob: the object itself is the memory
            break
        expect = best_size
    return path[1:] if len(path) > 1 else []


def _long(obj: Any, limit: int) -> bool:
    base = next((b for b in (*_SIZED, deque) if issubclass(type(obj), b)), None)
    return base is not None and base.__len__(obj) > limit


def _items(container: Any, walker: Walker) -> list[Any]:
    """What to compare to find the biggest item: a sample of a collection's items (the
    values of a dict: its keys name the way), else what a walk follows."""
    cls = type(container)
    base = next((b for b in (*_SIZED, deque) if issubclass(cls, b)), None)
    if base is None:
        return walker.kids_of(container)
    step = max(1, base.__len__(container) // GROUP_SAMPLE)
    if base is dict:
        items = list(islice(dict.values(container), 0, None, step))
    elif base in (list, tuple):
        items = list(base.__getitem__(container, slice(None, None, step)))
    else:
        items = list(islice(base.__iter__(container), 0, None, step))
    return walker.allowed(items)


def _row(item: Found, path: list[Any], example: list[Any], namer: Namer,
         walker: Walker, full: bool = True) -> dict[str, Any]:
    root, walk = item.root, item.walk
    chain = [root.label, *(text for text, _ in namer.edges(path, 0))]
    container = path[-1]
    tail = [text for text, _ in namer.edges([container, *example], 0)] if example else []
    held = walk if container is root.value else \
        walker.walk(container, fresh=True, limit=0 if full else PROBE)
    row: dict[str, Any] = {
        "root": root.kind, "root_name": root.root_name, "chain": chain, "path": join(chain),
        "container": {"type": type_name(type(container)), "bytes": int(held.bytes),
                      **_length(container)},
        "example": tail,
        "objects": _objects(walk),
        "bytes": int(item.bytes),
        "retained": {"bytes": int(item.bytes), "objects": int(walk.objects),
                     "estimated": walk.estimated or item.count > 1},
    }
    if held is not walk:
        held.release()
    if item.count > 1:
        row["count"] = item.count
    notes = _notes(walk, container)
    if notes:
        row["notes"] = notes
    if walk.cut:
        row["retained"]["cut"] = walk.cut
    return row


def _objects(walk: Walk) -> dict[str, Any]:
    """The biggest single objects held (16 KiB or more), else everything held."""
    if walk.big:
        count = sum(weight for _, weight, _ in walk.big)
        size = sum(size * weight for size, weight, _ in walk.big)
        kinds: dict[str, float] = {}
        for one, weight, obj in walk.big:
            name = type_name(type(obj))
            kinds[name] = kinds.get(name, 0.0) + one * weight
        return {"count": round(count), "bytes": int(size), "types": _top_names(kinds)}
    named: dict[str, float] = {}
    for cls, size in walk.types.items():
        named[type_name(cls)] = named.get(type_name(cls), 0.0) + size
    return {"count": round(walk.objects), "bytes": int(walk.bytes), "types": _top_names(named)}


def _top_names(sizes: dict[str, float]) -> list[str]:
    return sorted(sorted(sizes, key=lambda name: -sizes[name])[:3])


def _notes(walk: Walk, container: Any) -> list[str]:
    """What a reader could not guess from the sizes: memory inside C objects."""
    notes = []
    count, mine, base = walk.views
    if count >= 1:
        shape = walk.view_shape
        rows = f"a {shape[0]}-row view" if shape else "a view"
        notes.append(
            f"{round(count)} numpy views keep bases {base / max(mine, 1):.0f} times their "
            f"size alive: {rows} ({format_size(mine / count)}) keeps a "
            f"{format_size(base / count)} base alive; {format_size(base)} in all")
    if walk.text:
        notes.append(f"io.StringIO: {walk.text:,} characters of text in its buffer, which "
                     f"gc cannot see (about a byte each while it is only written to)")
    kinds = {type_name(cls): size for cls, size in walk.types.items()}
    for name, what in (("_io.BytesIO", "bytes in its buffer"),
                       ("array.array", "bytes of items"), ("mmap.mmap", "bytes mapped"),
                       ("collections.deque", "bytes of blocks")):
        if kinds.get(name, 0) >= 0.5 * walk.bytes:
            notes.append(f"{name}: {format_size(kinds[name])} of {what}, inside the object")
    return notes


def _length(obj: Any) -> dict[str, int]:
    base = next((b for b in (*_SIZED, deque) if issubclass(type(obj), b)), None)
    return {} if base is None else {"len": base.__len__(obj)}
