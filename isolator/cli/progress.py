"""What ``isolator map`` shows: a live view on a terminal, a summary at the end.

On a terminal (stderr): a rich progress bar with done, failed and retried counts,
throughput and ETA, and one line per running child with its memory against its cap. Not
on a terminal (CI logs, pipes): nothing while it runs. The summary comes last, as a few
plain lines, or as JSON on stdout with ``--json``, or not at all with ``--quiet``.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any

from .._units import format_size

SLOWEST = 5
SHOWN_REPORTS = 10  # a resumed batch may have thousands; the rows name them all


class BatchView:
    """Counts what finished and, on a terminal, draws it live."""

    def __init__(self, total: int, executor: Any, live: bool) -> None:
        self.total, self.executor = total, executor
        self.started = time.monotonic()
        self.ok = 0
        self.failed: Counter[str] = Counter()
        self.durations: list[tuple[float, int]] = []
        self._live: Any = None
        if live:
            self._start_live()

    def _start_live(self) -> None:
        from rich.console import Console, Group
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                                  TimeRemainingColumn())
        self._bar = self._progress.add_task("isolator map", total=self.total, rate="")
        self._group = Group
        self._live = Live(self._render(), console=Console(stderr=True), refresh_per_second=4,
                          get_renderable=self._render)
        self._live.start()

    def _render(self) -> Any:
        from rich.text import Text

        stats = self.executor.statistics()
        elapsed = max(time.monotonic() - self.started, 1e-9)
        done = self.ok + sum(self.failed.values())
        self._progress.update(self._bar, completed=done,
                              rate=f"ok {self.ok}  failed {sum(self.failed.values())}  "
                                   f"retried {stats.retried}  {done / elapsed:.1f}/s")
        lines = [Text(line) for line in self.worker_lines(stats)]
        return self._group(self._progress, *lines)

    def worker_lines(self, stats: Any = None) -> list[str]:
        """One line per child running a unit now (a reused worker's units sent ahead of
        it are not lines of their own): its pid, memory, cap and function."""
        stats = stats or self.executor.statistics()
        return [f"  pid {child.pid:>7}  {format_size(child.rss):>10}"
                f"{f' of {format_size(child.limit)}' if child.limit else ''}  {child.function}"
                for child in stats.children]

    def finished(self, index: int, row: dict[str, Any], seconds: float | None) -> None:
        """One input ended; ``seconds`` is how long it ran, None when unknown (a line
        that is not JSON never ran)."""
        if seconds is not None:
            self.durations.append((seconds if seconds > 0 else 0.0, index))
        error = row.get("error")
        if error is None:
            self.ok += 1
            return
        kind = error.get("kind")
        self.failed[f"{error['type']}:{kind}" if kind else str(error["type"])] += 1

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()

    def summary(self, skipped: int, out: str, totals: dict[str, Any]) -> dict[str, Any]:
        """The batch's summary: ``totals`` (ok, failed by kind, reports) count the whole
        journal, earlier runs of a resumed batch included; the rest is this run's."""
        stats = self.executor.statistics()
        slowest = sorted(self.durations, reverse=True)[:SLOWEST]
        return {
            "ok": totals["ok"], "failed": totals["failed"],
            "failed_by_kind": totals["failed_by_kind"], "retried": stats.retried,
            "already_done": skipped, "peak_rss": stats.peak_rss,
            "seconds": round(time.monotonic() - self.started, 3),
            "slowest": [{"index": i, "seconds": round(s, 3)} for s, i in slowest],
            "reports": totals["reports"], "out": out,
        }


def print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary))
        return
    out = sys.stderr
    print(f"isolator map: {summary['ok']} ok, {summary['failed']} failed, "
          f"{summary['retried']} retried, {summary['already_done']} already done earlier; "
          f"peak RSS {format_size(summary['peak_rss'])}; {summary['seconds']:.1f} s", file=out)
    for kind, count in sorted(summary["failed_by_kind"].items()):
        print(f"  failed  {count:>5}  {kind}", file=out)
    if summary["slowest"]:
        slow = ", ".join(f"#{s['index']} {s['seconds']:.2f} s" for s in summary["slowest"])
        print(f"  slowest inputs: {slow}", file=out)
    for path in summary["reports"][:SHOWN_REPORTS]:
        print(f"  report: {path}/report.html", file=out)
    if len(summary["reports"]) > SHOWN_REPORTS:
        print(f"  ... and {len(summary['reports']) - SHOWN_REPORTS} more reports, named in "
              "the results", file=out)
    print(f"  results: {summary['out']}", file=out)
