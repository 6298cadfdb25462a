"""multiprocessing's objects given to tasks: a Manager's proxies, Locks, Queues, shared
Values and Pipes, in ``initargs`` and as arguments, against the stdlib's pools.

The stdlib's workers inherit such objects (they are forked from the caller, or spawned
with them); isolator's children are forked from its zygote, so what can be reopened is
(a named semaphore, a pipe, shared memory, a Manager's address with the caller's
authkey) and what cannot is refused at submit with what to use instead
(docs/pools.md). Every family: multiprocessing's and multiprocess's.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import gc
import multiprocessing
import multiprocessing.resource_tracker
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _fidelity_workloads as fw
import multiprocess  # type: ignore[import-untyped]
import multiprocess.resource_tracker  # type: ignore[import-untyped]
import pytest

from isolator import IsolatedExecutor, IsolatedPool, MemoryLimitExceeded, PicklingFailed

FAMILIES = {"multiprocessing": multiprocessing, "multiprocess": multiprocess}

# Each family keeps two things for the life of the process, once used: the resource
# tracker that watches named semaphores (a process, and a pipe to it), and the first
# arena of the heap that shared Values live in (a file in /dev/shm). Made now, before
# any test counts file descriptors, they are part of the baseline.
multiprocessing.resource_tracker.ensure_running()
multiprocess.resource_tracker.ensure_running()
_ARENAS = [family.get_context("spawn").RawValue("i", 0) for family in FAMILIES.values()]
POOLS: dict[str, Callable[..., Any]] = {
    "multiprocessing.Pool": multiprocessing.Pool,
    "multiprocess.Pool": multiprocess.Pool,
    "ProcessPoolExecutor": cf.ProcessPoolExecutor,
    "IsolatedPool": IsolatedPool,
    "IsolatedExecutor": IsolatedExecutor,
}
ISOLATOR = {"IsolatedPool", "IsolatedExecutor"}


@pytest.fixture(autouse=True)
def reap_stdlib_workers() -> Iterator[None]:
    yield
    multiprocessing.active_children()
    multiprocess.active_children()
    gc.collect()


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def manager(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A Manager of each family, for the whole module (its server and its socket are
    part of every test's baseline)."""
    with FAMILIES[request.param].Manager() as started:
        yield started
    FAMILIES[request.param].active_children()


@contextlib.contextmanager
def pool_of(kind: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
    """A pool of ``kind`` with the ``Pool`` arguments; ended and joined at the end."""
    if kind in ("ProcessPoolExecutor", "IsolatedExecutor"):
        names = ("max_workers", "initializer", "initargs")
        with POOLS[kind](**dict(zip(names, args, strict=False)), **kwargs) as ex:
            yield _AsPool(ex)
        return
    pool = POOLS[kind](*args, **kwargs)
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


class _AsPool:
    """An executor seen through the two Pool methods the tests use."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor

    def starmap(self, fn: Callable[..., Any], items: list[tuple[Any, ...]]) -> list[Any]:
        return [f.result(timeout=60) for f in [self.executor.submit(fn, *a) for a in items]]

    def map(self, fn: Callable[..., Any], items: list[Any]) -> list[Any]:
        return self.starmap(fn, [(item,) for item in items])


# -- what works ----------------------------------------------------------------------------

@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", POOLS)
def test_a_managers_proxies_work_as_arguments(kind: str, manager: Any) -> None:
    # The stdlib's workers have the caller's authkey by inheritance; isolator's child
    # gets it with the proxy, as a spawned child would.
    shared, counts = manager.list(), manager.dict()
    with pool_of(kind, 2) as pool:
        assert sorted(pool.starmap(fw.append_to, [(shared, i) for i in range(6)])) == \
            list(range(6))
        assert pool.starmap(fw.count_in, [(counts, f"k{i}") for i in range(3)]) == [1] * 3
    assert sorted(shared) == list(range(6))
    assert sorted(counts.keys()) == ["k0", "k1", "k2"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("kind", POOLS)
def test_a_spawn_context_queue_in_initargs_carries_every_put(kind: str, family: str) -> None:
    queue = FAMILIES[family].get_context("spawn").Queue()
    with pool_of(kind, 2, fw.keep, (queue,)) as pool:
        # 40 units, each a child (in isolator) that leaves right after its put: every
        # put still arrives, since the child wrote it before it said it was done.
        assert pool.map(fw.put_in_kept, list(range(40))) == list(range(40))
        assert sorted(queue.get(timeout=30)[0] for _ in range(40)) == list(range(40))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", POOLS)
def test_a_spawn_context_lock_in_initargs_is_the_same_lock(kind: str) -> None:
    lock = multiprocessing.get_context("spawn").Lock()
    with pool_of(kind, 1, fw.keep, (lock,)) as pool:
        assert pool.map(fw.try_acquire_kept, [0]) == [True]
        with lock:
            assert pool.map(fw.try_acquire_kept, [0]) == [False]
        assert pool.map(fw.try_acquire_kept, [0]) == [True]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_spawn_context_objects_work_as_arguments_too(family: str) -> None:
    # The stdlib refuses these outside inheritance (RuntimeError); isolator's children
    # reopen them.
    spawn = FAMILIES[family].get_context("spawn")
    value, queue, joinable = spawn.Value("i", 0), spawn.Queue(), spawn.JoinableQueue()
    reader, writer = spawn.Pipe(duplex=False)
    with IsolatedPool(2) as pool:
        assert sorted(pool.starmap(fw.add_to, [(value, 1)] * 8)) == list(range(1, 9))
        assert value.value == 8
        items = [{"n": i, "blob": b"x" * 1000} for i in range(50)]
        assert pool.apply(fw.put_then_return, (queue, items)) == 50
        assert [queue.get(timeout=30)["n"] for _ in range(50)] == list(range(50))
        joinable.put("work")
        assert pool.apply(fw.get_and_mark_done, (joinable,)) == "work"
        joinable.join()  # the child's task_done() counted
        assert pool.apply(fw.send_on, (writer, "over the pipe"))
        assert reader.recv() == "over the pipe"
        event, simple = spawn.Event(), spawn.SimpleQueue()
        assert pool.apply(fw.set_event, (event,)) and event.is_set()
        assert pool.apply(fw.total, (spawn.Array("i", [1, 2, 3]),)) == 6
        assert pool.apply(fw.put_then_return, (simple, ["simple"])) == 1
        assert simple.get() == "simple"
        lock = FAMILIES[family].get_context("forkserver").Lock()  # named, as spawn's
        assert pool.apply(fw.try_acquire, (lock,))
        with lock:
            assert not pool.apply(fw.try_acquire, (lock,))
    with pool_of("multiprocessing.Pool", 1) as stdlib:  # refuses them outside inheritance
        for made in (value, queue):
            with pytest.raises(RuntimeError, match="through inheritance"):
                stdlib.apply(fw.identity, (made,))


# -- what cannot, refused at submit ----------------------------------------------------------

def _fork_made(family: str) -> dict[str, Callable[[], Any]]:
    fork = FAMILIES[family].get_context("fork")
    return {"Queue": fork.Queue, "Lock": fork.Lock, "Event": fork.Event,
            "Value": lambda: fork.Value("i", 0)}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("what", ["Queue", "Lock", "Event", "Value"])
def test_fork_context_objects_are_refused_with_what_to_use_instead(
        family: str, what: str) -> None:
    made = _fork_made(family)[what]()
    # In initargs, multiprocessing.Pool's forked workers inherit it...
    with pool_of("multiprocessing.Pool", 1, fw.keep, (made,)) as pool:
        assert pool.map(fw.square, [3]) == [9]
    # ...isolator's children cannot: the pool says so when it is made,
    with pytest.raises(PicklingFailed) as caught:
        IsolatedPool(1, initializer=fw.keep, initargs=(made,))
    message = str(caught.value)
    assert "'fork' context" in message and "zygote" in message
    assert "Manager()" in message and "get_context('spawn')" in message
    assert isinstance(caught.value, pickle.PicklingError)
    # and as an argument, the task fails at submit (the stdlib's RuntimeError there).
    with IsolatedExecutor(1) as ex:
        error = ex.submit(fw.identity, made).exception(timeout=30)
        assert isinstance(error, PicklingFailed) and "'fork' context" in str(error)
    with pytest.raises(RuntimeError, match="through inheritance"):
        pickle.dumps(made)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["multiprocessing.Pool", "IsolatedPool"])
def test_a_one_way_pipe_works_a_duplex_one_is_refused(kind: str) -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    left, right = multiprocessing.Pipe()  # a socketpair: cannot be reopened through /proc
    with pool_of(kind, 1) as pool:
        assert pool.apply(fw.send_on, (writer, 1))
        assert reader.recv() == 1
        if kind in ISOLATOR:
            with pytest.raises(PicklingFailed) as caught:
                pool.apply(fw.send_on, (right, 2))
            assert "duplex" in str(caught.value)
            assert "Pipe(duplex=False)" in str(caught.value)
        else:  # sent through the caller's resource-sharing thread
            assert pool.apply(fw.send_on, (right, 2))
            assert left.recv() == 2
    for end in (left, right, reader, writer):
        end.close()
    from multiprocessing import resource_sharer

    resource_sharer.stop(timeout=5)  # the stdlib's sharing thread, started for the socket


# -- the authkey is a secret ----------------------------------------------------------------

@pytest.mark.timeout(90)
def test_the_authkey_goes_into_no_report(tmp_path: Path) -> None:
    key = bytes(multiprocessing.current_process().authkey)
    with multiprocessing.Manager() as started:
        shared = started.list()
        with IsolatedPool(1, max_mem="64MB", report_dir=str(tmp_path)) as pool:
            assert pool.apply(fw.append_to, (shared, 1)) == 1
            with pytest.raises(MemoryLimitExceeded) as caught:
                pool.apply(fw.append_then_grow, (shared, 64))
        del shared
    assert caught.value.report is not None
    written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert written
    for text in written:
        for form in (key, key.hex().encode(), repr(key).encode()):
            assert form not in text
    multiprocessing.active_children()

