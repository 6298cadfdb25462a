"""Workloads for forensics.py (an importable module, so children get them by reference)."""

from __future__ import annotations

import gc
import time
from typing import Any

MiB = 1 << 20


class Point:
    """A small instance, as rows of a parsed file are."""

    def __init__(self, x: int, y: float) -> None:
        self.x, self.y = x, y


_BACKGROUND: list[Any] = []  # the heap a real program has anyway
_LEAK: dict[int, Point] = {}  # the leak the report must name: bench_leak._LEAK


def build_heap(objects: int) -> int:
    """About ``objects`` gc-tracked objects (instances and small lists, as FINDINGS'
    heap) and their numbers; 60 % of the instances leaked into a module-level dict (the
    leak that filled the memory), the rest a program's working set."""
    leaked = objects * 6 // 10
    rest = (objects - leaked) // 2
    _BACKGROUND.append([Point(i, float(i)) for i in range(rest)])
    _BACKGROUND.append([[i] for i in range(rest)])
    _LEAK.update((i, Point(i, 0.5)) for i in range(leaked))
    return len(gc.get_objects())


def _status(key: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(key))



def time_collect(objects: int, level: str, headroom: int) -> dict[str, Any]:
    """Build a heap of ``objects`` objects, then time one forensics walk over it and
    measure its peak memory above the RSS it started from (VmHWM, reset first)."""
    from isolator import forensics

    gc.unfreeze()  # as the child does before its walk: the zygote's objects are frozen
    tracked = build_heap(objects)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # VmHWM := the RSS now
    before = _status("VmRSS")
    cpu, wall = time.process_time(), time.perf_counter()
    result = forensics.collect(level=level, frame=None, baseline=None, headroom=headroom)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    rows = (result.get("holders") or {}).get("holders") or [{}]
    top = next((row for row in rows if row.get("path") == "_forensics_workloads._LEAK"),
               rows[0])
    return {"tracked": tracked, "cpu": cpu, "wall": wall,
            "extra": _status("VmHWM") - before, "holder": top.get("path"),
            "rank": rows.index(top) + 1, "retained": top.get("bytes"),
            "missing": sorted(result.get("missing", {})),
            "python": (result.get("python_heap") or {}).get("python_bytes")}


def time_heapy(objects: int) -> dict[str, Any]:
    """The peer: heapy's partition of the same heap (FINDINGS: 2.5 s, 214 MiB at 1 M)."""
    from guppy import hpy

    build_heap(objects)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _status("VmRSS")
    cpu, wall = time.process_time(), time.perf_counter()
    heap = hpy().heap()
    rows = heap.size
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu": cpu, "wall": wall, "extra": _status("VmHWM") - before, "bytes": rows}


def busy(n: int) -> float:
    """A task that allocates as it computes: what native tracking slows down."""
    start = time.perf_counter()
    rows = []
    for i in range(n):
        rows.append({"i": i, "s": str(i) * 3})
        if len(rows) > 10_000:
            rows.clear()
    return time.perf_counter() - start


def busy_under_memray(n: int) -> float:
    """The same task under memray alone (no isolator forensics): the peer to compare to."""
    import os
    import tempfile

    import memray

    with tempfile.TemporaryDirectory() as folder:
        with memray.Tracker(os.path.join(folder, "capture.bin"), native_traces=False):
            return busy(n)
