"""The supervisor's half of a post-mortem: the report for every memory breach.

The supervisor builds the report after any ending, SIGKILL included: the verdict and the
memory timeline are its own facts; the heap sections come from the child when it could
still send them, and are otherwise named as missing with the reason. Writing and the
user's ``on_report`` hook run here too, and a failure in either never hides the breach.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ._errors import MemoryLimitExceeded
from ._options import DEFAULT_REPORT_DIR, Limits

_log = logging.getLogger("isolator")

_WHY_NO_HEAP = {
    "hard": "the supervisor killed the process tree at the cap (SIGKILL), so the child "
            "could not walk its heap; the soft limit was crossed inside one native call "
            "or too fast to report",
    "kernel-oom": "the kernel's OOM killer ended the child (SIGKILL) at its cgroup limit",
    "rlimit": "the child's allocation was refused by RLIMIT_DATA",
}


def report_for(exc: MemoryLimitExceeded, *, function: str, started_at: float,
               wall_time: float, limits: Limits, heap: dict[str, Any] | None,
               native: dict[str, Any] | None = None,
               native_missing: str | None = None, soft_signalled: bool = False) -> Any:
    """Build the report of one breach, write it and hand it to ``on_report``."""
    from .reports import Report

    report = Report.from_exception(exc, function=function, started_at=started_at,
                                   wall_time=wall_time, soft_limit=limits.soft_mem)
    if heap is not None:
        report.sections["heap"] = heap
        report.missing.update(heap.get("missing", {}))
    elif soft_signalled and exc.kind in ("hard", "kernel-oom"):
        report.missing.setdefault(
            "heap", "the child passed its soft limit and was told to report, but the tree "
                    "reached the hard cap before the report was sent (killed while it "
                    "walked its heap, or still growing): leave more room below max_mem "
                    "with a lower soft_mem")
    else:
        report.missing.setdefault(
            "heap", _WHY_NO_HEAP.get(exc.kind, "the child sent no heap forensics"))
    if native is not None and "error" not in native:
        report.sections["native"] = native
    elif limits.forensics == "deep":
        report.missing["native"] = (native or {}).get("error") or native_missing or \
            "the child left no memray capture"
    deliver(report, limits)
    return report


def deliver(report: Any, limits: Limits) -> None:
    """Write the report where ``limits`` says and hand it to ``on_report``."""
    _write(report, limits)
    if limits.on_report is not None:
        try:
            limits.on_report(report)
        except Exception:  # noqa: BLE001 - the user's hook must not hide the breach
            _log.exception("isolator: the on_report hook failed")


def _write(report: Any, limits: Limits) -> None:
    if limits.report_dir is None:
        return
    directory = limits.report_dir
    if directory == DEFAULT_REPORT_DIR:
        from .reports import default_report_dir

        directory = default_report_dir()
    try:
        report.write(os.fspath(directory))
    except OSError as exc:
        report.missing["files"] = f"the report could not be written to {directory}: {exc}"
        _log.warning("isolator: could not write a report to %s: %s", directory, exc)
