"""heapy's partition of the heap (guppy3), the "deep" level only.

heapy sees every object, tracked by gc or not, with its size, and groups them by kind
(``dict of mymodule.Session`` for instance dicts). On the whole heap it is slow and
hungry: 2.5-3 s and ~200 MiB more on a heap of ~1 M objects (FINDINGS.md section 5),
and on 3.11+ it makes every instance's ``__dict__`` exist to tell its owner (it keeps
~55 MiB of them). Under a small cap that much headroom is not there, so heapy runs in
one of two modes, chosen from the memory budget and the time left:

- ``full``: ``hpy().heap()``, partitioned by kind, when its estimated cost
  (``FULL_BYTES`` per object) fits the memory budget;
- ``sample``: ``hpy().iso(...)`` of every k-th gc-tracked object and what it refers to
  that gc does not track, partitioned by type (the by-kind partition would need the
  instance dicts of the whole heap), counts and sizes scaled by k, with k chosen so the
  sample fits (``SAMPLE_BYTES`` per object).

When neither fits, the section is missing and says why.
"""

from __future__ import annotations

import gc
from itertools import islice
from typing import Any

from ._common import OURS, Budget, OutOfTime, Skipped

SECONDS_PER_OBJECT = 2.3e-6  # measured: 2.5 s for ~1.1 M gc-tracked objects
FULL_BYTES = 100  # heapy's extra memory per object of the heap, in its full partition
SAMPLE_BYTES = 400  # ... per object of a sample (heapy's nodes and our lists)
IMPORT_BYTES = 4 << 20  # importing guppy
MAX_SAMPLE = 200_000


class Unavailable(Skipped):
    """guppy3 is not installed."""


def partition(budget: Budget, tracked: int, memory: int | None = None,
              objects: int | None = None, top: int = 15) -> dict[str, Any]:
    """The ``heapy`` section: heapy's top rows by size (kind or type, count, bytes)."""
    objects = objects or tracked
    memory = memory if memory is not None else 1 << 40
    estimate = tracked * SECONDS_PER_OBJECT
    need = objects * FULL_BYTES + IMPORT_BYTES
    try:
        from guppy import hpy
    except ImportError as exc:
        raise Unavailable("guppy3 is not installed (pip install guppy3)") from exc
    if need <= memory and estimate <= budget.left():
        heap = hpy().heap()
        try:
            return {"mode": "full", "by": "kind", "rows": _rows(heap, 1, top),
                    "objects": int(heap.count), "bytes": int(heap.size)}
        finally:
            del heap
    why = (f"heapy would need about {need >> 20} MiB and {estimate:.1f} s for the full "
           f"partition; {max(memory, 0) >> 20} MiB and {max(budget.left(), 0):.1f} s were "
           f"left")
    room = min((memory - IMPORT_BYTES) // SAMPLE_BYTES, MAX_SAMPLE,
               int(max(budget.left(), 0) / SECONDS_PER_OBJECT / 4))
    if room < 1000:
        raise OutOfTime(f"{why}, too little even for a sample of the heap")
    return _sample(hpy(), objects, room, why, top)


def _sample(hp: Any, objects: int, room: int, why: str, top: int) -> dict[str, Any]:
    step = max(1, -(-objects // room))
    tracked = gc.get_objects()
    OURS.add(id(tracked))
    try:
        chosen = tracked[::step]
        OURS.add(id(chosen))
        del tracked[:]
        # What the chosen objects refer to that gc does not track stands for a sample
        # of the untracked objects at the same rate.
        inner = [ref for ref in gc.get_referents(*chosen) if not gc.is_tracked(ref)]
        OURS.add(id(inner))
        nodes = hp.iso(*chosen, *inner)
        chosen.clear()
        inner.clear()
        by_type = nodes.bytype
        section = {"mode": "sample", "by": "type", "sample": step,
                   "rows": _rows(by_type, step, top), "objects": int(nodes.count) * step,
                   "bytes": int(nodes.size) * step, "why": why}
        del nodes, by_type
        return section
    finally:
        OURS.difference_update({id(tracked)})


def _rows(heap: Any, scale: int, top: int) -> list[dict[str, Any]]:
    return [{"kind": str(row.name), "count": int(row.count) * scale,
             "bytes": int(row.size) * scale} for row in islice(heap.stat.get_rows(), top)]
