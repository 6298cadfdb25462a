"""The cluster's side: what each isolated task runs on a Dask worker, and the plugins.

A task's function is ``run_unit``: on the worker's thread it hands the task, already
pickled by the client, to the worker process's own isolator engine (its zygote forks a
fresh capped child), waits, and returns an ``Outcome`` of plain bytes. Nothing of the
user's is loaded on the worker: the result stays the child's pickle, so the client loads
it, resolving what came from its ``__main__`` in its own ``__main__``.

The worker never writes reports: the report travels in the outcome and the client
writes it where its ``report_dir`` says.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, NamedTuple

from .._errors import RemoteTraceback
from .._model.values import Limits, Reporting
from .._units import parse_size
from .._wire import pickling

_log = logging.getLogger("isolator")

#: Every isolated task's key starts with this, so the plugins know which are theirs.
KEY_PREFIX = "isolator-"
#: The event a worker logs when an isolated task starts running there.
STARTED = "isolator-started"
#: The event a worker logs once it has declared its memory resource.
DECLARED = "isolator-declared"
#: Worker task states that end a task while it executes without it having finished.
_ABANDONED = frozenset({"cancelled", "released", "rescheduled", "forgotten"})

_running: dict[str, Future[Any]] = {}  # task key -> its child's engine future (this worker)
_lock = threading.Lock()


class Outcome(NamedTuple):
    """How one attempt ended on its worker: ``body`` is the result's pickle when ``ok``,
    else the exception's (isolator's envelope, which always loads as something)."""

    ok: bool
    body: bytes
    peak: int  # bytes, the highest RSS of the child's tree
    worker: dict[str, Any]  # address, host and pid of the worker that ran it
    traceback: str | None  # the child's traceback, for a failure


def run_unit(payload: bytes, limits: Limits, forensics: str, warm: tuple[str, ...],
             name: str, learn: bool) -> Outcome:
    """Run one pickled task in a fresh capped child of this worker's zygote."""
    from distributed import get_worker

    from .._engine.engine import get_engine

    worker = get_worker()
    key = str(worker.get_current_task())
    where = {"address": worker.address, "host": socket.gethostname(), "pid": os.getpid()}
    # The scheduler's plugin hears of it: if this worker dies from now on, the task ends
    # as a failure isolator's retry policy decides about, not one Dask runs again.
    worker.log_event(STARTED, key)
    future = get_engine().submit(payload, limits, _reporting(forensics), warm, name, learn,
                                 raw=True)
    with _lock:
        _running[key] = future
    try:
        value = future.result()
        return Outcome(True, value, getattr(future, "peak", 0), where, None)
    except BaseException as exc:  # noqa: BLE001 - every ending goes back to the client
        # (a task's SystemExit too: it is the child's, not this thread's)
        cause = exc.__cause__
        tb = cause.tb if isinstance(cause, RemoteTraceback) else None
        body = pickling.dumps(exc, what="exception", in_child=True)
        return Outcome(False, body, getattr(future, "peak", 0), where, tb)
    finally:
        with _lock:
            _running.pop(key, None)


@functools.cache
def _reporting(forensics: str) -> Reporting:
    """What the child records on a breach; nothing is written on the worker."""
    return Reporting(report_dir=None, forensics=forensics)  # type: ignore[arg-type]


def kill(key: str) -> bool:
    """Kill the child of the isolated task ``key`` if it runs on this worker."""
    with _lock:
        future = _running.get(key)
    if future is None:
        return False
    from .._engine.engine import get_engine

    get_engine().cancel(future)
    return True


def declared_memory(worker: Any, memory: int | None) -> int:
    """The MEM a worker declares when it has none: ``memory`` if given, else its share
    of the host (Dask's ``memory_limit``) less what the worker holds itself, else four
    fifths of the memory available now."""
    if memory is not None:
        return memory
    from .._model.admission import default_budget

    limit = getattr(getattr(worker, "memory_manager", None), "memory_limit", None)
    if limit:
        return max(int(limit) - _rss(), 0)
    return default_budget() or 0


def _rss() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def checked_memory(memory: int | str | None) -> int | None:
    """``IsolatorPlugin(memory=...)`` normalised: bytes, or None to work it out."""
    return None if memory is None else parse_size(memory, name="memory")


def warm_up() -> None:
    """Start this worker process's engine and zygote now, off the worker's event loop;
    the engine forks from its own long-lived thread, whatever thread asked first."""
    def start() -> None:
        from .._engine.engine import get_engine

        try:
            get_engine()
        except Exception:  # noqa: BLE001 - the first task will say it again, typed
            _log.exception("isolator: the worker's zygote did not start")

    threading.Thread(target=start, name="isolator-warm-up", daemon=True).start()


def abandoned(start: str, finish: str) -> bool:
    """Whether this worker transition leaves a running task's child without a caller."""
    return start == "executing" and finish in _ABANDONED


def watch_call(future: Future[Any]) -> Callable[[], None] | None:
    """An isolated call made inside a Dask task (``client.submit(isolated_fn)``) is
    kept under its task's key, so that cancelling the task kills its child too."""
    from distributed.worker import thread_state  # type: ignore[attr-defined]

    key = getattr(thread_state, "key", None)
    if key is None:
        return None  # not a Dask task's thread
    name = str(key)
    with _lock:
        _running[name] = future

    def end() -> None:
        with _lock:
            if _running.get(name) is future:
                del _running[name]

    return end


def watch_calls(on: bool) -> None:
    """Start (or stop) knowing the isolated calls made by this worker's tasks."""
    from .._api.decorator import call_watchers

    if on and watch_call not in call_watchers:
        call_watchers.append(watch_call)
    elif not on and watch_call in call_watchers:
        call_watchers.remove(watch_call)
