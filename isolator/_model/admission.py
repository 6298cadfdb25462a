"""Memory-aware admission: the budget a pool's running caps must fit in.

The scheduler admits the unit at the head of its queue only when its cap fits in what is
left of the budget (first in, first out, so a big unit is never starved by small ones). A
task whose cap is larger than the whole budget could never start: its submission fails,
and an escalated retry is held to the budget.
"""

from __future__ import annotations

from .._units import format_size
from .values import Limits


def default_budget() -> int | None:
    """Four fifths of the memory the kernel says is available now (None off Linux)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 * 4 // 5
    except OSError:
        pass
    return None


def admits(budget: int | None, admitted: int, cap: int) -> bool:
    """Whether a unit capped at ``cap`` may start while ``admitted`` bytes of caps run."""
    return budget is None or admitted + cap <= budget


def misfit(limits: Limits, budget: int | None) -> str | None:
    """Why no task under ``limits`` could ever be admitted, or None when one can."""
    if budget is None or limits.max_mem is None or limits.max_mem <= budget:
        return None
    return (f"max_mem ({format_size(limits.max_mem)}) is larger than the pool's memory "
            f"budget ({format_size(budget)}): no task could ever start; raise "
            "memory_budget or lower max_mem")


def clamped(limits: Limits, budget: int) -> Limits:
    """An escalated cap never exceeds the budget: it could never be admitted."""
    if limits.max_mem is None or limits.max_mem <= budget:
        return limits
    return limits.with_cap(budget)
