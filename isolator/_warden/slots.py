"""The page of watch slots that the warden and the engine share, so that a task's
outcome costs no message between them.

One fixed-size slot per watched child, in two halves, each written by one side only:

- the warden's half: the watch's peak, its latest sample and its two flags (soft signal
  sent, killed at the cap), written after every round of samples, for the generation
  (the task) it was sampling. A sequence number, odd while the warden writes, lets the
  engine see a half read in the middle of a write and read it again;
- the engine's half: the generation of the task the child runs now, with that task's
  cap and soft limit (a reused worker's next task: the warden resets the watch when it
  sees a new generation, at its next round), and the generation whose outcome has
  arrived (no second soft signal for it).

A message per task each way cost a reused worker about half its tasks per second.

The last slot is the warden's heartbeat instead: the monotonic time of its latest round,
which the engine checks while it has children, so that a warden that stopped sampling
(a task sent it SIGSTOP: it runs as the same user) is seen and replaced.
"""

from __future__ import annotations

import mmap
import os
import struct
import time

SEQUENCE = struct.Struct("<I")
WARDEN = struct.Struct("<IIIIQQ")  # sequence, generation, flags, (unused), peak, last
BODY = struct.Struct("<IIIQQ")  # the warden's half after its sequence
ENGINE = struct.Struct("<IIQQ")  # generation, settled generation, cap, soft limit
ENGINE_AT = WARDEN.size
SLOT = 64
COUNT = 4096  # the last one is the heartbeat's: COUNT - 1 watches at once
SIZE = SLOT * COUNT
HEARTBEAT_AT = (COUNT - 1) * SLOT
_NS = struct.Struct("<Q")
SOFT_SENT, KILLED = 1, 2
_MASK = 0xFFFFFFFF


def create() -> int:
    """A memory file for the slots, zeroed (the engine creates it; the warden maps it)."""
    fd = os.memfd_create("isolator-watches", os.MFD_CLOEXEC)
    os.ftruncate(fd, SIZE)
    return fd


class Slots:
    """The mapped slots of one warden."""

    def __init__(self, fd: int) -> None:
        self._map = mmap.mmap(fd, SIZE)
        os.close(fd)

    # -- the warden's side ----------------------------------------------------------------

    def write(self, slot: int, generation: int, peak: int, last: int, soft_sent: bool,
              killed: bool) -> None:
        at = slot * SLOT
        sequence = SEQUENCE.unpack_from(self._map, at)[0]
        flags = (SOFT_SENT if soft_sent else 0) | (KILLED if killed else 0)
        SEQUENCE.pack_into(self._map, at, (sequence + 1) & _MASK)  # odd: being written
        BODY.pack_into(self._map, at + SEQUENCE.size, generation & _MASK, flags, 0, peak, last)
        SEQUENCE.pack_into(self._map, at, (sequence + 2) & _MASK)

    def beat(self) -> None:
        """A round was taken now."""
        _NS.pack_into(self._map, HEARTBEAT_AT, time.monotonic_ns())

    def orders(self, slot: int) -> tuple[int, int, int | None, int | None]:
        """The engine's half: ``(generation, settled generation, cap, soft limit)``."""
        generation, settled, cap, soft = ENGINE.unpack_from(self._map, slot * SLOT + ENGINE_AT)
        return generation, settled, cap or None, soft or None

    # -- the engine's side ----------------------------------------------------------------

    def read(self, slot: int, generation: int) -> tuple[int, int, bool, bool] | None:
        """``(peak, last, soft_sent, killed)`` as written for ``generation``, or None if
        the warden has not written this generation yet (or was writing, every time)."""
        at = slot * SLOT
        for _ in range(100):
            first, gen, flags, _, peak, last = WARDEN.unpack_from(self._map, at)
            if first & 1 or SEQUENCE.unpack_from(self._map, at)[0] != first:
                continue  # read while the warden wrote it: again
            if gen != generation & _MASK:
                return None
            return peak, last, bool(flags & SOFT_SENT), bool(flags & KILLED)
        return None

    def last_beat(self) -> float:
        """When the warden's latest round was taken (``time.monotonic`` seconds; 0.0
        before its first)."""
        nanoseconds: int = _NS.unpack_from(self._map, HEARTBEAT_AT)[0]
        return nanoseconds / 1e9

    def start(self, slot: int, generation: int, cap: int | None, soft: int | None) -> None:
        """The child's next task: its generation and limits (the limits first, so the
        warden never sees the new generation with the old limits)."""
        at = slot * SLOT + ENGINE_AT
        struct.pack_into("<QQ", self._map, at + 8, cap or 0, soft or 0)
        struct.pack_into("<I", self._map, at, generation & _MASK)

    def settle(self, slot: int, generation: int) -> None:
        struct.pack_into("<I", self._map, slot * SLOT + ENGINE_AT + 4, generation & _MASK)

    def close(self) -> None:
        self._map.close()
