"""heapy's partition of the heap (guppy3), the "deep" level only.

heapy sees every object, tracked by gc or not, with its size, and groups them by kind
(``dict of mymodule.Session`` for instance dicts). It is slow and hungry: 2.5 s and
214 MiB more on a heap of ~1 M objects (FINDINGS.md section 5), and it keeps ~55 MiB
afterwards (on 3.11+ it makes instance ``__dict__``s exist). So it runs only when asked
for and only when the time left looks long enough.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from ._common import Budget, OutOfTime, Skipped

# Measured: 2.5 s for ~1.1 M gc-tracked objects plus their untracked referents.
SECONDS_PER_OBJECT = 2.3e-6


class Unavailable(Skipped):
    """guppy3 is not installed."""


def partition(budget: Budget, tracked: int, top: int = 15) -> dict[str, Any]:
    """The ``heapy`` section: heapy's top rows by size (kind, count, bytes)."""
    estimate = tracked * SECONDS_PER_OBJECT
    if estimate > budget.left():
        raise OutOfTime(
            f"heapy would need about {estimate:.1f} s for {tracked} objects and only "
            f"{max(budget.left(), 0):.1f} s of the time budget were left"
        )
    try:
        from guppy import hpy
    except ImportError as exc:
        raise Unavailable("guppy3 is not installed (pip install guppy3)") from exc
    heap = hpy().heap()
    try:
        rows = [
            {"kind": str(row.name), "count": int(row.count), "bytes": int(row.size)}
            for row in islice(heap.stat.get_rows(), top)
        ]
        return {"rows": rows, "objects": int(heap.count), "bytes": int(heap.size)}
    finally:
        del heap
