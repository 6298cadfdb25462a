"""Leak suspicion before any breach: a reused worker whose RSS, measured idle and tidied
after each task, keeps rising over its fresh baseline.

When it is suspected, the worker is asked (as one more task) to walk its heap against
the baseline it started from, and a report of the same shape as a breach's is made:
what grew and who keeps it alive. Once per worker; the recycle policy then decides.
"""

from __future__ import annotations

import itertools
import time
import warnings
from typing import Any

from ._errors import LeakWarning
from ._options import Limits
from ._postmortem import deliver
from ._task import Task

KEPT = 64  # IDLE readings kept per worker, besides its baseline
RISES = 3  # consecutive idle readings that went up
FLOOR = 16 << 20  # and at least this much growth over the fresh baseline


class LeakWatch:
    """Per-worker idle RSS histories; says when a worker looks like it leaks."""

    def __init__(self) -> None:
        self._history: dict[int, list[int]] = {}
        self._reported: set[int] = set()

    def suspect(self, worker: Task, rss: int, cap: int | None) -> list[int] | None:
        """The history that makes ``worker`` a suspect now, or None."""
        if worker.tasks_done == 0:  # a replacement started idle: no task has run yet
            return None
        history = self._history.setdefault(worker.id, [worker.baseline_rss])
        history.append(rss)
        if len(history) > 2 * KEPT:  # a long-lived worker: its baseline and recent past
            del history[1:-KEPT]
        if rss <= history[-2] or worker.id in self._reported or len(history) <= RISES:
            return None  # (the first test is all most tasks need: no rise, no suspect)
        recent = history[-RISES - 1:]
        rising = all(b > a for a, b in itertools.pairwise(recent))
        if rising and rss - worker.baseline_rss > max(FLOOR, (cap or 0) // 10):
            self._reported.add(worker.id)
            return list(history)
        return None

    def forget(self, worker: Task) -> None:
        self._history.pop(worker.id, None)
        self._reported.discard(worker.id)


def leak_report(worker: Task, function: str, history: list[int], heap: dict[str, Any] | None,
                limits: Limits) -> Any:
    """Make, deliver and announce the report of a suspected leak."""
    from .reports import Report

    report = Report(
        function=function, kind="leak-suspected", limit=limits.max_mem or 0,
        peak=max(history), pid=worker.pid, started_at=time.time(), wall_time=0.0,
        timeline=[(float(i), rss) for i, rss in enumerate(history)], traceback=None,
        exitcode=None, signal=None, missing={
            "traceback": "nothing failed: the worker was examined between tasks",
            "timeline": "one point per task: the worker's RSS after it, tidied",
        },
        soft_limit=limits.soft_mem,
    )
    if heap is not None:
        report.sections["heap"] = heap
    else:
        report.missing["heap"] = "the worker could not walk its heap (it died or failed)"
    deliver(report, limits)
    grown = history[-1] - history[0]
    warnings.warn(LeakWarning(
        f"isolator: a reused worker running {function} grew by {grown >> 20} MiB over "
        f"{len(history) - 1} tasks; report: {report.path or '(in memory)'}"
    ), stacklevel=2)
    return report
