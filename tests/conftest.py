"""Every test leaves no child process, file descriptor or thread behind.

The engine, its zygote and its threads live for the whole session (that is the design),
so they are started once before the first test and form the baseline.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))
# Reports of the tests' breaches go to a scratch folder, not into the checkout.
os.environ.setdefault("ISOLATOR_REPORT_DIR", tempfile.mkdtemp(prefix="isolator-test-reports-"))

from isolator._engine.engine import get_engine
from isolator._wire.procfs import children


def wait_until(predicate: object, deadline: float = 5.0) -> bool:
    """Poll ``predicate`` until true or the deadline; for state with no event to wait on."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return bool(predicate())  # type: ignore[operator]


def outcomes(results: list[Any], timeout: float = 60) -> list[Any]:
    """Each AsyncResult's value, or the exception its ``get`` raised."""
    found: list[Any] = []
    for result in results:
        try:
            found.append(result.get(timeout))
        except BaseException as exc:
            found.append(exc)
    return found


def _zygote_pid() -> int:
    engine = get_engine()
    assert engine.zygote_pid is not None
    return engine.zygote_pid


def task_children(zygote: int) -> list[int]:
    """The zygote's children but its spare (forked ahead of time, named isolator-spare
    until it gets a task)."""
    found = []
    for pid in children(zygote):
        try:
            with open(f"/proc/{pid}/comm") as fh:
                if fh.read().strip() != "isolator-spare":
                    found.append(pid)
        except OSError:  # gone
            continue
    return found


def _fds() -> set[int]:
    return set(map(int, os.listdir("/proc/self/fd")))


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    get_engine()
    fds_before = _fds()
    threads_before = {t.ident for t in threading.enumerate()}
    yield
    zygote = _zygote_pid()
    assert wait_until(lambda: not task_children(zygote)), (
        f"task children left: {task_children(zygote)}"
    )
    assert wait_until(lambda: _fds() <= fds_before), f"fds left open: {_fds() - fds_before}"
    assert wait_until(lambda: {t.ident for t in threading.enumerate()} <= threads_before), (
        f"threads left: {[t.name for t in threading.enumerate()]}"
    )


def scheduler_of(pool: Any) -> Any:
    """The engine-side scheduler of an IsolatedExecutor or IsolatedPool."""
    return pool._work.pool.running_scheduler()


def ask(question: Any) -> Any:
    """``question()`` evaluated on the engine's thread (the only one that owns its state)."""
    return get_engine().ask(question)
