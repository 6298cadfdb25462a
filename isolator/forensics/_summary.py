"""The baseline taken at task start, and the sections built from one heap scan:
``python_heap`` (Python objects or native memory?), ``types`` and ``growth``."""

from __future__ import annotations

import gc
import time
from collections import Counter
from typing import Any

from ._common import Budget, clear_caches, rss_bytes, type_name
from ._heap import HeapScan, scan

TOP = 15
_ISOLATOR = "isolator."  # isolator's own objects are not growth
_BASELINE_OBJECTS = 4096  # gc-tracked objects the baseline sizes (a sample beyond)


class Baseline:
    """The heap when the task started: counts of gc-tracked objects per type (as
    ``objgraph.growth`` keeps them), objects and bytes per type and in all (estimated
    from a sample of the heap, untracked objects included), the process's RSS and the
    time. Cheap: ~10-20 ms on a fresh interpreter."""

    __slots__ = ("counts", "elapsed", "python_bytes", "rss", "sizes", "started")

    def __init__(self, counts: dict[str, int], python_bytes: int | None, rss: int | None,
                 started: float, elapsed: float,
                 sizes: dict[str, tuple[int, int]] | None = None) -> None:
        self.counts = counts  # type name -> gc-tracked objects of that type
        self.sizes = sizes or {}  # type name -> (objects, bytes), estimated
        self.python_bytes = python_bytes  # estimated from a sample of the heap, or None
        self.rss = rss  # RssAnon + RssShmem, bytes
        self.started = started  # time.monotonic()
        self.elapsed = elapsed  # seconds it took

    def __repr__(self) -> str:
        python = "?" if self.python_bytes is None else self.python_bytes >> 20
        return (f"<Baseline {sum(self.counts.values())} objects, {python} MiB Python, "
                f"took {self.elapsed * 1000:.0f} ms>")


def take_baseline() -> Baseline:
    """Snapshot the heap at task start (call it in the child, before the task)."""
    started = time.monotonic()
    enabled = gc.isenabled()
    gc.disable()
    python: int | None = None
    counts: dict[str, int] = {}
    sizes: dict[str, tuple[int, int]] = {}
    try:
        counts = by_name(Counter(map(type, gc.get_objects())))
        tracked = sum(counts.values())
        sample = scan(Budget(0.03), None, top=0, stride=max(1, tracked // _BASELINE_OBJECTS))
        scale = tracked / max(sample.tracked, 1)
        python = int(sample.python_bytes * scale)
        for cls, (n, size) in sample.stats.items():
            name = type_name(cls)
            was = sizes.get(name, (0, 0))
            sizes[name] = (was[0] + int(n * scale), was[1] + int(size * scale))
    except Exception:  # noqa: BLE001 - no estimate: growth in bytes will be missing
        pass
    finally:
        clear_caches()
        if enabled:
            gc.enable()
    return Baseline(counts, python, rss_bytes(), started, time.monotonic() - started, sizes)


def by_name(counts: Counter[type]) -> dict[str, int]:
    named: dict[str, int] = {}
    for cls, n in counts.items():
        name = type_name(cls)
        named[name] = named.get(name, 0) + n
    return named


def python_heap(heap: HeapScan, baseline: Baseline | None, rss: int | None,
                explained: int = 0, garbage: int = 0) -> dict[str, Any]:
    """Bytes held by Python objects against the process's RSS: which one grew?

    A scan cut short is scaled up by the share of gc-tracked objects it read, and never
    counts less than the named holders explain (``explained``); ``garbage`` is what
    unreachable cycles held before this report freed them (still Python memory when
    the cap was crossed)."""
    python = heap.python_bytes
    section: dict[str, Any] = {"rss_bytes": rss, "objects": heap.objects,
                               "gc_tracked": heap.total}
    if heap.partial:
        section["estimated"] = (f"at least: the scan read {heap.tracked} of {heap.total} "
                                f"gc-tracked objects and what they hold")
    elif heap.sampled:
        section["estimated"] = heap.sampled
    python = max(python, explained) + garbage
    section["python_bytes"] = python
    if garbage:
        section["garbage_bytes"] = garbage
    if rss is None:
        section["held_by"] = "unknown (/proc/self/status was unreadable)"
        return section
    section["native_bytes"] = max(rss - python, 0)
    section["python_share"] = round(python / rss, 3) if rss else None
    native = rss - python > python
    if baseline is not None and baseline.rss is not None and baseline.python_bytes is not None:
        grew, python_grew = rss - baseline.rss, python - baseline.python_bytes
        section["since_baseline"] = {
            "rss_bytes": grew, "python_bytes": python_grew,
            "native_bytes": grew - python_grew,
        }
        native = grew - python_grew > max(python_grew, 0)
    section["held_by"] = "native allocations" if native else "python objects"
    return section


def types_section(heap: HeapScan) -> dict[str, Any]:
    """The biggest types by total size, untracked objects (bytes, str, arrays) included."""
    named: dict[str, list[int]] = {}
    for cls, (n, size) in heap.stats.items():
        entry = named.setdefault(type_name(cls), [0, 0])
        entry[0] += n
        entry[1] += size
    ranked = sorted(named.items(), key=lambda item: item[1][1], reverse=True)
    section: dict[str, Any] = {
        "top": [{"type": name, "count": n, "bytes": size} for name, (n, size) in ranked[:TOP]],
        "types": len(named), "objects": heap.objects, "bytes": heap.python_bytes,
    }
    if heap.approximate:
        section["approximate"] = "too many shared objects to de-duplicate them all"
    if heap.sampled:
        section["estimated"] = heap.sampled
    return section


GROWTH_FLOOR = 64 * 1024  # a type that grew by less is noise (isolator's own included)
GROWTH_SHARE = 0.005  # ... or by less than this share of what grew in all


def growth_section(heap: HeapScan, baseline: Baseline) -> dict[str, Any]:
    """Types that grew since the baseline, by bytes: every object counted now (the heap
    scan, untracked ones included), against the baseline's estimate from a sample."""
    now: dict[str, list[int]] = {}
    for cls, (n, size) in heap.stats.items():
        entry = now.setdefault(type_name(cls), [0, 0])
        entry[0] += n
        entry[1] += size
    rows: list[dict[str, Any]] = []
    for name, (after, size) in now.items():
        before, was = baseline.sizes.get(name, (baseline.counts.get(name, 0), 0))
        if size > was and not name.startswith(_ISOLATOR):
            rows.append({"type": name, "before": before, "after": after,
                         "delta": after - before, "bytes_before": was, "bytes_after": size,
                         "bytes_delta": size - was})
    grown = sum(row["bytes_delta"] for row in rows)
    floor = max(GROWTH_FLOOR, grown * GROWTH_SHARE)
    rows = [row for row in rows if row["bytes_delta"] >= floor]
    rows.sort(key=lambda row: row["bytes_delta"], reverse=True)
    return {
        "since_seconds": round(time.monotonic() - baseline.started, 3),
        "top": rows[:TOP],
        "bytes": grown,
        "floor": int(floor),
        "counted": "every object, by bytes; before: estimated from a sample of the heap"
                   + (f"; now: {heap.sampled}" if heap.sampled else ""),
    }
