"""The report's new parts, rendered from real forensics: retained sizes and what they
explain, notes on C buffers and numpy views, garbage, heapy's table, memray's coverage,
the objgraph graph on disk and in the page (with and without Graphviz), and the
wording of leak-suspected reports."""

from __future__ import annotations

import gc
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _leaks
import pytest

from isolator import forensics
from isolator.reports import Report

MiB = 1 << 20
_VIEWS: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _free() -> Iterator[None]:
    yield
    _leaks.reset()
    _VIEWS.clear()
    gc.collect()


def report_with(heap: dict[str, Any], **facts: Any) -> Report:
    base: dict[str, Any] = {
        "function": "etl.load", "kind": "soft", "limit": 192 * MiB, "peak": 180 * MiB,
        "pid": 1, "started_at": 1_700_000_000.0, "wall_time": 2.0,
        "timeline": [(0.0, 10 * MiB), (1.0, 170 * MiB), (1.5, 180 * MiB)],
        "traceback": None, "exitcode": None, "signal": None, "soft_limit": 168 * MiB,
        "sections": {"heap": heap},
    }
    base.update(facts)
    return Report(**base)


def _collect(level: str = "default", time_budget: float | None = None) -> dict[str, Any]:
    return forensics.collect(level=level, frame=sys._getframe(1), baseline=None,
                             time_budget=time_budget)


def test_holders_say_their_retained_size_and_what_they_explain() -> None:
    heap = _leaks.module_dict_cache(lambda: _collect())
    text = str(report_with(heap))
    assert "who keeps it alive (retained size" in text
    assert re.search(r"64\.\d MiB\s+dict of 64 items \(bytes\)\s+_leaks\._CACHE", text)
    assert "the holders above retain" in text and "of the" in text
    assert "named roots were walked" in text


def test_numpy_views_keeping_their_bases_are_said_in_text_and_html() -> None:
    np = pytest.importorskip("numpy")
    for i in range(8):
        _VIEWS[f"part-{i}"] = np.full((4096, 128), float(i))[-5:]
    report = report_with(_collect())
    note = "numpy views keep bases"
    assert note in str(report) and "a 5-row view" in str(report)
    assert "keeps a 4.0 MiB base alive" in str(report)
    assert note in report.to_html()


def test_a_stringio_buffer_is_said_in_text_and_html() -> None:
    import io

    _VIEWS["audit"] = buffer = io.StringIO()
    for i in range(200_000):
        buffer.write(f"row {i:08d} loaded\n")
    report = report_with(_collect())
    text = str(report)
    assert "test_report_parts._VIEWS" in text
    assert "io.StringIO: 4,000,000 characters of text in its buffer" in text
    assert "io.StringIO: 4,000,000 characters" in report.to_html()


def test_garbage_is_said_with_why_nothing_freed_it() -> None:
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(20_000):
            cycle: list[Any] = ["x" * 100]
            cycle.append(cycle)
        del cycle
        report = report_with(_collect())
    finally:
        if enabled:
            gc.enable()
    text = str(report)
    assert "garbage: unreachable reference cycles" in text
    assert "gc was disabled in the task (gc.disable())" in text
    assert "Garbage: unreachable reference cycles" in report.to_html()


def test_heapy_is_in_the_text_and_the_page() -> None:
    pytest.importorskip("guppy")
    # Time enough for the full partition however big this test process's heap is (a
    # busy core, or distributed imported by another test, would make it a sample).
    report = report_with(_leaks.big_local(lambda: _collect("deep", time_budget=120)))
    assert "heapy's partition of the heap, by kind (guppy3)" in str(report)
    # The row counts every bytearray of this test process: the 64 MiB one and any an
    # earlier test in the same worker left alive.
    row = re.search(r"\n  bytearray\s+([\d,]+)\s+([\d.]+) (MiB|GiB)", str(report))
    assert row is not None, str(report)
    assert float(row[2]) * (1024 if row[3] == "GiB" else 1) >= 64.0, str(report)
    assert "Heapy&#x27;s partition" in report.to_html() or "Heapy's partition" in report.to_html()


def test_a_heapy_that_could_not_run_says_so() -> None:
    heap = {"level": "deep", "missing": {"heapy": "heapy would need about 300 MiB"}}
    report = report_with(heap)
    assert "heapy could not run: heapy would need about 300 MiB" in str(report)
    assert "heapy could not run" in report.to_html()


def test_memray_coverage_names_what_memray_cannot_see() -> None:
    native = {"peak_memory": 6 * 1024, "high_water_mark": [
        {"bytes": 6 * 1024, "allocations": 3, "stack": ["load (etl.py:3)"]}]}
    report = report_with({}, sections={"native": native})
    coverage = report.to_dict()["sections"]["native"]["coverage"]
    assert coverage["rss_growth"] == 170 * MiB
    assert coverage["untracked"] == 170 * MiB - 6 * 1024
    text = str(report)
    assert "memray's sites explain 6.0 KiB of the 170.0 MiB" in text
    assert "ctypes.CDLL(None).malloc" in text and "ctypes.CDLL(None).malloc" in report.to_html()


def test_a_timeline_does_not_end_with_a_gone_process() -> None:
    report = report_with({}, timeline=[(0.0, MiB), (1.0, 9 * MiB), (1.1, 0)])
    assert report.timeline == [(0.0, MiB), (1.0, 9 * MiB)]


def test_leak_suspected_reports_count_tasks_not_seconds() -> None:
    report = report_with({}, kind="leak-suspected", wall_time=0.0, peak=60 * MiB,
                         timeline=[(float(i), (20 + 10 * i) * MiB) for i in range(5)])
    text = str(report)
    assert "wall time  0.00 s" not in text and "not measured" in text
    assert "stopped before reaching it" not in text and "nothing was stopped" in text
    assert "memory after each task" in text and "t (s)" not in text
    page = report.to_html()
    assert "task 4" in page and "0.00 s, started" not in page


def _graph_report() -> Report:
    pytest.importorskip("objgraph")
    # A generous budget: in a big test process each node of the graph is a pass over a
    # heap of pytest's, and a tight budget would rightly leave the graph out.
    heap = _leaks.module_dict_cache(lambda: forensics.collect(
        level="default", frame=sys._getframe(1), baseline=None, time_budget=60))
    assert "backrefs" in heap, heap["missing"]
    return report_with(heap)


def test_the_graph_is_written_and_drawn_inline(tmp_path: Path) -> None:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed here (.ci/run installs it)")
    report = _graph_report()
    path = Path(report.write(str(tmp_path)))
    assert (path / "backrefs.dot").read_text().startswith("digraph ObjectGraph")
    page = (path / "report.html").read_text()
    assert '<div class="backrefs"><svg' in page and '<a href="backrefs.dot">' in page
    assert "_leaks._CACHE" in page.split('<div class="backrefs">')[1]
    assert not re.search(r"""(src|href)=["']?https?:""", page)
    assert "backrefs.dot" in (path / "report.txt").read_text()


def test_without_graphviz_the_page_says_so_and_links_the_dot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = _graph_report()
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on this PATH
    path = Path(report.write(str(tmp_path / "reports")))
    page = (path / "report.html").read_text()
    assert "Graphviz&#x27;s dot is not installed" in page or "dot is not installed" in page
    assert '<a href="backrefs.dot">backrefs.dot</a>' in page and "<svg class" not in page
    assert (path / "backrefs.dot").exists()
