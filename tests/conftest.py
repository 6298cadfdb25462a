"""Every test leaves no child process, file descriptor or thread behind.

The engine, its zygote and its threads live for the whole session (that is the design),
so they are started once before the first test and form the baseline.

Tests marked ``cluster`` (the Dask tests) also run processes of their own: a
module-scoped cluster's scheduler, nannies and workers, each worker with its own
zygote. For them the fixture knows the processes that existed when the test began:
every process below this one that the test started must be gone when it ends (a
worker that the test killed and its Nanny restarted counts as started by the test),
and no task child of any zygote (the session's or a worker's) may be left.
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
from isolator._wire.procfs import children, descendants


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


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:  # gone
        return ""


def _below() -> set[int]:
    """Every live process below this one (zombies are not alive, but not reaped either:
    they count, so a process a test forgot to wait for is seen)."""
    return set(descendants(os.getpid()))


def cluster_leftovers(before: set[int]) -> list[str]:
    """What a cluster test left: any process below this one that it started and that
    still exists (a spare forked ahead of time by a zygote that was there before is
    not), and any task child of any zygote below this one."""
    left = []
    for pid in _below():
        name = _comm(pid)
        if name == "isolator-task" or (pid not in before and name not in ("isolator-spare", "")):
            left.append(f"{pid} ({name})")
    return left


def _tcp_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(table) as fh:
                inodes.update(line.split()[9] for line in list(fh)[1:])
        except OSError:
            continue
    return inodes


def _fds_left(before: set[int], cluster: bool) -> set[int]:
    """Descriptors opened during the test and still open. In a cluster test, TCP
    sockets are Dask's: its client and in-process scheduler keep a pool of connections
    to the cluster's processes, reused by later tests (isolator opens no TCP socket)."""
    left = _fds() - before
    if not cluster or not left:
        return left
    tcp = _tcp_inodes()
    kept = set()
    for fd in left:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if not (target.startswith("socket:[") and target[8:-1] in tcp):
            kept.add(fd)
    return kept


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: runs Dask cluster processes; the "
                            "leftover check covers every process below the test's")


@pytest.fixture(autouse=True)
def no_leftovers(request: pytest.FixtureRequest) -> Iterator[None]:
    get_engine()
    fds_before = _fds()
    threads_before = {t.ident for t in threading.enumerate()}
    cluster = request.node.get_closest_marker("cluster") is not None
    below_before = _below() if cluster else set()
    yield
    zygote = _zygote_pid()
    assert wait_until(lambda: not task_children(zygote)), (
        f"task children left: {task_children(zygote)}"
    )
    if cluster:
        assert wait_until(lambda: not cluster_leftovers(below_before), 10.0), (
            f"processes left: {cluster_leftovers(below_before)}"
        )
    assert wait_until(lambda: not _fds_left(fds_before, cluster)), (
        f"fds left open: {_fds_left(fds_before, cluster)}"
    )
    assert wait_until(lambda: {t.ident for t in threading.enumerate()} <= threads_before), (
        f"threads left: {[t.name for t in threading.enumerate()]}"
    )


def scheduler_of(pool: Any) -> Any:
    """The engine-side scheduler of an IsolatedExecutor or IsolatedPool."""
    return pool._work.pool.running_scheduler()


def ask(question: Any) -> Any:
    """``question()`` evaluated on the engine's thread (the only one that owns its state)."""
    return get_engine().ask(question)
