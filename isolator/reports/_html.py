"""report.html: one self-contained page, readable offline and safe to open.

No CDN, script or external stylesheet: reports are opened on air-gapped machines and
attached to tickets. Every string that came from the task (function name, traceback,
reasons) goes through ``html.escape``: a traceback can quote hostile input.
"""

from __future__ import annotations

import html
import re
import time
from typing import TYPE_CHECKING

from .._units import format_size
from . import _graph
from ._deep import heapy_html, native_html
from ._heap import html_block as heap_html
from ._text import (
    KIND_MEANING,
    cap_text,
    exit_text,
    headline,
    overshoot_text,
    per_task,
    sample_rows,
    wall_text,
    where_lines,
)

if TYPE_CHECKING:
    from ._model import Report

WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 80, 20, 16, 36

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:820px;color:#222}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right}
th{border-bottom:1px solid #999}table.verdict td{text-align:left}
table.verdict td:first-child{color:#555}pre{background:#f6f6f6;padding:8px;overflow:auto}
.peak{font-weight:bold}svg text{font-size:11px;fill:#444}.missing{color:#a40}
.backrefs svg{max-width:100%;height:auto}.notes{color:#333}
svg{max-width:100%;height:auto}body{padding:0 1em}
table.verdict{width:100%;table-layout:fixed}table.verdict td:first-child{width:7em}
table.verdict td{overflow-wrap:anywhere}table.verdict pre{margin:0}
"""
# A size or a time is one word on the page: "92.0 MiB" never breaks into "92.0 / MiB"
# at a narrow width. Text in <pre> (tracebacks) is left as the task wrote it.
_NUMBER_SPACE = re.compile(r"(\d) (B|KiB|MiB|GiB|TiB|s|ms)\b")
_PRE = re.compile(r"(<pre>.*?</pre>)", re.DOTALL)


def _keep_numbers_whole(page: str) -> str:
    return "".join(part if part.startswith("<pre>") else _NUMBER_SPACE.sub("\\1\u00a0\\2", part)
                   for part in _PRE.split(page))


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render(report: Report) -> str:
    title = f"isolator report: {report.function}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>isolator report: {_e(headline(report))}</h1>",
        _verdict(report),
        heap_html(report.sections["heap"]) if isinstance(report.sections.get("heap"), dict)
        else "",
        _graph.html_block(report.sections, *report.graph_svg()),
        heapy_html(report.sections["heap"]) if isinstance(report.sections.get("heap"), dict)
        else "",
        native_html(report.sections["native"])
        if isinstance(report.sections.get("native"), dict) else "",
        "<h2>Memory timeline</h2>",
        chart(report),
        _samples(report),
        "<h2>Traceback</h2>",
        f"<pre>{_e(report.traceback)}</pre>" if report.traceback else
        f'<p class="missing">missing: {_e(report.missing.get("traceback", "not recorded"))}</p>',
        "<h2>Missing parts</h2>",
        _missing(report),
        "</body></html>",
    ]
    return _keep_numbers_whole("\n".join(parts) + "\n")


def _verdict(report: Report) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.started_at))
    rows = [
        ("function", report.function),
        ("kind", f"{report.kind}: {KIND_MEANING.get(report.kind, 'unknown kind')}"),
        ("cap", cap_text(report)),
        ("soft limit", format_size(report.soft_limit) if report.soft_limit else "not recorded"),
        ("peak", f"{format_size(report.peak)} ({overshoot_text(report)})"),
        ("wall time", wall_text(report, started)),
        ("process", f"pid {report.pid if report.pid is not None else '?'}, {exit_text(report)}"),
    ]
    worker = report.sections.get("worker")
    if isinstance(worker, dict):  # a Dask worker ran the task
        rows.append(("worker", f"{worker.get('address')} (host {worker.get('host')}, "
                               f"pid {worker.get('pid')})"))
    body = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
    where = where_lines(report.traceback)
    if where:
        body += f"<tr><td>where</td><td><pre>{_e(chr(10).join(where))}</pre></td></tr>"
    return f'<table class="verdict">{body}</table>'


def chart(report: Report) -> str:
    """An inline SVG line chart of the timeline with the cap and soft limit as lines."""
    points = report.timeline
    if not points:
        why = report.missing.get("timeline", "no samples")
        return f'<p class="missing">timeline missing: {_e(why)}</p>'
    t_max = max(points[-1][0], 1e-3)
    y_max = max([b for _, b in points] + [report.limit, report.soft_limit or 0, 1]) * 1.08
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + t / t_max * plot_w

    def y(b: float) -> float:
        return TOP + plot_h - b / y_max * plot_h

    line = " ".join(f"{x(t):.1f},{y(b):.1f}" for t, b in points)
    label = (f"memory after each of {t_max:.0f} tasks" if per_task(report)
             else f"memory over {t_max:.2f} s") + f", peak {format_size(report.peak)}"
    out = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
         f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{_e(label)}">'),
        f"<title>{_e(label)}</title>",
        (f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fcfcfc" '
         'stroke="#bbb"/>'),
    ]
    for i in range(5):  # y axis: five evenly spaced sizes
        value = y_max * i / 4
        out.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
                   f"{_e(format_size(value))}</text>")
    for i in range(3):  # x axis: start, middle, end
        t = t_max * i / 2
        mark = f"task {t:.0f}" if per_task(report) else f"{t:.2f} s"
        out.append(f'<text x="{x(t):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                   f"{mark}</text>")
    # The cap is labelled at the right end, the soft limit at the left, so the two
    # labels never overlap however close the limits are.
    limits = [("cap", report.limit, "#c00", WIDTH - RIGHT - 4, "end")]
    if report.soft_limit:
        limits.append(("soft limit", report.soft_limit, "#e80", LEFT + 4, "start"))
    for name, value, color, label_x, anchor in limits:
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" '
                   f'y2="{y(value):.1f}" stroke="{color}" stroke-dasharray="6 4"/>')
        out.append(f'<text x="{label_x}" y="{y(value) - 4:.1f}" text-anchor="{anchor}" '
                   f'style="fill:{color}">{_e(name)} {_e(format_size(value))}</text>')
    out.append(f'<polyline points="{line}" fill="none" stroke="#2563eb" stroke-width="1.5"/>')
    out.append("</svg>")
    return "\n".join(out)


def _samples(report: Report) -> str:
    rows = sample_rows(report)
    if not rows:
        return ""
    digits = 0 if per_task(report) else 3
    body = "".join(
        f'<tr{" class=peak" if peak else ""}><td>{t:.{digits}f}</td>'
        f"<td>{_e(format_size(b))}</td>"
        f"<td>{100 * b / report.limit:.0f}%</td><td>{'max' if peak else ''}</td></tr>"
        if report.limit else f"<tr><td>{t:.{digits}f}</td><td>{_e(format_size(b))}</td></tr>"
        for t, b, peak in rows
    )
    first = "task" if per_task(report) else "t (s)"
    return (f"<table><tr><th>{first}</th><th>memory</th><th>of cap</th><th></th></tr>"
            f"{body}</table>")


def _missing(report: Report) -> str:
    if not report.missing:
        return "<p>none</p>"
    items = "".join(f"<li><b>{_e(name)}</b>: {_e(why)}</li>"
                    for name, why in sorted(report.missing.items()))
    return f'<ul class="missing">{items}</ul>'
