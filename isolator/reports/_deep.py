"""The deep level's parts of a report: heapy's partition, memray's allocation sites, and
how much of the memory memray could see (shared by the text and HTML renderers)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from .._units import format_size

ROWS = 8
HEAPY_ROWS = 12
#: What memray cannot see, said in every report whose memory it does not explain.
MEMRAY_BLIND = (
    "memray records the allocations the interpreter and extensions make through the C "
    "allocator's entry points (malloc, calloc, realloc, mmap and Python's own allocators) "
    "from the moment the task started. It does not see malloc or mmap called through a "
    "function pointer, as ctypes.CDLL(None).malloc and other dlsym-ed calls are, nor "
    "memory allocated before the task started (the zygote's heap), nor the allocator's own "
    "slack and fragmentation")


def _size(value: object) -> str:
    return format_size(value) if isinstance(value, (int, float)) else "?"


def coverage(native: dict[str, Any], timeline: list[tuple[float, int]], peak: int
             ) -> dict[str, Any] | None:
    """How much of the task's memory memray's sites explain, from its own peak and the
    supervisor's samples (the first sample is the task's start)."""
    seen = native.get("peak_memory")
    if not isinstance(seen, (int, float)) or not timeline:
        return None
    grew = max(peak - timeline[0][1], 0)
    untracked = max(grew - int(seen), 0)
    return {"memray_peak": int(seen), "rss_growth": grew, "untracked": untracked,
            "share": round(seen / grew, 3) if grew else None}


def coverage_line(native: dict[str, Any]) -> str | None:
    found = native.get("coverage")
    if not isinstance(found, dict) or not found.get("rss_growth"):
        return None
    share = found.get("share")
    seen = f"{min(share, 1.0):.0%}" if isinstance(share, (int, float)) else "?"
    line = (f"memray's sites explain {_size(found.get('memray_peak'))} of the "
            f"{_size(found.get('rss_growth'))} the task's memory grew ({seen})")
    if found.get("untracked", 0) > 0.1 * found["rss_growth"]:
        line += (f"; {_size(found['untracked'])} was allocated where memray does not look. "
                 f"{MEMRAY_BLIND}")
    return line


def native_rows(native: dict[str, Any], key: str) -> list[tuple[str, str, str]]:
    """(size, allocations, where) from memray's sites: innermost frame first."""
    return [(_size(site.get("bytes")), str(site.get("allocations", "?")),
             " <- ".join(site.get("stack", [])[:3]) or "?")
            for site in native.get(key, [])[:ROWS]]


NATIVE_TABLES = (
    ("where it was allocated, at the high-water mark (memray)", "high_water_mark"),
    ("allocations still live when the child ended (memray)", "live_at_end"),
)


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def native_text_lines(native: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for title, key in NATIVE_TABLES:
        rows = native_rows(native, key)
        if rows:
            out += ["", title, *_table(rows)]
    line = coverage_line(native)
    if line:
        out += ["", f"what memray saw: {line}"]
    return out


def heapy_title(heapy: dict[str, Any]) -> str:
    if heapy.get("mode") == "sample":
        return (f"heapy's partition of a 1-in-{heapy.get('sample', '?')} sample of the heap, "
                f"by type, counts and sizes scaled up (guppy3)")
    return f"heapy's partition of the heap, by {heapy.get('by', 'kind')} (guppy3)"


def heapy_rows(heapy: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(str(row.get("kind", "?")), str(row.get("count", "?")), _size(row.get("bytes")))
            for row in (heapy.get("rows") or [])[:HEAPY_ROWS]]


def heapy_text_lines(heap: dict[str, Any]) -> list[str]:
    """heapy's table, or the line saying why it could not run (deep level only)."""
    heapy = heap.get("heapy")
    if isinstance(heapy, dict) and heapy.get("rows"):
        out = ["", heapy_title(heapy), *_table(heapy_rows(heapy))]
        if heapy.get("why"):
            out.append(f"  (sampled: {heapy['why']})")
        return out
    why = (heap.get("missing") or {}).get("heapy")
    if heap.get("level") == "deep" and why:
        return ["", f"heapy could not run: {why}"]
    return []


def heapy_html(heap: dict[str, Any]) -> str:
    e = html.escape
    heapy = heap.get("heapy")
    if isinstance(heapy, dict) and heapy.get("rows"):
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>"
                       for r in heapy_rows(heapy))
        note = f"<p>sampled: {e(str(heapy['why']))}</p>" if heapy.get("why") else ""
        title = heapy_title(heapy)
        return (f"<h2>{e(title[:1].upper() + title[1:])}</h2><table><tr><th>kind</th>"
                f"<th>count</th><th>bytes</th></tr>{body}</table>{note}")
    why = (heap.get("missing") or {}).get("heapy")
    if heap.get("level") == "deep" and why:
        return f'<p class="missing">heapy could not run: {e(str(why))}</p>'
    return ""


def native_html(native: dict[str, Any]) -> str:
    e = html.escape
    parts = []
    for title, key in NATIVE_TABLES:
        rows = native_rows(native, key)
        if rows:
            body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>"
                           for r in rows)
            parts.append(f"<h2>{e(title[:1].upper() + title[1:])}</h2><table><tr><th>size</th>"
                         f"<th>allocations</th><th>where</th></tr>{body}</table>")
    line = coverage_line(native)
    if line:
        parts.append(f"<p><b>what memray saw</b>: {e(line)}</p>")
    flame = native.get("flame")
    if isinstance(flame, dict):
        parts.insert(0, flame_svg(flame))
    return "\n".join(parts)


ROW = 18
WIDTH = 960


def flame_svg(flame: dict[str, Any]) -> str:
    """An icicle chart of where the peak's bytes were allocated: each row one call level,
    outermost at the top, widths in proportion to bytes. Inline SVG, no script."""
    total = flame.get("bytes") or 0
    if not total:
        return ""
    boxes: list[str] = []
    depth = _boxes(flame, 0.0, 0, total, boxes)
    height = (depth + 1) * ROW
    return (f'<h2>Where the peak was allocated (memray)</h2><svg class="flame" '
            f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
            f'role="img">{"".join(boxes)}</svg>')


def _boxes(node: dict[str, Any], x: float, level: int, total: int, out: list[str]) -> int:
    width = WIDTH * node.get("bytes", 0) / total
    if width < 1:
        return level - 1
    label = f"{node.get('name', '?')} {_size(node.get('bytes'))}"
    shown = html.escape(label[: max(int(width / 7), 0)])
    hue = 20 + sum(map(ord, str(node.get("name")))) % 40  # stable across runs
    out.append(f'<g><title>{html.escape(label)}</title><rect x="{x:.1f}" y="{level * ROW}" '
               f'width="{max(width - 1, 0.5):.1f}" height="{ROW - 1}" '
               f'fill="hsl({hue},80%,65%)"/><text x="{x + 3:.1f}" y="{level * ROW + 13}" '
               f'font-size="11">{shown}</text></g>')
    deepest, child_x = level, x
    for child in node.get("children", []):
        deepest = max(deepest, _boxes(child, child_x, level + 1, total, out))
        child_x += WIDTH * child.get("bytes", 0) / total
    return deepest
