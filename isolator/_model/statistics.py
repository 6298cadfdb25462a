"""A pool's counters: running aggregates, and the ``Statistics`` snapshot of them.

Nothing here grows with the number of tasks: per-task memory is kept as its maximum,
its sum and a window of the most recent peaks, so a pool that runs for weeks holds the
same few hundred bytes of counters as one that ran a minute.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import NamedTuple

from .._errors import MemoryLimitExceeded

RECENT = 1000  # per-task peaks kept, the most recent


class RunningChild(NamedTuple):
    """A child running one of the pool's units now, as a live view shows it."""

    pid: int
    rss: int  # bytes, its tree's latest sample
    limit: int | None  # its cap in bytes, if any
    function: str  # module.qualname of the unit's function


@dataclass(frozen=True)
class Statistics:
    """A snapshot of a pool's counters (see ``IsolatedExecutor.statistics``).

    ``peak_rss`` is the highest peak of any unit, ``mean_peak_rss`` the mean over every
    unit that ended, and ``peak_rss_per_task`` the peaks of the most recent units (at
    most 1,000, oldest first). ``children`` are the children running units right now.
    """

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
    mean_peak_rss: int = 0
    children: tuple[RunningChild, ...] = field(default=(), repr=False)


def failure_kind(exc: BaseException) -> str:
    """How a unit failed, for statistics: the memory layer or the exception's type name."""
    if isinstance(exc, MemoryLimitExceeded):
        return f"memory:{exc.kind}"
    return type(exc).__name__


class Tally:
    """What a pool has done so far, kept by the engine thread."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.failed_by_kind: Counter[str] = Counter()
        self.peak_admitted = 0
        self.peak_rss = 0
        self._peak_sum = 0
        self._peaks_counted = 0
        self.recent: deque[int] = deque(maxlen=RECENT)

    def outcome(self, exc: BaseException | None) -> None:
        if exc is None:
            self.counts["completed"] += 1
        else:
            self.counts["failed"] += 1
            self.failed_by_kind[failure_kind(exc)] += 1

    def peak(self, rss: int) -> None:
        self.peak_rss = max(self.peak_rss, rss)
        self._peak_sum += rss
        self._peaks_counted += 1
        self.recent.append(rss)

    def snapshot(self, running: int, pending: int,
                 children: tuple[RunningChild, ...] = ()) -> Statistics:
        counts = self.counts
        return Statistics(
            submitted=counts["submitted"], running=running, pending=pending,
            completed=counts["completed"], failed=counts["failed"],
            failed_by_kind=dict(self.failed_by_kind), cancelled=counts["cancelled"],
            retried=counts["retried"], recycled=counts["recycled"],
            leaks_suspected=counts["leaks_suspected"], peak_admitted=self.peak_admitted,
            peak_rss=self.peak_rss, peak_rss_per_task=list(self.recent),
            resent=counts["resent"],
            mean_peak_rss=self._peak_sum // self._peaks_counted if self._peaks_counted else 0,
            children=children,
        )
