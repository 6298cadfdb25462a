"""``@pytest.mark.isolated_leaks(limit="10MB")``: a test that must not leave memory behind.

The child runs the test once to warm up (first-call caches, lazy imports, the allocator's
arenas: a first call of a test that leaks nothing still leaves 1-3 MiB behind), then
``runs`` more times with the same fixture values. Before the first measured run and after
each one it runs ``gc.collect()`` and ``malloc_trim(0)`` and reads its RSS (RssAnon +
RssShmem, what the cap counts), so what is measured is what stayed: the growth per run is
the last reading less the first, over ``runs``. Tests that allocate and free tens of MiB
a run read 0 KiB of growth this way; one that keeps 1 MiB a run reads 1028 KiB a run.
Past ``limit``, the child walks its heap against a baseline taken after the warm-up (what
grew, by type, and who holds it) and the test fails with that report.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .child import LeakSpec

if TYPE_CHECKING:
    from ..reports import Report


class LeakFound(AssertionError):
    """The test left more than its limit behind per run; raised in the child."""

    def __init__(self, growth: int, spec: LeakSpec, readings: list[int], elapsed: float,
                 heap: dict[str, Any] | None, pid: int) -> None:
        super().__init__(growth, spec, readings, elapsed, heap, pid)
        self.growth, self.spec, self.readings = growth, spec, readings
        self.elapsed, self.heap, self.pid = elapsed, heap, pid

    def __reduce__(self) -> tuple[Any, ...]:
        return (LeakFound, self.args)

    def __str__(self) -> str:
        from .. import format_size

        return (f"the test left {format_size(self.growth)} behind per run over "
                f"{self.spec.runs} runs after a warm-up run; the limit is "
                f"{format_size(self.spec.limit)}")


def _settled_rss() -> int:
    gc.collect()
    _malloc_trim()  # freed heap pages go back to the OS: only what is still held counts
    with open("/proc/self/status", "rb") as fh:
        status = fh.read()
    fields = dict(line.split(b":", 1) for line in status.splitlines() if b":" in line)
    # RssAnon + RssShmem, in kB: the metric isolator caps (file pages are page cache).
    return sum(int(fields.get(name, b"0 kB").split()[0]) for name in (b"RssAnon", b"RssShmem")) \
        * 1024


def _malloc_trim() -> None:
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc: what is freed may stay mapped
        pass


def check(fn: Callable[..., Any], kwargs: dict[str, Any], spec: LeakSpec) -> None:
    """In the child: run the test ``1 + spec.runs`` times; LeakFound when it grows."""
    import os

    from .. import forensics

    started = time.monotonic()
    fn(**kwargs)
    # The zygote froze its objects so that our collections would not touch (and copy)
    # them; the heap walk must see them, and copying them now, before the first
    # reading, keeps that copy out of the growth.
    gc.unfreeze()
    readings = [_settled_rss()]
    baseline = forensics.take_baseline() if spec.forensics != "off" else None
    for _ in range(spec.runs):
        fn(**kwargs)
        readings.append(_settled_rss())
    growth = (readings[-1] - readings[0]) // spec.runs
    if growth <= spec.limit:
        return
    heap = None
    if baseline is not None:
        heap = forensics.collect(level=spec.forensics, frame=None, baseline=baseline)
    raise LeakFound(growth, spec, readings, time.monotonic() - started, heap, os.getpid())


def report_of(leak: LeakFound, function: str, cap: int | None) -> Report:
    """In the pytest process: the report of a leak, of the same shape as a breach's."""
    from ..reports import Report

    report = Report(
        function=function, kind="leak-suspected", limit=cap or 0, peak=max(leak.readings),
        pid=leak.pid, started_at=time.time() - leak.elapsed, wall_time=leak.elapsed,
        timeline=[(float(i), rss) for i, rss in enumerate(leak.readings)], traceback=None,
        exitcode=None, signal=None, missing={
            "traceback": "nothing failed: the test was run again and again, and measured",
            "timeline": "one point per run of the test, after the warm-up run: the child's "
                        "RSS after gc.collect() and malloc_trim(0)",
        },
    )
    if leak.heap is not None:
        report.sections["heap"] = leak.heap
        report.missing.update(leak.heap.get("missing", {}))
    else:
        report.missing["heap"] = "forensics='off': the heap was not walked"
    return report
