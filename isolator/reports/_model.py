"""The post-mortem report of one task that blew its memory cap.

A report is a verdict (what happened, in numbers), a memory timeline, and named
*sections* that may be present or missing. A missing section always says why, so a
reader can tell "nothing to see" from "could not look". Later versions add sections
(heap forensics, for one) without changing the verdict or the file layout; a reader
keeps sections it does not know, so a round trip never loses data.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from . import _deep, _graph, _html, _store, _text

#: The ``schema`` field of every report's JSON document.
SCHEMA = "isolator.report"
#: The ``version`` field; a reader refuses any other (``ReportFormatError``).
SCHEMA_VERSION = 1

# Tracebacks of deep recursion run to thousands of lines; the frames nearest the
# failure are the ones that explain it, so the report keeps the tail.
#: How many lines of the child's traceback a report keeps (the last ones).
MAX_TRACEBACK_LINES = 200
# The supervisor already thins its timeline to 2000 points; this bound protects
# reports built from other sources (and keeps report.html small).
MAX_TIMELINE_POINTS = 5000

_WHY_NO_TRACEBACK = {
    "hard": "the supervisor killed the process tree (SIGKILL) at the cap; "
            "the child could not format a traceback",
    "kernel-oom": "the kernel's OOM killer ended the child; it could not format a traceback",
    "rlimit": "the child crashed when an allocation was refused; no traceback was sent",
    "soft": "the child raised at its soft limit but no traceback came back with it",
}


class ReportFormatError(ValueError):
    """The data is not an isolator report this version can read (a ValueError)."""


class Report:
    """What is known about one task that exceeded its memory cap.

    Build one from the facts of a ``MemoryLimitExceeded`` (see :meth:`from_exception`),
    print it (``str(report)``), render it (:meth:`to_html`) or save it (:meth:`write`).
    """

    def __init__(
        self, *, function: str, kind: str, limit: int, peak: int, pid: int | None,
        started_at: float, wall_time: float, timeline: list[tuple[float, int]],
        traceback: str | None, exitcode: int | None, signal: str | None,
        missing: dict[str, str] | None = None, soft_limit: int | None = None,
        sections: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        # started_at is epoch seconds; wall_time seconds; limit, peak and the
        # timeline's samples bytes; missing maps a section's name to why it is absent.
        self.function = str(function)
        self.kind = str(kind)
        self.limit = int(limit)
        self.peak = int(peak)
        self.pid = None if pid is None else int(pid)
        self.started_at = float(started_at)
        self.wall_time = float(wall_time)
        self.exitcode = None if exitcode is None else int(exitcode)
        self.signal = None if signal is None else str(signal)
        self.soft_limit = None if soft_limit is None else int(soft_limit)
        self.timeline = _thin([(float(t), int(b)) for t, b in timeline])
        self.sections: dict[str, dict[str, Any]] = dict(sections or {})
        self.missing: dict[str, str] = dict(missing or {})
        if traceback is not None:
            self.sections["traceback"] = _traceback_section(traceback)
        self._explain_gaps()
        self.path: str | None = None
        self._svg: tuple[str | None, str | None] | None = None  # the graph, drawn once

    def _explain_gaps(self) -> None:
        # Every absent part gets a reason, unless the caller already gave a better one.
        if not self.timeline:
            self.missing.setdefault("timeline", "no memory samples were recorded for this task")
        if "traceback" not in self.sections:
            self.missing.setdefault("traceback", _WHY_NO_TRACEBACK.get(self.kind, "none was sent"))
        for name in self.sections:
            self.missing.pop(name, None)
        if self.timeline:
            self.missing.pop("timeline", None)

    def complete(self) -> None:
        """Add the facts derived from several parts (sections are set after the report
        is made): how much of the memory memray's sites explain, from its own peak and
        the supervisor's samples, so the report can say what memray could not see."""
        native = self.sections.get("native")
        if isinstance(native, dict) and "coverage" not in native:
            found = _deep.coverage(native, self.timeline, self.peak)
            if found is not None:
                native["coverage"] = found

    @classmethod
    def from_exception(
        cls, exc: BaseException, *, function: str, started_at: float, wall_time: float,
        soft_limit: int | None = None,
    ) -> Report:
        """A report from a ``MemoryLimitExceeded`` and the times measured around the call."""
        # A RemoteTraceback when the child raised: the text as its forensics level keeps it.
        tb = getattr(exc.__cause__, "report_tb", None) or getattr(exc.__cause__, "tb", None)
        timeline = getattr(exc, "timeline", None) or []
        missing: dict[str, str] = {}
        if not timeline:
            missing["timeline"] = ("the exception carries no memory timeline (none was "
                                   "attached, or no sample was taken)")
        return cls(
            function=function, kind=getattr(exc, "kind", "unknown"),
            limit=getattr(exc, "limit", 0), peak=getattr(exc, "peak", 0),
            pid=getattr(exc, "pid", None), started_at=started_at, wall_time=wall_time,
            timeline=list(timeline), traceback=tb if isinstance(tb, str) else None,
            exitcode=getattr(exc, "exitcode", None), signal=getattr(exc, "signal", None),
            missing=missing, soft_limit=soft_limit,
        )

    # -- derived facts ------------------------------------------------------------------

    @property
    def traceback(self) -> str | None:
        """The (possibly truncated) traceback of the child, or None."""
        section = self.sections.get("traceback")
        return None if section is None else str(section["text"])

    @property
    def overshoot(self) -> int:
        """``peak - limit``: negative when the soft limit stopped the task below the cap."""
        return self.peak - self.limit

    @property
    def short_name(self) -> str:
        """The last dotted part of the function name (``pkg.mod.Cls.run`` -> ``run``)."""
        return self.function.rsplit(".", 1)[-1] or "task"

    # -- serialisation ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict; :meth:`from_dict` reads it back."""
        self.complete()
        return {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "verdict": {
                "function": self.function, "kind": self.kind, "limit": self.limit,
                "soft_limit": self.soft_limit, "peak": self.peak, "pid": self.pid,
                "started_at": self.started_at, "wall_time": self.wall_time,
                "exitcode": self.exitcode, "signal": self.signal,
            },
            "timeline": [[t, b] for t, b in self.timeline],
            "sections": json.loads(json.dumps(self.sections)),  # a deep, JSON-clean copy
            "missing": dict(self.missing),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Rebuild a report; :class:`ReportFormatError` (a ValueError) saying what is wrong."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise ReportFormatError(
                f"not an isolator report: schema is {found!r}, expected {SCHEMA!r}")
        version = data.get("version")
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise ReportFormatError(
                f"unsupported isolator report version {version!r}: this isolator reads "
                f"version {SCHEMA_VERSION} (a newer isolator may have written it)"
            )
        verdict = _require(data, "verdict", dict)
        timeline = _require(data, "timeline", list)
        sections = _require(data, "sections", dict)
        missing = _require(data, "missing", dict)
        if not all(isinstance(body, dict) for body in sections.values()):
            raise ReportFormatError("malformed isolator report: every section should be an object")
        if not isinstance(sections.get("traceback", {"text": ""}).get("text"), str):
            raise ReportFormatError("malformed isolator report: sections.traceback has no text")
        try:
            points = [(float(t), int(b)) for t, b in timeline]
            facts = {k: verdict[k] for k in ("function", "kind", "limit", "peak", "pid",
                                             "started_at", "wall_time", "exitcode", "signal")}
            report = cls(**facts, soft_limit=verdict.get("soft_limit"), timeline=points,
                         traceback=None, missing={str(k): str(v) for k, v in missing.items()},
                         sections=sections)
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportFormatError(
                f"malformed isolator report: {type(exc).__name__}: {exc}"
            ) from exc
        return report

    def __reduce__(self) -> tuple[Any, ...]:
        # Through the JSON form, so a pickled report is exactly what report.json holds.
        return (_rebuild, (self.to_dict(), self.path))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Report) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        return (f"<Report {self.function} kind={self.kind} peak={self.peak} "
                f"limit={self.limit} path={self.path!r}>")

    def __str__(self) -> str:
        self.complete()
        return _text.render(self)

    def to_html(self) -> str:
        """One self-contained HTML page (inline CSS and SVG; nothing is fetched)."""
        self.complete()
        return _html.render(self)

    def graph_svg(self) -> tuple[str | None, str | None]:
        """The holders' back-reference graph as SVG (made once, with Graphviz's dot),
        or None and why not."""
        if self._svg is None:
            source = _graph.dot_source(self.sections)
            self._svg = (None, "no graph was drawn") if source is None else \
                _graph.to_svg(source)
        return self._svg

    def write(self, directory: str) -> str:
        """Save report.json, report.txt and report.html in a new private subdirectory,
        and ``backrefs.dot`` when the report has a back-reference graph.

        ``directory`` (and missing parents) is created with mode 0700; the report goes
        into ``<YYYYmmdd-HHMMSS>-<function>-<pid>`` (0700), its files are 0600. Returns
        that subdirectory, also kept in :attr:`path`.
        """
        files = {"report.txt": str(self), "report.html": self.to_html(),
                 "report.json": json.dumps(self.to_dict(), indent=2) + "\n"}
        source = _graph.dot_source(self.sections)
        if source is not None:
            files[_graph.DOT_FILE] = source
        self.path = _store.write(
            directory, _store.entry_name(self.started_at, self.short_name, self.pid), files)
        return self.path


def load(path: str | os.PathLike[str]) -> Report:
    """Read a report back from its directory or from its report.json."""
    directory, data = _store.read_json(os.fspath(path))
    return _rebuild(data, directory)


def _rebuild(data: dict[str, Any], path: str | None) -> Report:
    report = Report.from_dict(data)
    report.path = path
    return report


def _require(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise ReportFormatError(f"malformed isolator report: {key!r} should be a "
                                f"{kind.__name__}, found {type(value).__name__}")
    return value


def _traceback_section(text: str) -> dict[str, Any]:
    lines = text.splitlines()
    cut = max(0, len(lines) - MAX_TRACEBACK_LINES)
    note = f"... ({cut} earlier lines cut; a report keeps the last {MAX_TRACEBACK_LINES})"
    kept = [note, *lines[cut:]] if cut else lines
    return {"text": "\n".join(kept), "lines_cut": cut}


def _thin(points: list[tuple[float, int]]) -> list[tuple[float, int]]:
    points = [(t, b) for t, b in points if math.isfinite(t)]
    # A sample of 0 bytes is the sampler reading a process that is gone (a zombie has
    # no RSS): a running task never holds nothing, so trailing zeros are not memory.
    while points and points[-1][1] <= 0:
        points.pop()
    if len(points) <= MAX_TIMELINE_POINTS:
        return points
    # Evenly spaced samples, plus the peak, which is the one sample a reader needs.
    step = len(points) / MAX_TIMELINE_POINTS
    keep = {int(i * step) for i in range(MAX_TIMELINE_POINTS)} | {len(points) - 1}
    keep.add(max(range(len(points)), key=lambda i: points[i][1]))
    return [points[i] for i in sorted(keep)]
