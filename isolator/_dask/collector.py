"""Outcomes of a ``DaskExecutor``'s attempts, fetched from the workers in batches.

A finished Dask task's value stays on its worker until the client asks for it: one
round trip each, about a millisecond here, which fetched one by one on Dask's callback
thread cost more than the isolated child itself. So each attempt's done-callback only
queues its task, and one thread per executor gathers every finished task queued since
its last round in a single ``client.gather``, then hands each outcome on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

_log = logging.getLogger("isolator")
#: Seconds ``stop(wait=True)`` waits for the last outcomes to be handed on.
STOP_TIMEOUT = 30.0

#: What an attempt hears: its Dask task, and its value (an ``Outcome``), or the exception
#: that ended it (``KilledWorker``, ``CancelledError``...).
Landed = Callable[[Any, Any, BaseException | None], None]


class Collector:
    """One thread that gathers finished tasks in batches and calls their ``landed``."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._ready: list[tuple[Any, Landed]] = []
        self._watched: dict[Any, Landed] = {}  # task -> its landed, until it is done
        self._wake = threading.Condition(threading.Lock())
        self._stopping = False
        self._thread: threading.Thread | None = None

    def watch(self, task: Any, landed: Landed) -> None:
        """Call ``landed`` once ``task`` has ended, from the collector's thread."""
        with self._wake:
            self._watched[task] = landed
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name="isolator-dask",
                                                 daemon=True)
                self._thread.start()
        task.add_done_callback(self._done)

    def stop(self, wait: bool) -> None:
        """End the thread once every watched task has been handed on."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            # Bounded: a task Dask never reports as ended must not hang the shutdown.
            thread.join(STOP_TIMEOUT)

    def _done(self, task: Any) -> None:  # Dask's callback thread: queue it, nothing more
        with self._wake:
            landed = self._watched.pop(task, None)
            if landed is not None:
                self._ready.append((task, landed))
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._ready and not (self._stopping and not self._watched):
                    self._wake.wait()
                if not self._ready:
                    self._thread = None
                    return
                batch, self._ready = self._ready, []
            for (task, landed), (value, error) in zip(batch, self._fetch(batch), strict=True):
                try:
                    landed(task, value, error)
                except BaseException:  # noqa: BLE001 - one attempt's bug must not stop the rest
                    _log.exception("isolator: handling the outcome of %s failed", task.key)

    def _fetch(self, batch: list[tuple[Any, Landed]]) -> list[tuple[Any, BaseException | None]]:
        finished = [task for task, _ in batch if task.status == "finished"]
        values: dict[Any, Any] = {}
        if finished:
            try:
                values = dict(zip(finished, self._client.gather(finished), strict=True))
            except BaseException:  # noqa: BLE001 - one lost value: fetch them one by one
                values = {}
        return [self._one(task, values) for task, _ in batch]

    @staticmethod
    def _one(task: Any, values: dict[Any, Any]) -> tuple[Any, BaseException | None]:
        if task in values:
            return values[task], None
        try:
            return task.result(), None
        except BaseException as exc:  # noqa: BLE001 - how the attempt ended
            return None, exc
