"""Report retention: report_keep after each breach, and `isolator reports --prune`,
which never remove a report still being written, nor anything not named as a report."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import _workloads as w
import pytest
from test_cli_map import cli

from isolator import ConfigurationError, MemoryLimitExceeded, isolated
from isolator.reports import Report, prune
from isolator.reports._retention import ABANDONED_AFTER

DAY = 86400.0


def _report(directory: Path, function: str, started_at: float) -> Path:
    report = Report(function=function, kind="hard", limit=64 << 20, peak=70 << 20, pid=1,
                    started_at=started_at, wall_time=1.0, timeline=[(0.0, 1), (1.0, 70 << 20)],
                    traceback=None, exitcode=None, signal="SIGKILL", missing={})
    return Path(report.write(str(directory)))


def _age(path: Path, days: float) -> None:
    when = time.time() - days * DAY
    for item in (path / "report.json", path):
        if item.exists():
            os.utime(item, (when, when))


def test_each_breach_prunes_to_report_keep(tmp_path: Path) -> None:
    capped = isolated(max_mem="64MiB", report_dir=tmp_path, report_keep=1)(w.grow_numpy)
    paths = []
    for _ in range(2):
        with pytest.raises(MemoryLimitExceeded) as info:
            capped(512)
        paths.append(info.value.report.path)
    assert [str(p) for p in tmp_path.iterdir()] == [paths[-1]]  # the newest stays


def test_count_and_age_and_what_is_never_touched(tmp_path: Path) -> None:
    now = time.time()
    made = [_report(tmp_path, f"etl.step{i}", now - i) for i in range(5)]
    for i, path in enumerate(made):  # finished a minute apart, step0 last
        _age(path, i / 1440)
    _age(made[1], 40)  # past the default 30 days
    mine = tmp_path / "notes"  # the user's own folder, and a link, in the same place
    mine.mkdir()
    (tmp_path / "20250101-000000-link-1").symlink_to(mine)
    done = prune(str(tmp_path), 3, 30 * DAY)
    assert sorted(done.removed) == sorted(str(p) for p in (made[1], made[4]))
    assert done.kept == 3 and mine.is_dir() and (tmp_path / "20250101-000000-link-1").is_symlink()


WRITER = textwrap.dedent("""
    import sys
    from isolator.reports import _store, _retention
    entry = _store._new_entry(sys.argv[1], "20200101-000000-slow-1")
    with _retention.writing(entry):
        _store._write_atomic(entry + "/report.txt", "half a report")
        print(entry, flush=True)
        sys.stdin.readline()  # the test says when to go on
        _store._write_atomic(entry + "/report.json", "{}")
""")


def test_a_report_being_written_is_never_pruned(tmp_path: Path) -> None:
    _report(tmp_path, "etl.done", time.time())
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    try:
        assert writer.stdout is not None and writer.stdin is not None
        entry = Path(writer.stdout.readline().strip())
        # Old enough to be taken for an abandoned one, and past any count or age.
        when = time.time() - ABANDONED_AFTER - DAY
        os.utime(entry, (when, when))
        done = cli(tmp_path, "reports", str(tmp_path), "--prune", "--keep", "1,1s")
        assert done.returncode == 0, done.stderr
        assert entry.is_dir() and (entry / "report.txt").exists()
        writer.stdin.write("\n")
        writer.stdin.flush()
        assert writer.wait(30) == 0
    finally:
        writer.kill()
        writer.wait()
    _age(entry, 2)
    assert prune(str(tmp_path), None, DAY).removed == [str(entry)]  # finished: now it goes


def test_an_abandoned_incomplete_report_goes_once_it_is_old(tmp_path: Path) -> None:
    young = tmp_path / "20200101-000000-young-1"
    old = tmp_path / "20200101-000000-old-1"
    for entry in (young, old):
        entry.mkdir()
        (entry / "report.txt").write_text("its writer died")
    when = time.time() - ABANDONED_AFTER - 1
    os.utime(old, (when, when))
    assert prune(str(tmp_path), 1000, None).removed == [str(old)]
    assert young.is_dir()


def test_reports_prune_on_the_command_line(tmp_path: Path) -> None:
    now = time.time()
    for i in range(4):
        _age(_report(tmp_path, f"etl.step{i}", now - i), i / 1440)
    done = cli(tmp_path, "reports", str(tmp_path), "--prune", "--keep", "2")
    assert done.returncode == 0, done.stderr
    assert "removed 2 reports, kept 2" in done.stdout
    assert done.stdout.count("etl.step") == 2
    kept = cli(tmp_path, "reports", str(tmp_path), "--prune", "--keep", "all")
    assert kept.returncode == 0 and "kept every report" in kept.stdout
    assert kept.stdout.count("etl.step") == 2
    bad = cli(tmp_path, "reports", str(tmp_path), "--prune", "--keep", "forever")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "--keep 'forever'" in bad.stderr


@pytest.mark.parametrize("value", [0, "x", (1, 2), "5,6", True])
def test_report_keep_takes_only_the_documented_forms(value: object) -> None:
    with pytest.raises(ConfigurationError, match="report_keep"):
        isolated(report_keep=value)(len)  # type: ignore[arg-type]


def test_report_keep_all_keeps_every_report_as_none_does(tmp_path: Path) -> None:
    call = isolated(report_keep="all")(len)
    assert call.reporting.report_keep is None
    done = cli(tmp_path, "run", "_workloads:echo", "1", "--report-keep", "all")
    assert done.returncode == 0, done.stderr
