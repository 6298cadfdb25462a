"""Post-mortem reports: the model, its files on disk, its renderings, and a real breach."""

from __future__ import annotations

import json
import os
import pickle
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from isolator import MemoryLimitExceeded, RemoteTraceback, format_size
from isolator.reports import (
    MAX_TRACEBACK_LINES,
    SCHEMA_VERSION,
    Report,
    default_report_dir,
    load,
)
from isolator.reports._text import BLOCKS

# tests/ on sys.path for the workload module (conftest.py does it too; harmless).
TESTS = os.path.dirname(os.path.abspath(__file__))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

MiB = 1024 * 1024
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/etl/jobs.py", line 12, in parse_rows\n'
    "    cache.append(row)\n"
    '  File "/venv/lib/isolator/_child/child.py", line 47, in _on_breach\n'
    "    raise MemoryLimitExceeded(\n"
    "isolator._errors.MemoryLimitExceeded: memory use passed the soft limit\n"
)


def make_report(**overrides: Any) -> Report:
    facts: dict[str, Any] = {
        "function": "etl.jobs.parse_rows", "kind": "soft", "limit": 128 * MiB,
        "peak": 120 * MiB, "pid": 4242, "started_at": 1_700_000_000.0, "wall_time": 2.5,
        "timeline": [(i * 0.05, (10 + 2 * i) * MiB) for i in range(50)],
        "traceback": TRACEBACK, "exitcode": None, "signal": None, "soft_limit": 112 * MiB,
    }
    facts.update(overrides)
    return Report(**facts)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- the model ---------------------------------------------------------------------------


def test_round_trip_through_dict_and_json() -> None:
    report = make_report(missing={"heap": "heap forensics were not enabled"})
    data = json.loads(json.dumps(report.to_dict()))
    assert data["schema"] == "isolator.report" and data["version"] == SCHEMA_VERSION
    assert set(data) == {"schema", "version", "verdict", "timeline", "sections", "missing"}
    copy = Report.from_dict(data)
    assert copy == report
    assert copy.timeline == report.timeline and copy.traceback == report.traceback
    assert copy.missing == {"heap": "heap forensics were not enabled"}


def test_unknown_sections_survive_a_round_trip() -> None:
    # A newer writer may add sections; this reader keeps them rather than drop data.
    report = make_report(sections={"heap": {"top": [["x.py:1", 1024]]}})
    assert Report.from_dict(report.to_dict()).sections["heap"] == {"top": [["x.py:1", 1024]]}


def test_pickles_with_its_path() -> None:
    report = make_report()
    report.path = "/somewhere/20240101-000000-parse_rows-4242"
    copy = pickle.loads(pickle.dumps(report))
    assert copy == report and copy.path == report.path


def test_pickles_inside_an_exception() -> None:
    exc = MemoryLimitExceeded("big", limit=1, peak=2, kind="hard", report=make_report())
    copy = pickle.loads(pickle.dumps(exc))
    assert isinstance(copy.report, Report) and copy.report == exc.report


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": "something.else"}, "not an isolator report"),
        ({"version": 2}, "unsupported isolator report version 2"),
        ({"version": True}, "unsupported isolator report version"),
        ({"verdict": None}, "'verdict' should be a dict"),
        ({"timeline": [[0.0]]}, "malformed"),
        ({"sections": {"traceback": {"lines": 3}}}, "traceback has no text"),
    ],
)
def test_from_dict_rejects_what_is_not_a_report(change: dict[str, Any], message: str) -> None:
    data = {**make_report().to_dict(), **change}
    with pytest.raises(ValueError, match=message):
        Report.from_dict(data)


def test_from_dict_rejects_a_verdict_without_a_field() -> None:
    data = make_report().to_dict()
    del data["verdict"]["peak"]
    with pytest.raises(ValueError, match="malformed isolator report: KeyError"):
        Report.from_dict(data)
    with pytest.raises(ValueError, match="not an isolator report"):
        Report.from_dict([])  # type: ignore[arg-type]


def test_absent_parts_are_listed_with_a_reason() -> None:
    report = make_report(kind="hard", timeline=[], traceback=None, signal="SIGKILL")
    assert set(report.missing) == {"timeline", "traceback"}
    assert "killed" in report.missing["traceback"]
    assert all(report.missing.values())
    # A part that is present is never listed as missing, whatever the caller said.
    assert "traceback" not in make_report(missing={"traceback": "stale"}).missing


def test_long_tracebacks_keep_their_last_lines() -> None:
    lines = [f"line {i}" for i in range(3 * MAX_TRACEBACK_LINES)]
    report = make_report(traceback="\n".join(lines))
    assert report.traceback is not None
    kept = report.traceback.splitlines()
    assert kept[-1] == lines[-1] and len(kept) == MAX_TRACEBACK_LINES + 1
    assert f"{2 * MAX_TRACEBACK_LINES} earlier lines cut" in kept[0]


def test_from_exception_takes_the_facts_cause_and_timeline() -> None:
    exc = MemoryLimitExceeded("big", limit=64 * MiB, peak=70 * MiB, kind="soft", pid=7)
    exc.__cause__ = RemoteTraceback(TRACEBACK)
    report = Report.from_exception(exc, function="f", started_at=time.time(), wall_time=1.0)
    assert (report.kind, report.limit, report.peak, report.pid) == ("soft", 64 * MiB, 70 * MiB, 7)
    assert report.traceback == TRACEBACK.rstrip("\n")
    assert "carries no memory timeline" in report.missing["timeline"]
    exc.timeline = [(0.0, MiB), (0.1, 70 * MiB)]
    with_timeline = Report.from_exception(exc, function="f", started_at=0.0, wall_time=1.0)
    assert with_timeline.timeline == exc.timeline
    assert "timeline" not in with_timeline.missing


# -- renderings --------------------------------------------------------------------------


def test_text_report_gives_the_verdict_first_then_a_sparkline() -> None:
    text = str(make_report(timeline=[], missing={"heap": "not enabled"}))
    assert text.startswith("isolator report: etl.jobs.parse_rows")
    for fact in ("soft", format_size(128 * MiB), format_size(120 * MiB), "below the cap"):
        assert fact in text.split("memory timeline")[0]
    assert "timeline: no memory samples were recorded" in text  # the default reason
    assert "heap: not enabled" in text.split("missing parts")[1]

    text = str(make_report())
    spark = next(line.strip() for line in text.splitlines()
                 if line.strip() and set(line.strip()) <= set(BLOCKS))
    assert len(spark) == 50 and spark[0] == BLOCKS[0] and spark[-1] == BLOCKS[-1]
    assert "<- max" in text and "min 10.0 MiB" in text
    # Where it was: the user's frame, not isolator's signal handler that raised.
    where = text.split("  where ")[1]
    assert where.lstrip().startswith('File "/srv/etl/jobs.py", line 12, in parse_rows')


def test_overshoot_is_reported_over_the_cap() -> None:
    text = str(make_report(kind="hard", peak=130 * MiB, traceback=None, signal="SIGKILL"))
    assert "2.0 MiB over the cap" in text and "killed by SIGKILL" in text


def test_html_is_self_contained_and_escapes_user_strings() -> None:
    page = make_report(function="<script>alert(1)</script>",
                       traceback='raise X("<img src=x>")').to_html()
    assert "<svg" in page and "<polyline" in page and "<pre>" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page
    assert "src=" not in page.replace("&lt;img src=x&gt;", "") and "href" not in page
    assert "cap 128.0\u00a0MiB" in page and "soft limit 112.0\u00a0MiB" in page  # one word each


def test_html_says_why_the_chart_is_missing() -> None:
    page = make_report(timeline=[], missing={"timeline": "sampler <off>"}).to_html()
    assert "<svg" not in page and "timeline missing: sampler &lt;off&gt;" in page


# -- on disk -----------------------------------------------------------------------------


def test_write_makes_private_directories_and_three_files(tmp_path: Path) -> None:
    report = make_report()
    # Modes must not depend on the caller's umask: this one would strip the owner's write
    # bit from anything created with a plain mkdir or open.
    old_umask = os.umask(0o277)
    try:
        path = Path(report.write(str(tmp_path / "a" / "b")))
    finally:
        os.umask(old_umask)
    assert report.path == str(path) and path.parent == tmp_path / "a" / "b"
    assert path.name.endswith("-parse_rows-4242") and path.name[:8].isdigit()
    for directory in (tmp_path / "a", tmp_path / "a" / "b", path):
        assert _mode(directory) == 0o700, directory
    assert sorted(os.listdir(path)) == ["report.html", "report.json", "report.txt"]
    for name in os.listdir(path):
        assert _mode(path / name) == 0o600, name
    with open(path / "report.json") as source:
        data = json.load(source)
    assert (data["schema"], data["version"]) == ("isolator.report", 1)
    assert (path / "report.txt").read_text() == str(report)
    assert "<svg" in (path / "report.html").read_text()


def test_write_twice_gives_two_directories_and_leaves_an_existing_one_alone(
    tmp_path: Path,
) -> None:
    tmp_path.chmod(0o755)
    report = make_report(function="<lambda>", pid=None)
    first, second = report.write(str(tmp_path)), report.write(str(tmp_path))
    assert first != second and report.path == second
    assert os.path.basename(first).endswith("-lambda-nopid")
    assert _mode(tmp_path) == 0o755


def test_load_reads_a_directory_or_its_json(tmp_path: Path) -> None:
    report = make_report()
    path = report.write(str(tmp_path))
    for source in (path, os.path.join(path, "report.json"), Path(path)):
        copy = load(source)
        assert copy == report and copy.path == path
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load(tmp_path / "bad.json")


def test_default_report_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ISOLATOR_REPORT_DIR", str(tmp_path))
    assert default_report_dir() == str(tmp_path)
    monkeypatch.delenv("ISOLATOR_REPORT_DIR")
    monkeypatch.chdir(tmp_path)
    assert default_report_dir() == os.path.join(str(tmp_path), "isolator-reports")


# -- end to end --------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_real_breach_makes_a_report(tmp_path: Path) -> None:
    import _workloads_reports as wl  # after the sys.path insertion above

    started_at, clock = time.time(), time.perf_counter()
    with pytest.raises(MemoryLimitExceeded) as caught:
        wl.leak_past_the_cap()
    wall_time = time.perf_counter() - clock
    exc = caught.value
    assert exc.limit == wl.CAP_MIB * MiB and exc.peak > 0
    report = Report.from_exception(
        exc, function="_workloads_reports.leak_past_the_cap", started_at=started_at,
        wall_time=wall_time, soft_limit=wl.leak_past_the_cap.options.soft_mem,
    )
    path = report.write(str(tmp_path / "reports"))
    copy = load(path)
    assert copy == report
    assert copy.kind == exc.kind in {"soft", "hard", "kernel-oom", "rlimit"}
    assert copy.limit == wl.CAP_MIB * MiB and copy.peak == exc.peak
    if exc.kind == "soft":  # the child raised, so its traceback came back
        assert copy.traceback is not None and "leak_past_the_cap" in copy.traceback
        assert "leak_past_the_cap" in str(copy).split("  where ")[1].splitlines()[0]
    else:
        assert "traceback" in copy.missing
    assert ("timeline" in copy.missing) != bool(copy.timeline)
    text = (Path(path) / "report.txt").read_text()
    assert exc.kind in text and format_size(exc.limit) in text
