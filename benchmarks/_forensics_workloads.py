"""Workloads for forensics.py (an importable module, so children get them by reference)."""

from __future__ import annotations

import time

_HEAP: list[object] = []


def build_heap(objects: int) -> int:
    """About ``objects`` small objects kept alive, plus a leak to find."""
    _HEAP.extend({"id": i, "name": f"row-{i}"} for i in range(objects // 2))
    return len(_HEAP)


def time_collect(objects: int, level: str) -> dict[str, float]:
    """Build a heap of ``objects`` objects, then time one forensics walk over it."""
    import gc

    from isolator import forensics
    from isolator._wire import procfs as _procfs

    gc.unfreeze()  # as the child does before its walk: the zygote's objects are frozen
    build_heap(objects)
    baseline = forensics.take_baseline()
    rss_before = _procfs.self_rss()
    started = time.perf_counter()
    result = forensics.collect(level=level, frame=None, baseline=baseline, time_budget=30.0)
    elapsed = time.perf_counter() - started
    cost = result.get("cost", {})
    return {"seconds": elapsed, "rss_before": rss_before,
            "extra": max(cost.get("rss_after", 0) - cost.get("rss_before", 0), 0),
            "missing": len(result.get("missing", {}))}


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
