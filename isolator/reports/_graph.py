"""The holders' back-reference graph: the child drew it with objgraph as Graphviz source
(``heap.backrefs.dot``); the report folder gets it as ``backrefs.dot`` and report.html
inlines it as SVG when Graphviz's ``dot`` is installed. Without ``dot`` the page says so
and links the file, which any Graphviz viewer opens. Nothing is fetched: the SVG is
made here, offline, and put in the page as markup (graphviz escapes the labels)."""

from __future__ import annotations

import html
import shutil
import subprocess
from typing import Any

DOT_FILE = "backrefs.dot"
DOT_TIMEOUT = 20.0  # seconds for ``dot -Tsvg`` on a graph of a few dozen nodes


def dot_source(sections: dict[str, Any]) -> str | None:
    """The graph's Graphviz source, if the child drew one."""
    heap = sections.get("heap")
    backrefs = heap.get("backrefs") if isinstance(heap, dict) else None
    source = backrefs.get("dot") if isinstance(backrefs, dict) else None
    return source if isinstance(source, str) and source.startswith("digraph") else None


def find_dot() -> str | None:
    """Graphviz's ``dot`` on the PATH, or None."""
    return shutil.which("dot")


def to_svg(source: str) -> tuple[str | None, str | None]:
    """(the SVG element, None) or (None, why it could not be made)."""
    dot = find_dot()
    if dot is None:
        return None, "Graphviz's dot is not installed"
    try:
        done = subprocess.run([dot, "-Tsvg"], input=source, capture_output=True, text=True,
                              timeout=DOT_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"dot failed: {exc}"
    start = done.stdout.find("<svg")
    if done.returncode != 0 or start < 0:
        return None, f"dot failed (exit {done.returncode}): {done.stderr.strip()[:200]}"
    return done.stdout[start:].strip(), None


def text_lines(sections: dict[str, Any]) -> list[str]:
    heap = sections.get("heap")
    backrefs = heap.get("backrefs") if isinstance(heap, dict) else None
    if not isinstance(backrefs, dict) or dot_source(sections) is None:
        return []
    holders = ", ".join(str(name) for name in backrefs.get("holders", []))
    return ["", f"what refers to the holders ({holders}): {backrefs.get('nodes', '?')} objects, "
                f"drawn by {backrefs.get('drawn_by', 'objgraph')} in {DOT_FILE} "
                f"(dot -Tsvg {DOT_FILE} > backrefs.svg)"]


def html_block(sections: dict[str, Any], svg: str | None, why: str | None) -> str:
    """The graph as inline SVG, or a line saying why not, with a link to the .dot file."""
    source = dot_source(sections)
    if source is None:
        return ""
    title = "<h2>What refers to the holders (objgraph)</h2>"
    link = f'<a href="{DOT_FILE}">{DOT_FILE}</a>'
    if svg is not None:
        return f'{title}<div class="backrefs">{svg}</div><p>Graphviz source: {link}</p>'
    return (f'{title}<p class="missing">The graph is not drawn here: '
            f"{html.escape(why or 'no SVG')}. Its Graphviz source is in {link} "
            f"(open it with xdot, or run <code>dot -Tsvg {DOT_FILE}</code>).</p>")
