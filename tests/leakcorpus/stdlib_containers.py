"""Leaks inside the standard library's containers, held by a name in the user's code."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import itertools
import logging
import logging.handlers
import queue
import sys
import weakref
from typing import Any

from ._data import Tally, footprint, line, records

TALLY = Tally()

# -- a queue.Queue filled for an uploader thread that was never started ------------------

_PENDING: queue.Queue[dict[str, Any]] = queue.Queue()


def queue_never_drained() -> None:
    for row in records():
        row["note"] = row["note"].upper()
        _PENDING.put(row)
        TALLY.add("queue_never_drained", footprint(row))


# -- a logging handler that buffers every record until an error that never comes -------

log = logging.getLogger("etl.load")


def _configure_logging() -> None:
    # Keep the recent records to dump them if the load fails.
    log.addHandler(logging.handlers.MemoryHandler(capacity=10**9, flushLevel=logging.ERROR))
    log.setLevel(logging.DEBUG)
    log.propagate = False


def logging_buffer() -> None:
    _configure_logging()
    for row in records():
        log.debug("loaded row %s", row)  # the record keeps ``row`` in its args


def _record_size(record: logging.LogRecord) -> int:
    # The record, its attribute slots (3.11 keeps them inline: 8 bytes each) and the
    # values made for this record alone; the shared ones (level name, message format,
    # path) are left out.
    own = (record.created, record.msecs, record.relativeCreated, record.thread,
           record.process, record.filename, record.module)
    return (sys.getsizeof(record) + 8 * 21 + sum(map(sys.getsizeof, own))
            + footprint(record.args))


# -- asyncio: a producer whose consumer died at its first row --------------------------


async def _consume(queue: asyncio.Queue[dict[str, Any]]) -> None:
    row = await queue.get()
    raise KeyError(row["missing"])  # the consumer dies; nobody notices


async def produce(queue: asyncio.Queue[dict[str, Any]]) -> None:
    for n, row in enumerate(records()):
        await queue.put(row)
        TALLY.add("asyncio_queue", footprint(row))
        if n % 500 == 0:
            await asyncio.sleep(0)


async def _pipeline() -> None:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    consumer = asyncio.create_task(_consume(queue))
    await produce(queue)
    await consumer


def asyncio_queue() -> None:
    asyncio.run(_pipeline())


# -- weakref: a WeakKeyDictionary whose values refer back to their keys -----------------


class Batch:
    def __init__(self, number: int) -> None:
        self.number = number
        self.rows: list[dict[str, Any]] = []


_META: weakref.WeakKeyDictionary[Batch, dict[str, Any]] = weakref.WeakKeyDictionary()


def weakref_backref() -> None:
    source = records()
    for number in itertools.count():
        batch = Batch(number)
        batch.rows.extend(itertools.islice(source, 200))
        # "Weak", so metadata goes when the batch goes; but the value names the batch.
        meta = {"batch": batch, "source": f"s3://bucket/part-{number:05d}.csv"}
        _META[batch] = meta
        # the rows, the batch and its two attribute slots, the metadata dict and its str
        TALLY.add("weakref_backref", footprint(batch.rows) + 16 + footprint(meta))


# -- functools.partial callbacks kept for a commit that never runs ----------------------

_ON_COMMIT: list[functools.partial[int]] = []


def write_rows(rows: list[dict[str, Any]], table: str) -> int:
    return len(rows)


def partial_callbacks() -> None:
    source = records()
    while True:
        rows = list(itertools.islice(source, 100))
        _ON_COMMIT.append(functools.partial(write_rows, rows, table="orders"))
        TALLY.add("partial_callbacks", footprint(rows))


# -- itertools.tee: one branch read to the end, the other never ---------------------------

_AUDIT_COPY: Any = None


def tee_buffer() -> None:
    global _AUDIT_COPY
    rows, _AUDIT_COPY = itertools.tee(records())  # the audit copy was meant for later
    for row in rows:
        TALLY.add("tee_buffer", footprint(row))


# -- concurrent.futures: results kept on futures nobody reads --------------------------

_UPLOADS: list[concurrent.futures.Future[list[str]]] = []
_POOL = concurrent.futures.ThreadPoolExecutor(1)


def _render(rows: list[dict[str, Any]]) -> list[str]:
    return [line(row) for row in rows]


def futures_results() -> None:
    source = records()
    while True:
        future = _POOL.submit(_render, list(itertools.islice(source, 500)))
        _UPLOADS.append(future)
        text = future.result()
        TALLY.add("futures_results", footprint(text))


# -- collections.deque: an unbounded "undo" history ------------------------------------

_RECENT: collections.deque[tuple[int, dict[str, Any]]] = collections.deque()


def deque_history() -> None:
    for row in records():
        _RECENT.append((row["id"], dict(row)))  # kept to undo the last changes
        TALLY.add("deque_history", footprint(_RECENT[-1]))


def held(name: str) -> int:
    """What the scenario ``name`` holds now, in bytes."""
    if name == "queue_never_drained":
        return TALLY.get(name) + sys.getsizeof(_PENDING.queue)
    if name == "logging_buffer":
        buffer = log.handlers[0].buffer  # type: ignore[attr-defined]
        return sys.getsizeof(buffer) + sum(map(_record_size, buffer))
    if name == "asyncio_queue":
        return TALLY.get(name)
    if name == "weakref_backref":
        return TALLY.get(name) + sys.getsizeof(_META.data) + 80 * len(_META)
    if name == "partial_callbacks":
        one = functools.partial(write_rows, [], table="orders")
        return (TALLY.get(name) + sys.getsizeof(_ON_COMMIT)
                + len(_ON_COMMIT) * (sys.getsizeof(one) + sys.getsizeof(one.args)
                                     + sys.getsizeof(one.keywords)))
    if name == "tee_buffer":
        return TALLY.get(name)
    if name == "futures_results":
        one: concurrent.futures.Future[int] = concurrent.futures.Future()
        return TALLY.get(name) + len(_UPLOADS) * (sys.getsizeof(one) + 8 * 6)
    if name == "deque_history":
        return TALLY.get(name) + sys.getsizeof(_RECENT)
    raise KeyError(name)
