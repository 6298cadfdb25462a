"""The plain-text report (``str(report)``, report.txt): readable in a terminal or a log.

Verdict first, because most readers stop there; then the shape of memory over time;
then what the report could not include, and why. The helpers here are shared with the
HTML page so both say the same thing.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from .._units import format_size
from . import _graph
from ._deep import heapy_text_lines, native_text_lines
from ._heap import text_lines as heap_text_lines

if TYPE_CHECKING:
    from ._model import Report

BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 60
TABLE_ROWS = 10
WHERE_LINES = 6
# isolator's packages that run inside the child around the user's code.
CHILD_PACKAGES = ("_child", "_wire")

KIND_MEANING = {
    "soft": "the child passed its soft limit and was interrupted where it stood",
    "hard": "the supervisor killed the process tree at the cap",
    "kernel-oom": "the kernel's cgroup OOM killer ended the process tree",
    "rlimit": "an allocation was refused by RLIMIT_DATA and the child crashed",
    "leak-suspected": "a reused worker's memory kept growing from task to task; nothing "
                      "failed yet, the worker was examined where it stood",
}


def headline(report: Report) -> str:
    if report.kind == "leak-suspected":
        return f"{report.function} is suspected of leaking memory"
    return f"{report.function} exceeded its memory cap"


def cap_text(report: Report) -> str:
    return format_size(report.limit) if report.limit > 0 else "none"


def per_task(report: Report) -> bool:
    """A leak-suspected report's timeline has one point per task, not per time."""
    return report.kind == "leak-suspected"


def overshoot_text(report: Report) -> str:
    if report.limit <= 0:
        return "no cap was set"
    over = report.overshoot
    if over < 0 and per_task(report):
        return f"{format_size(-over)} below the cap (nothing was stopped)"
    if over < 0:
        return f"{format_size(-over)} below the cap: stopped before reaching it"
    share = f", {100 * report.peak / report.limit:.1f}% of the cap" if report.limit else ""
    return f"{format_size(over)} over the cap{share}"


def wall_text(report: Report, started: str) -> str:
    if per_task(report):
        return f"not measured: the worker was examined between tasks ({started})"
    return f"{report.wall_time:.2f} s (started {started})"


def exit_text(report: Report) -> str:
    if report.signal:
        return f"killed by {report.signal}"
    if report.exitcode is not None:
        return f"exit code {report.exitcode}"
    return "not recorded (the outcome was known before the child was reaped)"


def where_lines(traceback: str | None) -> list[str]:
    """Where the task was when it was stopped: its innermost frame, then the exception.

    The soft limit raises from isolator's signal handler in the child, so the innermost
    frame is usually isolator's own; the frame that matters is the last one before it.
    """
    if not traceback:
        return []
    lines = [line for line in traceback.rstrip().splitlines() if line.strip(" ^~")]
    frames = [i for i, line in enumerate(lines) if line.lstrip().startswith('File "')]
    if not frames:
        return lines[-3:]
    user = [i for i in frames if not _engine_frame(lines[i])] or frames
    start = user[-1]
    end = next((i for i in frames if i > start), len(lines))
    body = lines[start:min(end, start + WHERE_LINES - 1)]
    return [*body, lines[-1]] if lines[-1] not in body else body


def _engine_frame(line: str) -> bool:
    path = line.strip().split('"')[1] if line.count('"') >= 2 else ""
    return any(f"{os.sep}isolator{os.sep}{name}{os.sep}" in path for name in CHILD_PACKAGES)


def sample_rows(report: Report) -> list[tuple[float, int, bool]]:
    """About ``TABLE_ROWS`` evenly spaced samples, always with the highest: (t, bytes, is_max).

    The highest *sample* can sit below the verdict's peak: the peak also counts readings
    taken between recorded samples, so the table labels it "max", not "peak".
    """
    points = report.timeline
    if not points:
        return []
    peak_at = max(range(len(points)), key=lambda i: points[i][1])
    picks = {round(i * (len(points) - 1) / (TABLE_ROWS - 1)) for i in range(TABLE_ROWS)}
    picks.add(peak_at)
    return [(points[i][0], points[i][1], i == peak_at) for i in sorted(picks)]


def sparkline(points: list[tuple[float, int]], width: int = SPARK_WIDTH) -> str:
    """Memory over time in block characters; each cell shows the highest sample in it."""
    if not points:
        return ""
    values = [b for _, b in points]
    if len(points) > width:
        start, span = points[0][0], (points[-1][0] - points[0][0]) or 1.0
        cells: list[int | None] = [None] * width
        for t, b in points:
            i = min(width - 1, int((t - start) / span * width))
            current = cells[i]
            cells[i] = b if current is None else max(current, b)
        # A cell with no sample holds the level before it: memory did not vanish.
        values, last = [], points[0][1]
        for cell in cells:
            last = last if cell is None else cell
            values.append(last)
    low, high = min(values), max(values)
    if high == low:
        return BLOCKS[3] * len(values)
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[round((v - low) / (high - low) * top)] for v in values)


def render(report: Report) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.started_at))
    soft = f"  (soft limit {format_size(report.soft_limit)})" if report.soft_limit else ""
    out = [
        f"isolator report: {headline(report)}",
        f"  kind       {report.kind}: {KIND_MEANING.get(report.kind, 'unknown kind')}",
        f"  cap        {cap_text(report)}{soft}",
        f"  peak       {format_size(report.peak)}  ({overshoot_text(report)})",
        f"  wall time  {wall_text(report, started)}",
        f"  process    pid {report.pid if report.pid is not None else '?'}, {exit_text(report)}",
    ]
    worker = report.sections.get("worker")
    if isinstance(worker, dict):  # the task ran on a Dask worker, not beside the caller
        out.append(f"  worker     {worker.get('address')} (host {worker.get('host')}, "
                   f"pid {worker.get('pid')})")
    where = where_lines(report.traceback)
    if where:
        out.append("  where      " + where[0].strip())
        out.extend("             " + line for line in where[1:])
    heap = report.sections.get("heap")
    if isinstance(heap, dict):
        out.extend(heap_text_lines(heap))
        out.extend(_graph.text_lines(report.sections))
        out.extend(heapy_text_lines(heap))
    native = report.sections.get("native")
    if isinstance(native, dict):
        out.extend(native_text_lines(native))
    out.append("")
    out.extend(_timeline_lines(report))
    out.append("")
    out.append("missing parts")
    if report.missing:
        out.extend(f"  {name}: {why}" for name, why in sorted(report.missing.items()))
    else:
        out.append("  (none)")
    return "\n".join(out) + "\n"


def _timeline_lines(report: Report) -> list[str]:
    points = report.timeline
    if not points:
        return ["memory timeline: missing (see below)"]
    values = [b for _, b in points]
    if per_task(report):
        span = (f"memory after each task, tidied (tasks {points[0][0]:.0f} to "
                f"{points[-1][0]:.0f}; 0 is the fresh worker)")
    else:
        span = (f"memory timeline ({points[0][0]:.2f} s to {points[-1][0]:.2f} s, "
                f"{len(points)} samples)")
    out = [
        span,
        "  " + sparkline(points),
        (f"  min {format_size(min(values))}   max {format_size(max(values))}   "
         f"cap {cap_text(report)}"),
        "",
        f"  {'task' if per_task(report) else 't (s)':>9}  {'memory':>11}  {'of cap':>6}",
    ]
    for t, b, is_peak in sample_rows(report):
        share = f"{100 * b / report.limit:5.0f}%" if report.limit else "     -"
        when = f"{t:9.0f}" if per_task(report) else f"{t:9.3f}"
        out.append(f"  {when}  {format_size(b):>11}  {share}{'  <- max' if is_peak else ''}")
    return out
