"""The heap section of a report (what the child found when it crossed its cap), in the
order a reader needs it: who keeps the memory alive, what it is, what grew, which
locals were big. Shared by the text and HTML renderers; every value is optional."""

from __future__ import annotations

import html
from typing import Any

from .._units import format_size

ROWS = 8


def _size(value: object) -> str:
    return format_size(value) if isinstance(value, (int, float)) else "?"


def held_by(heap: dict[str, Any]) -> str | None:
    """One line: Python objects or native allocations, with the numbers."""
    py = heap.get("python_heap")
    if not isinstance(py, dict):
        return None
    share = py.get("python_share")
    percent = f" ({share:.0%} of RSS)" if isinstance(share, float) else ""
    return (f"{py.get('held_by', '?')}: Python objects {_size(py.get('python_bytes'))}"
            f"{percent}, native {_size(py.get('native_bytes'))}, "
            f"RSS {_size(py.get('rss_bytes'))}")


def holder_rows(heap: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(size, what, kept alive by) for the biggest containers."""
    section = heap.get("holders")
    rows = []
    for holder in (section or {}).get("holders", [])[:ROWS]:
        container = holder.get("container", {})
        what = str(container.get("type", "?")).removeprefix("builtins.")
        if container.get("len") is not None:
            what += f" of {container['len']} items"
        types = holder.get("objects", {}).get("types") or []
        if types:
            what += " (" + ", ".join(str(t).removeprefix("builtins.") for t in types[:3]) + ")"
        rows.append((_size(holder.get("bytes")), what, str(holder.get("path", "?"))))
    return rows


def type_rows(heap: dict[str, Any]) -> list[tuple[str, str, str]]:
    section = heap.get("types") or {}
    return [(str(t.get("type", "?")), str(t.get("count", "?")), _size(t.get("bytes")))
            for t in section.get("top", [])[:ROWS]]


def growth_rows(heap: dict[str, Any]) -> list[tuple[str, str, str]]:
    section = heap.get("growth") or {}
    return [(str(t.get("type", "?")), str(t.get("before", "?")), f"+{t.get('delta', '?')}")
            for t in section.get("top", [])[:ROWS]]


def local_rows(heap: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    section = heap.get("locals") or {}
    return [(str(t.get("name", "?")), str(t.get("frame", "?")),
             str(t.get("type", "?")).removeprefix("builtins."), _size(t.get("bytes")))
            for t in section.get("top", [])[:ROWS]]


def native_rows(native: dict[str, Any], key: str) -> list[tuple[str, str, str]]:
    """(size, allocations, where) from memray's sites: innermost frame first."""
    return [(_size(site.get("bytes")), str(site.get("allocations", "?")),
             " <- ".join(site.get("stack", [])[:3]) or "?")
            for site in native.get(key, [])[:ROWS]]


NATIVE_TABLES = (
    ("where it was allocated, at the high-water mark (memray)", "high_water_mark"),
    ("allocations still live when the child ended (memray)", "live_at_end"),
)


def native_text_lines(native: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for title, key in NATIVE_TABLES:
        rows = native_rows(native, key)
        if rows:
            widths = [max(len(r[i]) for r in rows) for i in range(3)]
            out += ["", title]
            out += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                    for r in rows]
    return out


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
    flame = native.get("flame")
    if isinstance(flame, dict):
        parts.insert(0, flame_svg(flame))
    return "\n".join(parts)


def text_lines(heap: dict[str, Any]) -> list[str]:
    out: list[str] = []
    line = held_by(heap)
    if line:
        out += ["", f"held by    {line}"]
    blocks: list[tuple[str, list[tuple[str, ...]]]] = [
        ("who keeps it alive", list(holder_rows(heap))),
        ("what holds the memory (biggest types)", list(type_rows(heap))),
        ("what grew since the task started (objects gc tracks)", list(growth_rows(heap))),
        ("biggest locals of the running frames", list(local_rows(heap))),
    ]
    for title, rows in blocks:
        if rows:
            out += ["", title]
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            out += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                    for r in rows]
    return out


def html_block(heap: dict[str, Any]) -> str:
    e = html.escape
    parts: list[str] = []
    line = held_by(heap)
    if line:
        parts.append(f"<p><b>held by</b> {e(line)}</p>")
    tables: list[tuple[str, list[str], list[tuple[str, ...]]]] = [
        ("Who keeps it alive", ["size", "what", "kept alive by"], list(holder_rows(heap))),
        ("What holds the memory", ["type", "count", "bytes"], list(type_rows(heap))),
        ("What grew since the task started", ["type", "before", "growth"],
         list(growth_rows(heap))),
        ("Biggest locals", ["name", "frame", "type", "bytes"], list(local_rows(heap))),
    ]
    for title, head, rows in tables:
        if rows:
            cells = "".join(f"<th>{e(h)}</th>" for h in head)
            body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>"
                           for r in rows)
            parts.append(f"<h2>{e(title)}</h2><table><tr>{cells}</tr>{body}</table>")
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
