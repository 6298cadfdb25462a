"""The HTML report renders in a real headless browser and shows the verdict; at 1400 and
800 px wide no size breaks across lines and no chart sticks out of its column.

Screenshots of each width are kept as the run's artefacts, in $ISOLATOR_TEST_ARTIFACTS
(default: .artifacts/ in the checkout), for a person to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import _workloads as w
import pytest

from isolator import MemoryLimitExceeded, isolated

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("ISOLATOR_TEST_ARTIFACTS") or ROOT / ".artifacts")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="no chromium here (.ci/run installs Debian's chromium package)")

# Added to a copy of the page only (the report itself has no script): it measures the
# layout the browser made and writes what it found into the page, which --dump-dom prints.
MEASURE = """
<script>
addEventListener("load", () => {
  const found = {wrapped: [], overflowing: [], sizes: 0,
                 pageOverflow: document.documentElement.scrollWidth - innerWidth};
  const size = /\\d[\\u00a0 ](B|KiB|MiB|GiB|TiB)\\b/g;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest("pre, svg, script")) continue;
    for (const match of node.data.matchAll(size)) {
      const range = document.createRange();
      const start = node.data.lastIndexOf(" ", match.index) + 1;
      range.setStart(node, start);
      range.setEnd(node, match.index + match[0].length);
      const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
      found.sizes += 1;
      if (tops.size > 1) found.wrapped.push(node.data.slice(start, range.endOffset));
    }
  }
  for (const svg of document.querySelectorAll("svg")) {
    if (svg.parentElement.closest("svg")) continue;
    const box = svg.getBoundingClientRect();
    const column = document.body.getBoundingClientRect();
    if (box.right > column.right + 0.5 || box.left < column.left - 0.5)
      found.overflowing.push(`${svg.getAttribute("class") || "chart"}: ${box.width}px`);
  }
  found.wide = [...document.body.querySelectorAll("*")]
    .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5)
    .map(e => `${e.tagName.toLowerCase()}.${e.className}: ${e.textContent.slice(0, 60)}`);
  const out = document.createElement("pre");
  out.id = "layout-check";
  out.textContent = JSON.stringify(found);
  document.body.append(out);
});
</script>
"""


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None, "CI must have chromium: .ci/run installs it"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=90, check=False,
    )


@pytest.mark.timeout(120)
@needs_chromium
def test_report_html_renders_in_chromium(tmp_path: Path) -> None:
    with pytest.raises(MemoryLimitExceeded) as info:
        isolated(max_mem="64MiB", report_dir=tmp_path)(w.leak_into_module_cache)(64, "row")
    page = Path(info.value.report.path) / "report.html"
    done = _chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "exceeded its memory cap" in dom
    assert "leak_into_module_cache" in dom
    assert "<svg" in dom or "timeline missing" in dom
    assert "64.0&nbsp;MiB" in dom  # the cap, in the verdict, as one word


@pytest.mark.timeout(180)
@needs_chromium
@pytest.mark.parametrize("width", [1400, 800])
def test_at_1400_and_800_px_numbers_stay_whole_and_charts_fit(tmp_path: Path,
                                                              width: int) -> None:
    # The deep level: the page with the most in it, memray's icicle chart included.
    with pytest.raises(MemoryLimitExceeded) as info:
        isolated(max_mem="128MiB", forensics="deep", report_dir=tmp_path)(
            w.leak_into_module_cache)(128, "row")
    report = info.value.report
    assert isinstance(report.sections.get("native", {}).get("flame"), dict), report.missing
    page = Path(report.path) / "report.html"
    measured = tmp_path / "measured.html"
    measured.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    done = _chromium(tmp_path / "profile", f"--window-size={width},1000",
                     "--virtual-time-budget=5000", "--dump-dom", measured.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    marker = '<pre id="layout-check">'
    assert marker in done.stdout, done.stdout[-2000:]
    found = json.loads(done.stdout.split(marker)[1].split("</pre>")[0])
    assert found["sizes"] > 10  # the check saw the page's sizes
    assert found["wrapped"] == []
    assert found["overflowing"] == []
    assert found["pageOverflow"] <= 0, found["wide"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"report-{width}px.png"
    taken = _chromium(tmp_path / "profile", f"--window-size={width},6000",
                      f"--screenshot={shot}", page.as_uri())
    assert taken.returncode == 0 and shot.stat().st_size > 10_000, taken.stderr[-2000:]
