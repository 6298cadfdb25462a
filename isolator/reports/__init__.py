"""Post-mortem reports of tasks that exceeded their memory cap.

::

    from isolator.reports import Report, load, default_report_dir

    report = Report.from_exception(exc, function="etl.parse", started_at=t0, wall_time=dt)
    print(report)                            # the text report
    path = report.write(default_report_dir())  # report.json, report.txt, report.html
    same = load(path)
    prune(default_report_dir(), count=1000, age=30 * 86400)  # what report_keep does

A report directory holds ``report.json`` (the data; schema ``isolator.report``, version
:data:`SCHEMA_VERSION`), ``report.txt`` (what ``str(report)`` prints) and
``report.html`` (self-contained, with a chart). The traceback is cut to its last
:data:`MAX_TRACEBACK_LINES` lines.
"""

from __future__ import annotations

from ._model import (
    MAX_TRACEBACK_LINES,
    SCHEMA,
    SCHEMA_VERSION,
    Report,
    ReportFormatError,
    load,
)
from ._retention import Pruned, prune
from ._store import default_report_dir

__all__ = [
    "MAX_TRACEBACK_LINES",
    "Pruned",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Report",
    "ReportFormatError",
    "default_report_dir",
    "load",
    "prune",
]
