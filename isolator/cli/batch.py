"""``isolator map``: a function over every line of a JSON-lines file, in isolated
children, with a journal that makes a rerun resume where the last run stopped.

Each input line is one JSON value, passed as the function's argument; its index is its
line number less one. A blank line is not an input (so a file's trailing newline, or an
empty last line, adds none). Each output line is ``{"index": i, "result": ...}`` or
``{"index": i, "error": {...}}``; a line that is not JSON becomes an error row, never the
end of the batch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import IO, Any

from .._errors import MemoryLimitExceeded, RemoteTraceback, TaskTimeout
from .files import UnsafePath, check_folder, refuse_link
from .journal import Journal, JournalError, rebuild


class BatchError(Exception):
    """Bad input for a batch; one line for the user, exit status 2."""


def default_journal(out: str) -> str:
    """Where the journal lives when ``--journal`` is not given: next to the output."""
    return f"{out}.journal.sqlite"


def open_batch(function: str, input_path: str, out: str, journal_path: str,
               allow_shared: bool = False) -> tuple[Journal, IO[str]]:
    """The batch's journal and its output, rebuilt from it and open for appending."""
    if not os.path.isfile(input_path):
        raise BatchError(f"no input file at {input_path}")
    identity = {"function": function, "input": os.path.abspath(input_path),
                "out": os.path.abspath(out)}
    try:
        for path in (out, journal_path):
            check_folder(path, allow_shared)
            refuse_link(path)
        exists = os.path.exists(out)
        if exists and not os.path.exists(journal_path):
            raise BatchError(f"{out} exists and no journal says it is this batch's "
                             f"({journal_path}); choose another --out (nothing was overwritten)")
        journal = Journal(journal_path, identity, output=out if exists else None)
    except (JournalError, UnsafePath) as exc:
        raise BatchError(str(exc)) from exc
    try:
        return journal, rebuild(out, journal)
    except (JournalError, UnsafePath, OSError) as exc:
        journal.close()
        raise BatchError(f"cannot write {out}: {exc}") from exc


def _inputs(path: str) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8") as fh:
        for index, line in enumerate(fh):
            if line.strip():
                yield index, line.rstrip("\n")


def _error_row(index: int, exc: BaseException) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc.__cause__, RemoteTraceback):  # where it failed, as the child said
        error["traceback"] = exc.__cause__.tb
    if isinstance(exc, MemoryLimitExceeded):
        error.update(kind=exc.kind, peak=exc.peak, limit=exc.limit)
        path = getattr(exc.report, "path", None)
        if path:
            error["report"] = path
    return {"index": index, "error": error}


def _seconds_of(exc: BaseException) -> float | None:
    """How long a failed input ran, where the failure says it (a breach's report, a
    timeout); None when it does not."""
    if isinstance(exc, TaskTimeout):
        return exc.timeout
    wall = getattr(getattr(exc, "report", None), "wall_time", None)
    return float(wall) if isinstance(wall, (int, float)) and wall > 0 else None


def count_inputs(path: str) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def run_batch(fn: Any, input_path: str, sink: IO[str], journal: Journal, executor: Any,
              window: int, view: Any) -> int:
    """Run every unfinished input, telling ``view``; returns how many were already done.
    Each row goes to the journal first, then to ``sink`` (the output file)."""
    from .._api.decorator import function_name
    from .._child.calls import timed

    name = function_name(fn)
    finished = journal.done()
    pending: dict[Future[Any], int] = {}

    def finish(index: int, row: dict[str, Any], seconds: float | None) -> None:
        text = json.dumps(row, default=repr)
        journal.record(index, text)  # committed first: the output is rebuilt from it
        sink.write(text + "\n")
        sink.flush()
        view.finished(index, row, seconds)

    def drain(block_until: int) -> None:
        while len(pending) > block_until:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                exc = future.exception()
                if exc is not None:
                    finish(index, _error_row(index, exc), _seconds_of(exc))
                else:
                    result, seconds = future.result()
                    finish(index, {"index": index, "result": result}, seconds)

    for index, line in _inputs(input_path):
        if index in finished:
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            finish(index, {"index": index, "error": {
                "type": "InputError", "message": f"line {index + 1} is not JSON: {exc.msg}"}},
                None)
            continue
        # Timed in the child: the run time, not the time the input waited for a child.
        # Named by the user's function, so that reports and the live view say it.
        pending[executor._submit(timed, (fn, value), {}, name)] = index
        drain(window)
    drain(0)
    return len(finished)


def journal_totals(journal: Journal) -> dict[str, Any]:
    """What the whole journal says: ok and failed rows (by kind), and report paths."""
    ok, failed, reports = 0, dict[str, int](), list[str]()
    for text in journal.rows():
        error = json.loads(text).get("error")
        if error is None:
            ok += 1
            continue
        kind = error.get("kind")
        label = f"{error['type']}:{kind}" if kind else str(error["type"])
        failed[label] = failed.get(label, 0) + 1
        if error.get("report"):
            reports.append(str(error["report"]))
    return {"ok": ok, "failed": sum(failed.values()), "failed_by_kind": failed,
            "reports": reports}
