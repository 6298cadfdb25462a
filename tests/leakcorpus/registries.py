"""Leaks held where the interpreter keeps things: atexit, sys hooks, contexts, threads."""

from __future__ import annotations

import atexit
import contextvars
import itertools
import queue
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ._data import Tally, footprint, line, records

TALLY = Tally()

# -- one atexit flush per output file: thousands of small buffers held by closures -------


def open_sink(path: str) -> Callable[[str], None]:
    pending: list[str] = []

    def flush() -> None:
        with open(path, "a") as out:
            out.writelines(pending)

    atexit.register(flush)  # "nothing is lost if the job stops early"
    TALLY.add("atexit_sinks", sys.getsizeof(path) + 2 * 56 + 160)  # path, cells, function
    return pending.append


def atexit_sinks() -> None:
    source = records()
    for n in itertools.count():
        write = open_sink(f"/tmp/etl-out/part-{n:06d}.csv")
        lines = [line(row) for row in itertools.islice(source, 100)]
        for text in lines:
            write(text)
        TALLY.add("atexit_sinks", footprint(lines))


# -- a crash reporter installed as sys.excepthook, collecting breadcrumbs ---------------


class CrashReporter:
    def __init__(self, previous: Any) -> None:
        self.previous = previous
        self.breadcrumbs: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: type[BaseException], value: BaseException,
                 tb: TracebackType | None) -> None:
        for message, _ in self.breadcrumbs[-20:]:
            print(message, file=sys.stderr)
        self.previous(kind, value, tb)


def breadcrumb(message: str, **data: Any) -> None:
    hook = sys.excepthook
    if isinstance(hook, CrashReporter):
        hook.breadcrumbs.append((message, data))


def excepthook_breadcrumbs() -> None:
    sys.excepthook = CrashReporter(sys.excepthook)
    for row in records():
        breadcrumb("row loaded", row=row)
        TALLY.add("excepthook_breadcrumbs", sys.getsizeof(("", {})) + footprint({"row": row}))


# -- a context variable holding the current batch, which is never reset ------------------

_BATCH: contextvars.ContextVar[list[dict[str, Any]]] = contextvars.ContextVar("batch")


def current_batch() -> list[dict[str, Any]]:
    try:
        return _BATCH.get()
    except LookupError:
        batch: list[dict[str, Any]] = []
        _BATCH.set(batch)
        return batch


def contextvar_batch() -> None:
    for row in records():
        current_batch().append(row)
        TALLY.add("contextvar_batch", footprint(row))


# -- a per-thread insert buffer in a threading.local, flushed "every 1000 rows" (never) --

_LOCAL = threading.local()


def _insert_buffer() -> list[dict[str, Any]]:
    if not hasattr(_LOCAL, "rows"):
        _LOCAL.rows = []
    rows: list[dict[str, Any]] = _LOCAL.rows
    return rows


def thread_local_rows() -> None:
    for row in records():
        _insert_buffer().append(row)
        TALLY.add("thread_local_rows", footprint(row))


# -- a statistics thread that keeps every sample it is sent ------------------------------


def collect_stats(inbox: queue.Queue[dict[str, Any] | None]) -> None:
    samples: list[dict[str, Any]] = []
    while True:
        item = inbox.get()
        if item is None:
            break
        samples.append(item)  # summarized "at the end"
        TALLY.add("worker_thread_frame", footprint(item))


def worker_thread_frame() -> None:
    inbox: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=1000)
    threading.Thread(target=collect_stats, args=(inbox,), name="stats", daemon=True).start()
    for row in records():
        inbox.put(row)


def held(name: str) -> int:
    """What the scenario ``name`` holds now, in bytes."""
    if name == "excepthook_breadcrumbs":
        return TALLY.get(name) + sys.getsizeof(sys.excepthook.breadcrumbs)  # type: ignore[attr-defined]
    if name == "contextvar_batch":
        return TALLY.get(name) + sys.getsizeof(_BATCH.get())
    if name == "thread_local_rows":
        return TALLY.get(name) + sys.getsizeof(_LOCAL.rows)
    return TALLY.get(name)
