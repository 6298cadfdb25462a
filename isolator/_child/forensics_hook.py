"""A task child's heap forensics on a memory error: what held the memory and why.

The zygote counts its own heap once (``take_baseline``) before it forks; a child that
breaches its cap walks its heap against that count, within the headroom left below the
hard cap and a time budget, and sends the result with its exception.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

from .._wire.procfs import RollupReader, self_rss

if TYPE_CHECKING:
    from .._wire.spec import ChildSpec

#: The zygote's heap, counted by the zygote before it forked us (see ``take_baseline``):
#: the task's own heap is this plus what the task made, so growth is measured from here
#: without a per-task count.
baseline: Any = None

#: Under ``RLIMIT_DATA``, the data segment a heap walk needs left at the least: listing the
#: objects of a small heap takes about 1 MiB, and the walk's own tables as much again.
RLIMIT_WALK_ROOM = 4 << 20


def take_baseline() -> None:
    """Called in the zygote: count its heap once, for every child it forks next."""
    global baseline
    # Imported now, what formatting the breach's traceback needs (3.11's traceback
    # imports ast for its carets) is not counted as the task's growth.
    import ast  # noqa: F401
    import traceback  # noqa: F401

    from .. import forensics

    gc.unfreeze()  # frozen objects are invisible to gc.get_objects(); we re-freeze at fork
    forensics.watch_registries()  # atexit callbacks and audit hooks, which 3.11 hides
    baseline = forensics.take_baseline()


def heap_forensics(exc: BaseException, spec: ChildSpec, task_started: float,
                   hello_rss: int = 0) -> dict[str, Any] | None:
    """What held the memory and who kept it alive, walked here, where only the child
    can: for memory errors, within the headroom below the hard cap and a time budget."""
    if spec.forensics == "off" or not isinstance(exc, MemoryError):
        return None
    from .. import forensics

    # What the zygote froze before forking us (module caches, classes) must be visible
    # to the heap walk: the chains that keep the task's data alive start there.
    gc.unfreeze()
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if baseline is not None:
        baseline.started = task_started
    # Past the hard cap the report is lost: the collectors fit their memory (heapy's
    # mode included) to the headroom left, and their time to the heap's size. Left as
    # the sampler counts it: our RSS beyond the zygote's pages (``hello_rss``), or our
    # private pages if they are more (copies of the zygote's that the task made).
    headroom = max(spec.limit - _counted(hello_rss), 0) if spec.limit else None
    if spec.rlimit_data is not None:  # the kernel refuses what passes the data segment's
        import resource

        left = max(resource.getrlimit(resource.RLIMIT_DATA)[0] - data_size(), 0)
        if left < RLIMIT_WALK_ROOM:  # even listing the heap's objects would be refused
            return None
        headroom = left if headroom is None else min(headroom, left)
    try:
        return forensics.collect(level=spec.forensics, frame=tb.tb_frame if tb else None,
                                 baseline=baseline, time_budget=spec.forensics_budget,
                                 headroom=headroom, traceback=exc.__traceback__)
    except MemoryError:  # refused under RLIMIT_DATA after all: the breach still goes out
        return None


def _counted(hello_rss: int) -> int:
    """What the warden's sampler counts of this process now (see ``_warden.sampling``)."""
    import os

    rss = self_rss()
    try:
        rollup = RollupReader(os.getpid())
    except OSError:
        return max(rss - hello_rss, 0)
    try:
        return max(rss - hello_rss, rollup.private())
    finally:
        rollup.close()


def data_size() -> int:
    """This process's data segment (``VmData``), which ``RLIMIT_DATA`` caps: every private
    writable mapping, the zygote's pages it shares included."""
    with open("/proc/self/status", "rb") as fh:
        for line in fh:
            if line.startswith(b"VmData:"):
                return int(line.split()[1]) * 1024
    return 0
