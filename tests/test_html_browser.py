"""The HTML report renders in a real headless browser and shows the verdict."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import _workloads as w
import pytest

from isolator import MemoryLimitExceeded, isolated

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.timeout(120)
@pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true",
                    reason="no chromium here (.ci/run installs Debian's chromium package)")
def test_report_html_renders_in_chromium(tmp_path: Path) -> None:
    assert CHROMIUM is not None, "CI must have chromium: .ci/run installs it"
    with pytest.raises(MemoryLimitExceeded) as info:
        isolated(max_mem="64MiB", report_dir=tmp_path)(w.leak_into_module_cache)(64, "row")
    page = Path(info.value.report.path) / "report.html"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=90, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "exceeded its memory cap" in dom
    assert "leak_into_module_cache" in dom
    assert "<svg" in dom or "timeline missing" in dom
    assert "64.0 MiB" in dom  # the cap, in the verdict
