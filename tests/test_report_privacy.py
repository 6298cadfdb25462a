"""A report keeps what its forensics level allows of the exceptions, too.

The task here runs past its cap while it handles an exception whose message holds data:
at the ``types`` level no message reaches the report's files (frame locations and type
names do); at the others a message is cut as a value's repr is. The caller's own
exception keeps the child's whole traceback.
"""

from __future__ import annotations

from pathlib import Path

import _privacy_jobs as jobs
import pytest

from isolator import MemoryLimitExceeded, isolated


def _breach(fn: object, tmp_path: Path, level: str) -> MemoryLimitExceeded:
    call = isolated(max_mem="96MiB", forensics=level, report_dir=str(tmp_path))(fn)
    with pytest.raises(MemoryLimitExceeded) as info:
        call(400)
    return info.value


def _files(exc: MemoryLimitExceeded) -> str:
    assert exc.report is not None and exc.report.path is not None
    folder = Path(exc.report.path)
    return "".join((folder / name).read_text() for name in ("report.json", "report.html"))


@pytest.mark.timeout(60)
def test_types_level_keeps_no_message_of_the_data(tmp_path: Path) -> None:
    exc = _breach(jobs.breach_while_handling_a_secret, tmp_path, "types")
    files = _files(exc)
    assert jobs.SECRET not in files
    assert exc.report is not None and exc.report.traceback is not None
    assert "KeyError: &lt;message withheld" in files or "KeyError: <message withheld" in files
    assert "breach_while_handling_a_secret" in exc.report.traceback  # the frame is kept
    assert "soft limit" in exc.report.traceback  # isolator's own words hold no data
    assert jobs.SECRET in str(exc.__cause__)  # the caller's own exception keeps it all


@pytest.mark.timeout(60)
@pytest.mark.parametrize("level", ["default", "deep", "off"])
def test_other_levels_cut_every_message(tmp_path: Path, level: str) -> None:
    exc = _breach(jobs.breach_while_handling_a_long_message, tmp_path, level)
    assert exc.report is not None and exc.report.traceback is not None
    text = exc.report.traceback
    assert "ValueError: " + "x" * 80 + "... (100,000 characters, cut to 80)" in text
    assert "x" * 81 not in _files(exc)
