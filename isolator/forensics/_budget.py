"""How much time and memory a report may spend, scaled with the heap and the headroom.

The child walks its heap between the soft limit and the hard cap: past the cap it is
killed and the report is lost, so memory is the hard bound; time is what the user
waits. Time grows with the heap: ``SECONDS_PER_MILLION`` per million gc-tracked objects,
never less than ``BASE_SECONDS`` and never more than ``MAX_SECONDS``; it is counted in
CPU seconds of the child (``_common.Budget``), so a busy machine gets the same report,
later, rather than a worse one. Most reports take well under their budget: a section
stops early only on a heap that needs it. Memory is a share of the headroom left below the cap
(``MEMORY_SHARE``): it bounds the sets of ids the walks keep (``max_seen``) and decides
how heapy may run. Without a cap (a reused worker examined for a leak) the memory
budget is ``DEFAULT_MEMORY``.
"""

from __future__ import annotations

import gc
from typing import Any

BASE_SECONDS = 3.0
SECONDS_PER_MILLION = 2.0
MAX_SECONDS = 20.0
MEMORY_SHARE = 0.5
DEFAULT_MEMORY = 512 << 20
ID_COST = 80  # bytes an id takes in a set, with the set's own slack
MIN_SEEN = 20_000


class Plan:
    """The budgets of one report, and how they were chosen (the ``budget`` section)."""

    def __init__(self, time_budget: float | None, headroom: int | None,
                 tracked: int | None = None) -> None:
        self.tracked = len(gc.get_objects()) if tracked is None else tracked
        self.headroom = headroom
        if time_budget is None:
            self.seconds = auto_seconds(self.tracked)
            self.how = (f"{BASE_SECONDS:g} s, {SECONDS_PER_MILLION:g} s per million "
                        f"gc-tracked objects, at most {MAX_SECONDS:g} s")
        else:
            self.seconds = float(time_budget)
            self.how = "given"
        self.memory = auto_memory(headroom)

    @property
    def max_seen(self) -> int:
        """Shared objects the walks may remember (the rest may be counted twice)."""
        return max(MIN_SEEN, self.memory // 4 // ID_COST)

    def section(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "memory": self.memory, "headroom": self.headroom,
                "gc_tracked": self.tracked, "time_rule": self.how,
                "memory_rule": (f"{MEMORY_SHARE:.0%} of the headroom below the cap"
                                if self.headroom is not None
                                else f"{DEFAULT_MEMORY >> 20} MiB (no cap)")}


def auto_seconds(tracked: int, base: float = BASE_SECONDS) -> float:
    """The time budget for a heap of ``tracked`` gc-tracked objects."""
    return min(MAX_SECONDS, max(base, SECONDS_PER_MILLION * tracked / 1e6))


def auto_memory(headroom: int | None) -> int:
    """The memory budget for ``headroom`` bytes left below the cap (None: no cap)."""
    if headroom is None:
        return DEFAULT_MEMORY
    return max(int(headroom * MEMORY_SHARE), 0)
