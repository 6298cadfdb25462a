"""The engine's half of a post-mortem: the report of every memory breach, and of a
reused worker suspected of leaking.

The engine gathers the facts on its thread as the task ends (``Facts``: the verdict,
the memory timeline, the heap sections the child sent, the memray capture's path); the
report is built, written and handed to ``on_report`` on the reports thread (``build``,
``leak_report``), because reading a capture, three fsyncs and the user's hook take tens
to hundreds of milliseconds that no other child's I/O or deadline may wait for. A
failure in any of them never hides the breach.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from typing import Any, NamedTuple

from .._errors import LeakWarning, MemoryLimitExceeded
from .._model.options import DEFAULT_REPORT_DIR
from .._model.values import Limits, Reporting
from . import native as _native

_log = logging.getLogger("isolator")

_WHY_NO_HEAP = {
    "hard": "the supervisor killed the process tree at the cap (SIGKILL), so the child "
            "could not walk its heap; the soft limit was crossed inside one native call "
            "or too fast to report",
    "kernel-oom": "the kernel's OOM killer ended the child (SIGKILL) at its cgroup limit",
    "rlimit": "the child's allocation was refused by RLIMIT_DATA",
}


class Facts(NamedTuple):
    """What the engine knew about a breached task when it ended."""

    function: str
    started_at: float
    wall_time: float
    limits: Limits
    reporting: Reporting
    heap: dict[str, Any] | None
    capture: str | None  # the task's memray capture, complete now
    native_missing: str | None  # why the deep level has no capture
    soft_signalled: bool


def build(exc: MemoryLimitExceeded, facts: Facts) -> Any:
    """Build the report of one breach, attach it to ``exc``, write it, hand it on."""
    from ..reports import Report

    native = _native.sites(facts.capture) if facts.capture is not None else None
    report = Report.from_exception(exc, function=facts.function, started_at=facts.started_at,
                                   wall_time=facts.wall_time,
                                   soft_limit=facts.limits.soft_mem)
    if facts.heap is not None:
        report.sections["heap"] = facts.heap
        report.missing.update(facts.heap.get("missing", {}))
    elif facts.soft_signalled and exc.kind in ("hard", "kernel-oom"):
        report.missing.setdefault(
            "heap", "the child passed its soft limit and was told to report, but the tree "
                    "reached the hard cap before the report was sent (killed while it "
                    "walked its heap, or still growing): leave more room below max_mem "
                    "with a lower soft_mem")
    else:
        report.missing.setdefault(
            "heap", "no heap walk was asked for (forensics='off')"
            if facts.reporting.forensics == "off"
            else _WHY_NO_HEAP.get(exc.kind, "the child sent no heap forensics"))
    if native is not None and "error" not in native:
        report.sections["native"] = native
    elif facts.reporting.forensics == "deep":
        report.missing["native"] = (native or {}).get("error") or facts.native_missing or \
            "the child left no memray capture"
    exc.report = report
    deliver(report, facts.reporting)
    if report.path and exc.args:
        # Where a user first looks, a log line or a traceback: the report is named there.
        exc.args = (f"{exc.args[0]}; report: {report.path}/report.html", *exc.args[1:])
    return report


def leak_report(pid: int | None, function: str, history: list[int],
                heap: dict[str, Any] | None, limits: Limits, reporting: Reporting) -> Any:
    """Make, deliver and announce the report of a suspected leak."""
    from ..reports import Report

    report = Report(
        function=function, kind="leak-suspected", limit=limits.max_mem or 0,
        peak=max(history), pid=pid, started_at=time.time(), wall_time=0.0,
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
    deliver(report, reporting)
    grown = history[-1] - history[0]
    warnings.warn(LeakWarning(
        f"isolator: a reused worker running {function} grew by {grown >> 20} MiB over "
        f"{len(history) - 1} tasks; report: {report.path or '(in memory)'}"
    ), stacklevel=2)
    return report


def deliver(report: Any, reporting: Reporting) -> None:
    """Write the report where ``reporting`` says and hand it to ``on_report``."""
    _write(report, reporting)
    if reporting.on_report is not None:
        try:
            reporting.on_report(report)
        except Exception:  # noqa: BLE001 - the user's hook must not hide the breach
            _log.exception("isolator: the on_report hook failed")


def _write(report: Any, reporting: Reporting) -> None:
    directory = reporting.report_dir
    if directory is None:
        return
    if directory is DEFAULT_REPORT_DIR:
        from ..reports import default_report_dir

        directory = default_report_dir()
    try:
        report.write(os.fspath(str(directory)))
    except OSError as exc:
        report.missing["files"] = f"the report could not be written to {directory}: {exc}"
        _log.warning("isolator: could not write a report to %s: %s", directory, exc)
        return
    keep = reporting.report_keep
    if keep is not None:
        from ..reports import prune

        try:
            prune(os.fspath(str(directory)), keep.newest, keep.age, spare=report.path)
        except OSError as exc:  # retention must never cost the breach its report
            _log.warning("isolator: could not prune the reports in %s: %s", directory, exc)
