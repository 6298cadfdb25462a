"""A task child's heap forensics on a memory error: what held the memory and why.

The zygote counts its own heap once (``take_baseline``) before it forks; a child that
breaches its cap walks its heap against that count, within the headroom left below the
hard cap and a time budget, and sends the result with its exception.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

from .._wire.procfs import self_rss

if TYPE_CHECKING:
    from .._wire.spec import ChildSpec

HEAPY_HEADROOM = 256 << 20  # what heapy's partition may need below the hard cap

#: The zygote's heap, counted by the zygote before it forked us (see ``take_baseline``):
#: the task's own heap is this plus what the task made, so growth is measured from here
#: without a per-task count.
baseline: Any = None


def take_baseline() -> None:
    """Called in the zygote: count its heap once, for every child it forks next."""
    global baseline
    # Imported now, what formatting the breach's traceback needs (3.11's traceback
    # imports ast for its carets) is not counted as the task's growth.
    import ast  # noqa: F401
    import traceback  # noqa: F401

    from .. import forensics

    gc.unfreeze()  # frozen objects are invisible to gc.get_objects(); we re-freeze at fork
    baseline = forensics.take_baseline()


def heap_forensics(exc: BaseException, spec: ChildSpec,
                   task_started: float) -> dict[str, Any] | None:
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
    level, skipped = spec.forensics, None
    headroom = (spec.limit or 0) - self_rss()
    if level == "deep" and headroom < HEAPY_HEADROOM:
        # heapy's partition can take ~200 MiB; past the hard cap we would lose it all.
        level = "default"
        skipped = (f"heapy's partition needs about {HEAPY_HEADROOM >> 20} MiB of headroom "
                   f"below the cap and {max(headroom, 0) >> 20} MiB was left: lower soft_mem")
    result = forensics.collect(level=level, frame=tb.tb_frame if tb else None,
                               baseline=baseline, time_budget=spec.forensics_budget)
    if skipped:
        result.setdefault("missing", {})["heapy"] = skipped
    return result

