"""The engine's deadlines: handshakes, timeouts, kill grace periods, retry waits.

Only the engine thread touches them, so there is no lock. A deadline that is no longer
needed (a task finished well before its timeout, as nearly all do) is cancelled, and
cancelled entries are pruned from the heap once they outnumber the live ones: the heap
stays within a small multiple of the deadlines that can still fire, however many tasks
ran with ``timeout=600``.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable

#: Below this many cancelled entries the heap is left alone: rebuilding it costs more
#: than the few bytes they hold.
PRUNE_FLOOR = 64


class Timer:
    """One deadline; ``Timers.cancel`` it when it is no longer wanted."""

    __slots__ = ("action", "order", "when")

    def __init__(self, when: float, order: int, action: Callable[[], None]) -> None:
        self.when, self.order = when, order
        self.action: Callable[[], None] | None = action

    def __lt__(self, other: Timer) -> bool:
        return (self.when, self.order) < (other.when, other.order)


class Timers:
    """A heap of deadlines with cancellation, for one thread."""

    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._order = itertools.count()
        self._cancelled = 0

    def __len__(self) -> int:
        """How many deadlines can still fire."""
        return len(self._heap) - self._cancelled

    @property
    def size(self) -> int:
        """Entries held, cancelled ones included (what pruning bounds)."""
        return len(self._heap)

    def at(self, when: float, action: Callable[[], None]) -> Timer:
        """Run ``action`` at ``when`` (``time.monotonic()`` seconds), unless cancelled."""
        timer = Timer(when, next(self._order), action)
        heapq.heappush(self._heap, timer)
        return timer

    def cancel(self, timer: Timer | None) -> None:
        """Forget ``timer`` (None, or one that already fired, is fine)."""
        if timer is None or timer.action is None:
            return
        timer.action = None
        self._cancelled += 1
        if self._cancelled > PRUNE_FLOOR and 2 * self._cancelled > len(self._heap):
            self._heap = [t for t in self._heap if t.action is not None]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def sleep_for(self) -> float | None:
        """Seconds to the earliest live deadline (0 when one is due), None when none."""
        heap = self._heap
        while heap and heap[0].action is None:
            heapq.heappop(heap)
            self._cancelled -= 1
        if not heap:
            return None
        return max(0.0, heap[0].when - time.monotonic())

    def due(self) -> list[Callable[[], None]]:
        """The actions of every deadline that has passed, removed from the heap, in order."""
        now = time.monotonic()
        heap, actions = self._heap, []
        while heap and heap[0].when <= now:
            timer = heapq.heappop(heap)
            if timer.action is None:
                self._cancelled -= 1
                continue
            actions.append(timer.action)
            timer.action = None
        return actions
