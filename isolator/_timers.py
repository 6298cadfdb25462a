"""The supervisor loop's deadlines: handshakes, timeouts, kill grace periods.

A heap of (when, task id, what, job) shared by the loop thread, which sleeps in
``select()`` until the earliest, and any thread that adds one: ``add`` says whether the
loop must be woken (only when it would otherwise sleep past the new deadline).
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time


class Timers:
    """Deadlines keyed by task and job: a reused worker's old timeout must not hit its
    next task, so each carries the job it was set for."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, str, int]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._wake_at = math.inf  # when the loop's current select() returns at the latest

    def add(self, when: float, task_id: int, what: str, job: int) -> bool:
        """Add a deadline (any thread); True when the sleeping loop must be woken for it."""
        with self._lock:
            heapq.heappush(self._heap, (when, next(self._order), task_id, what, job))
            return when < self._wake_at

    def sleep_for(self) -> float | None:
        """In the loop, before it sleeps: seconds to the earliest deadline, or None."""
        with self._lock:
            if not self._heap:
                self._wake_at = math.inf
                return None
            self._wake_at = self._heap[0][0]
            return max(0.0, self._wake_at - time.monotonic())

    def due(self) -> list[tuple[int, str, int]]:
        """In the loop: (task id, what, job) of every deadline that has passed, removed."""
        now = time.monotonic()
        passed = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                _, _, task_id, what, job = heapq.heappop(self._heap)
                passed.append((task_id, what, job))
        return passed
