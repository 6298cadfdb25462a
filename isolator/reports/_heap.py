"""The heap section of a report (what the child found when it crossed its cap), in the
order a reader needs it: who keeps the memory alive and how much of it that explains,
garbage nobody holds, what it is, what grew, which locals were big. Shared by the text
and HTML renderers; every value is optional (older reports lack the newer fields)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from .._units import format_size

ROWS = 8


def _size(value: object) -> str:
    return format_size(value) if isinstance(value, (int, float)) else "?"


def _share(part: object, whole: object) -> str:
    if isinstance(part, (int, float)) and isinstance(whole, (int, float)) and whole > 0:
        return f"{100 * part / whole:.0f}%"
    return "?"


def held_by(heap: dict[str, Any]) -> str | None:
    """One line: Python objects or native allocations, with the numbers."""
    py = heap.get("python_heap")
    if not isinstance(py, dict):
        return None
    share = py.get("python_share")
    percent = f" ({share:.0%} of RSS)" if isinstance(share, float) else ""
    estimated = " (estimated)" if py.get("estimated") else ""
    return (f"{py.get('held_by', '?')}: Python objects {_size(py.get('python_bytes'))}"
            f"{percent}{estimated}, native {_size(py.get('native_bytes'))}, "
            f"RSS {_size(py.get('rss_bytes'))}")


def holder_rows(heap: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(retained size, what, kept alive by) for the biggest holders."""
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
        if holder.get("count"):
            what = f"{holder['count']} x {what}"
        size = _size(holder.get("bytes"))
        if (holder.get("retained") or {}).get("estimated"):
            size = "~" + size
        rows.append((size, what, str(holder.get("path", "?"))))
    return rows


def holder_notes(heap: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, note) for what the sizes alone do not say (numpy bases, C buffers)."""
    found = []
    for holder in ((heap.get("holders") or {}).get("holders") or [])[:ROWS]:
        for note in holder.get("notes") or []:
            found.append((str(holder.get("path", "?")), str(note)))
    return found


def explained_lines(heap: dict[str, Any]) -> list[str]:
    """How much of the heap the named holders explain, and what was not walked."""
    section = heap.get("holders") or {}
    explained = section.get("explained")
    out = []
    if isinstance(explained, dict) and isinstance(explained.get("bytes"), (int, float)):
        line = (f"the holders above retain {_size(explained['bytes'])}: "
                f"{_share(explained['bytes'], explained.get('python_bytes'))} of the "
                f"{_size(explained.get('python_bytes'))} Python heap")
        if explained.get("growth_bytes"):
            line += (f", {_share(explained['bytes'], explained['growth_bytes'])} of the "
                     f"{_size(explained['growth_bytes'])} it grew since the task started")
        out.append(line)
    roots = section.get("roots") or {}
    if roots.get("not_walked"):
        out.append(str(roots["not_walked"]))
    elif roots.get("roots"):
        out.append(f"all {roots['roots']} named roots were walked (modules, classes, frames, "
                   f"registries), best names first")
    if section.get("partial"):
        out.append(f"the search up from the biggest objects stopped early: {section['partial']}")
    return out


def garbage_lines(heap: dict[str, Any]) -> list[str]:
    """Unreachable reference cycles: how much, of what, and why nothing freed them."""
    garbage = heap.get("garbage")
    if not isinstance(garbage, dict) or not garbage.get("bytes"):
        return []
    why = ("gc was disabled in the task (gc.disable()), so nothing collected them"
           if garbage.get("gc_enabled") is False else
           "gc is enabled, but had not collected them yet (a growing heap postpones full "
           "collections)")
    out = [f"{_size(garbage['bytes'])} in {garbage.get('objects', '?')} objects of "
           f"reference cycles no code can reach: {why}; this report's collection freed them"]
    for row in (garbage.get("types") or [])[:5]:
        out.append(f"  {row.get('type', '?')}  {row.get('count', '?')}  {_size(row.get('bytes'))}")
    return out


def type_rows(heap: dict[str, Any]) -> list[tuple[str, str, str]]:
    section = heap.get("types") or {}
    return [(str(t.get("type", "?")), str(t.get("count", "?")), _size(t.get("bytes")))
            for t in section.get("top", [])[:ROWS]]


def growth_rows(heap: dict[str, Any]) -> list[tuple[str, str, str]]:
    section = heap.get("growth") or {}
    rows = []
    for row in section.get("top", [])[:ROWS]:
        grew = row.get("bytes_delta")
        size = f"+{_size(grew)}" if isinstance(grew, (int, float)) else ""
        delta = row.get("delta", "?")
        count = f"{delta:+d}" if isinstance(delta, int) else f"+{delta}"
        rows.append((str(row.get("type", "?")), count, size))
    return rows


def local_rows(heap: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    section = heap.get("locals") or {}
    return [(str(t.get("name", "?")), str(t.get("frame", "?")),
             str(t.get("type", "?")).removeprefix("builtins."), _size(t.get("bytes")))
            for t in section.get("top", [])[:ROWS]]


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def text_lines(heap: dict[str, Any]) -> list[str]:
    out: list[str] = []
    line = held_by(heap)
    if line:
        out += ["", f"held by    {line}"]
    holders = list(holder_rows(heap))
    if holders:
        out += ["", "who keeps it alive (retained size: what each holds)", *_table(holders)]
        out += [f"  note: {path}: {note}" for path, note in holder_notes(heap)]
        out += [f"  {line}" for line in explained_lines(heap)]
    garbage = garbage_lines(heap)
    if garbage:
        out += ["", "garbage: unreachable reference cycles", *(f"  {g}" for g in garbage)]
    blocks: list[tuple[str, list[tuple[str, ...]]]] = [
        ("what holds the memory (biggest types)", list(type_rows(heap))),
        ("what grew since the task started (bytes, untracked objects included)",
         list(growth_rows(heap))),
        ("biggest locals of the running frames", list(local_rows(heap))),
    ]
    for title, rows in blocks:
        if rows:
            out += ["", title, *_table(rows)]
    return out


def _html_table(title: str, head: list[str], rows: Sequence[tuple[str, ...]]) -> str:
    e = html.escape
    cells = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<h2>{e(title)}</h2><table><tr>{cells}</tr>{body}</table>"


def html_block(heap: dict[str, Any]) -> str:
    e = html.escape
    parts: list[str] = []
    line = held_by(heap)
    if line:
        parts.append(f"<p><b>held by</b> {e(line)}</p>")
    holders = list(holder_rows(heap))
    if holders:
        parts.append(_html_table("Who keeps it alive",
                                 ["retained", "what", "kept alive by"], holders))
        notes = "".join(f"<li><code>{e(path)}</code>: {e(note)}</li>"
                        for path, note in holder_notes(heap))
        if notes:
            parts.append(f'<ul class="notes">{notes}</ul>')
        parts.extend(f"<p>{e(line)}</p>" for line in explained_lines(heap))
    garbage = garbage_lines(heap)
    if garbage:
        items = "".join(f"<li>{e(g.strip())}</li>" for g in garbage[1:])
        parts.append(f"<h2>Garbage: unreachable reference cycles</h2><p>{e(garbage[0])}</p>"
                     f"<ul>{items}</ul>")
    tables: list[tuple[str, list[str], list[tuple[str, ...]]]] = [
        ("What holds the memory", ["type", "count", "bytes"], list(type_rows(heap))),
        ("What grew since the task started", ["type", "objects", "bytes"],
         list(growth_rows(heap))),
        ("Biggest locals", ["name", "frame", "type", "bytes"], list(local_rows(heap))),
    ]
    parts.extend(_html_table(title, head, rows) for title, head, rows in tables if rows)
    return "\n".join(parts)
