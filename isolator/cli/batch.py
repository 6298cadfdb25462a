"""``isolator map``: a function over every line of a JSON-lines file, in isolated
children, with a journal that makes a rerun resume where the last run stopped.

Each input line is one JSON value, passed as the function's argument. Each output line
is ``{"index": i, "result": ...}`` or ``{"index": i, "error": {...}}``; a line that is
not JSON becomes an error row, never the end of the batch.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from .._errors import MemoryLimitExceeded
from .journal import Journal, JournalError, rebuild


class BatchError(Exception):
    """Bad input for a batch; one line for the user, exit status 2."""


def default_journal(out: str) -> str:
    """Where the journal lives when ``--journal`` is not given: next to the output."""
    return f"{out}.journal.sqlite"


def open_batch(function: str, input_path: str, out: str, journal_path: str) -> Journal:
    if not os.path.isfile(input_path):
        raise BatchError(f"no input file at {input_path}")
    identity = {"function": function, "input": os.path.abspath(input_path),
                "out": os.path.abspath(out)}
    if os.path.exists(out) and not os.path.exists(journal_path):
        raise BatchError(f"{out} exists and no journal says it is this batch's "
                         f"({journal_path}); choose another --out (nothing was overwritten)")
    try:
        journal = Journal(journal_path, identity)
    except JournalError as exc:
        raise BatchError(str(exc)) from exc
    rebuild(out, journal)
    return journal


def _inputs(path: str) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8") as fh:
        for index, line in enumerate(fh):
            yield index, line.rstrip("\n")


def _error_row(index: int, exc: BaseException) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, MemoryLimitExceeded):
        error.update(kind=exc.kind, peak=exc.peak, limit=exc.limit)
        path = getattr(exc.report, "path", None)
        if path:
            error["report"] = path
    return {"index": index, "error": error}


def count_inputs(path: str) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def run_batch(fn: Any, input_path: str, out: str, journal: Journal, executor: Any,
              window: int, view: Any) -> int:
    """Run every unfinished input, telling ``view``; returns how many were already done."""
    finished = journal.done()
    pending: dict[Future[Any], int] = {}
    begun: dict[int, float] = {}
    with open(out, "a", encoding="utf-8") as sink:
        def finish(index: int, row: dict[str, Any]) -> None:
            text = json.dumps(row, default=repr)
            journal.record(index, text)  # committed first: the output is rebuilt from it
            sink.write(text + "\n")
            sink.flush()
            view.finished(index, row, time.monotonic() - begun.pop(index, time.monotonic()))

        def drain(block_until: int) -> None:
            while len(pending) > block_until:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    exc = future.exception()
                    finish(index, _error_row(index, exc) if exc is not None
                           else {"index": index, "result": future.result()})

        for index, line in _inputs(input_path):
            if index in finished:
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                finish(index, {"index": index, "error": {
                    "type": "InputError", "message": f"line {index + 1} is not JSON: {exc.msg}"}})
                continue
            begun[index] = time.monotonic()
            pending[executor.submit(fn, value)] = index
            drain(window)
        drain(0)
    return len(finished)
