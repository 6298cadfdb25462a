"""What the engine tells a child before its task, and the signal of a soft breach.

Both sides need these: the engine builds a ``ChildSpec`` and the warden's sampler sends
``BREACH_SIGNAL``; the child reads the spec and raises ``MemoryLimitExceeded`` from its
handler of that signal; the zygote tells the warden of each capped child in a
``CHILD_NOTICE``. They live here so that no side imports another.
"""

from __future__ import annotations

import signal
import struct
from typing import NamedTuple

#: Sent by the sampler when a task's tree crosses its soft limit: a real-time signal, so
#: it is never merged with or mistaken for one the user's code uses.
BREACH_SIGNAL = signal.SIGRTMIN + 3 if hasattr(signal, "SIGRTMIN") else signal.SIGUSR2


#: What the zygote tells the warden of a capped child it forks: pid, cap, soft limit (0:
#: none) and base RSS. Packed, not pickled: the warden unpickles nothing that comes
#: from the zygote's side.
CHILD_NOTICE = struct.Struct("<iQQQ")


class ChildSpec(NamedTuple):
    """Everything a child needs to know before it reads its task."""

    limit: int | None
    rlimit_data: int | None
    cgroup_procs: str | None
    cwd: str
    reuse: bool = False  # serve task after task until told to stop (a pool's reused worker)
    forensics: str = "off"  # what to record about the heap on a memory error
    forensics_budget: float | None = None  # seconds the heap walk may take; None: scaled
    soft: int | None = None  # the soft limit (the zygote tells the warden, with ``limit``)
