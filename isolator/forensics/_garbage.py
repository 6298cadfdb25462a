"""Garbage: reference cycles nothing can reach any more, which only gc frees.

With ``gc.disable()`` (or between collections of the oldest generation, which a growing
heap postpones) unreachable cycles hold memory that no chain of references explains: a
report that lists them as holders sends the reader after objects that are already dead.
A collection with ``gc.DEBUG_SAVEALL`` finds them without losing them: gc moves them to
``gc.garbage`` instead of freeing them, so they can be counted and sized; then they are
dropped and collected for real, which gives their memory back to the walk that follows.
Finalizers and weak reference callbacks of that garbage run, as at any collection.
"""

from __future__ import annotations

import gc
from typing import Any

from ._common import OURS, Budget, type_name
from ._heap import HeapScan

TOP = 8
CHUNK = 2048


def garbage_section(budget: Budget, enabled: bool) -> dict[str, Any]:
    """What unreachable cycles held (counted, then freed); ``enabled``: whether gc was
    enabled in the task (collect() disables it while it works)."""
    debug = gc.get_debug()
    before = len(gc.garbage)
    gc.set_debug(debug | gc.DEBUG_SAVEALL)
    try:
        gc.collect()
    finally:
        gc.set_debug(debug)
    found = gc.garbage[before:]
    del gc.garbage[before:]
    OURS.add(id(found))
    section: dict[str, Any] = {"gc_enabled": enabled, "threshold": list(gc.get_threshold()),
                               "objects": len(found), "bytes": 0, "types": []}
    if found:
        scan = HeapScan(top=0)
        read = 0
        for start in range(0, len(found), CHUNK):
            scan.add_chunk(found[start : start + CHUNK])
            read = min(start + CHUNK, len(found))
            if budget.expired() and read < len(found):
                section["estimated"] = (f"sized {read} of {len(found)} unreachable objects "
                                        f"(with what they hold), the rest scaled from them")
                break
        scale = len(found) / max(read, 1)
        section["objects"] = int(scan.objects * scale)
        section["bytes"] = int(scan.python_bytes * scale)
        named: dict[str, list[int]] = {}
        for cls, (count, size) in scan.stats.items():
            entry = named.setdefault(type_name(cls), [0, 0])
            entry[0] += int(count * scale)
            entry[1] += int(size * scale)
        ranked = sorted(named.items(), key=lambda item: -item[1][1])[:TOP]
        section["types"] = [{"type": name, "count": n, "bytes": size}
                            for name, (n, size) in ranked]
        scan.release()
    freed = bool(found)
    found.clear()
    OURS.discard(id(found))
    if freed:
        gc.collect()  # now they are gone for good
    section["collected"] = True
    return section
