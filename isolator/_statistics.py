"""A pool's counters, as the ``Statistics`` snapshot its ``statistics()`` returns."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ._errors import MemoryLimitExceeded

KIND = "kind:"  # counter keys of failures by kind: KIND + failure_kind(exc)


@dataclass(frozen=True)
class Statistics:
    """A snapshot of a pool's counters (see ``IsolatedExecutor.statistics``)."""

    submitted: int
    running: int
    pending: int
    completed: int
    failed: int
    failed_by_kind: dict[str, int]
    cancelled: int
    retried: int
    recycled: int
    leaks_suspected: int
    peak_admitted: int
    peak_rss: int
    peak_rss_per_task: list[int] = field(repr=False)
    resent: int = 0  # units sent ahead to a reused worker that left first: run elsewhere


def failure_kind(exc: BaseException) -> str:
    """How a unit failed, for statistics: the memory layer or the exception's type name."""
    if isinstance(exc, MemoryLimitExceeded):
        return f"memory:{exc.kind}"
    return type(exc).__name__


def snapshot(counts: Counter[str], running: int, pending: int, peak_admitted: int,
             peaks: list[int]) -> Statistics:
    """The counters as a ``Statistics`` (the caller holds the pool's lock)."""
    return Statistics(
        submitted=counts["submitted"],
        running=running,
        pending=pending,
        completed=counts["completed"],
        failed=counts["failed"],
        failed_by_kind={k[len(KIND):]: v for k, v in counts.items() if k.startswith(KIND)},
        cancelled=counts["cancelled"],
        retried=counts["retried"],
        recycled=counts["recycled"],
        leaks_suspected=counts["leaks_suspected"],
        peak_admitted=peak_admitted,
        peak_rss=max(peaks, default=0),
        peak_rss_per_task=list(peaks),
        resent=counts["resent"],
    )
