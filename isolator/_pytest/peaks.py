"""``--isolator-report``: every isolated test's peak memory, in a table at the end."""

from __future__ import annotations

from typing import Any

import pytest


class PeakSummary:
    """Collects each isolated test's peak from its report; prints them at the end.

    The peak travels as an attribute of the test's report (``isolator_peak``, set by the
    plugin's ``pytest_runtest_makereport``), so it reaches this process from pytest-xdist
    workers too.
    """

    def __init__(self) -> None:
        self.rows: list[tuple[int, int | None, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Keep the peak of an isolated test's call."""
        peak = getattr(report, "isolator_peak", None)
        if report.when == "call" and peak is not None:
            self.rows.append((int(peak), getattr(report, "isolator_cap", None), report.nodeid))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """The table: peak, cap, test id, highest peak first."""
        from .. import format_size

        write = terminalreporter.write_line
        terminalreporter.write_sep("=", f"isolator: peak memory of {len(self.rows)} "
                                        "isolated tests")
        write(f"{'peak':>11}  {'cap':>11}  test")
        for peak, cap, nodeid in sorted(self.rows, key=lambda row: -row[0]):
            write(f"{format_size(peak):>11}  {format_size(cap) if cap else 'none':>11}  "
                  f"{nodeid}")
