"""Leak suspicion before any breach: a reused worker whose RSS, measured idle and tidied
after each task, keeps rising over its fresh baseline.

When it is suspected, the worker is asked (as one more task) to walk its heap against
the baseline it started from, and a report of the same shape as a breach's is made:
what grew and who keeps it alive. Once per worker; the recycle policy then decides.
"""

from __future__ import annotations

import itertools

KEPT = 64  # IDLE readings kept per worker, besides its baseline
RISES = 3  # consecutive idle readings that went up
FLOOR = 16 << 20  # and at least this much growth over the fresh baseline


class LeakWatch:
    """Per-worker idle RSS histories; says when a worker looks like it leaks."""

    def __init__(self) -> None:
        self._history: dict[int, list[int]] = {}
        self._reported: set[int] = set()

    def suspect(self, worker: int, tasks_done: int, baseline: int, rss: int,
                cap: int | None) -> list[int] | None:
        """The idle-RSS history (baseline first) that makes ``worker`` a suspect now, or
        None. ``tasks_done`` is how many tasks it has run; ``rss`` its RSS after the last."""
        if tasks_done == 0:  # a replacement started idle: no task has run yet
            return None
        history = self._history.setdefault(worker, [baseline])
        history.append(rss)
        if len(history) > 2 * KEPT:  # a long-lived worker: its baseline and recent past
            del history[1:-KEPT]
        if rss <= history[-2] or worker in self._reported or len(history) <= RISES:
            return None  # (the first test is all most tasks need: no rise, no suspect)
        recent = history[-RISES - 1:]
        rising = all(b > a for a, b in itertools.pairwise(recent))
        if rising and rss - baseline > max(FLOOR, (cap or 0) // 10):
            self._reported.add(worker)
            return list(history)
        return None

    def forget(self, worker: int) -> None:
        self._history.pop(worker, None)
        self._reported.discard(worker)
