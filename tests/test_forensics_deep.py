"""The deep level in a real child under a small cap: heapy's partition runs within the
headroom (whole heap or a sample) and shows in report.txt and report.html, memray's
coverage is stated, the JSON says "deep", and the timeline ends with a real sample."""

from __future__ import annotations

from pathlib import Path

import _corpus
import pytest


@pytest.mark.timeout(150)
def test_deep_level_under_a_small_cap(tmp_path: Path) -> None:
    pytest.importorskip("guppy")
    pytest.importorskip("memray")
    case = _corpus.Case("stdlib_containers.queue_never_drained",
                        ("leakcorpus.stdlib_containers._PENDING",), level="deep")
    report = _corpus.run_case(case, str(tmp_path))
    assert _corpus.problems(case, report) == [], str(report)
    heap = report.to_dict()["sections"]["heap"]
    assert heap["level"] == "deep"
    heapy = heap["heapy"]
    assert heapy["mode"] in ("full", "sample") and heapy["rows"]
    assert "heapy's partition" in str(report)
    page = (Path(report.path or "") / "report.html").read_text()
    assert "partition of" in page and heapy["rows"][0]["kind"] in page
    native = report.sections["native"]
    assert native["coverage"]["rss_growth"] > 100 << 20
    assert "memray's sites explain" in str(report)
    assert report.timeline[-1][1] > 0
