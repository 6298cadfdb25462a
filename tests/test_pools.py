"""IsolatedExecutor and IsolatedPool: the stdlib semantics, plus failures that stay local."""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import as_completed, wait
from pathlib import Path
from typing import Any

import _workloads as w
import conftest
import pytest
from _processes import gone_within

from isolator import (
    ConfigurationError,
    IsolatedExecutor,
    IsolatedPool,
    MemoryLimitExceeded,
    PoolClosed,
    TaskTimeout,
    WorkerLost,
)

ROOT = Path(__file__).resolve().parent.parent


# -- concurrent.futures semantics ------------------------------------------------------

def test_submit_map_and_order() -> None:
    with IsolatedExecutor(2) as ex:
        assert ex.submit(w.square, 7).result() == 49
        assert list(ex.map(w.square, range(10))) == [x * x for x in range(10)]
        assert list(ex.map(w.add, range(5), range(5), chunksize=2)) == [0, 2, 4, 6, 8]


def test_map_raises_at_the_failing_position() -> None:
    with IsolatedExecutor(2) as ex:
        results = ex.map(w.fail_on, range(5), itertools.repeat(3))
        assert [next(results) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(ValueError, match="bad input 3"):
            next(results)


def test_map_timeout() -> None:
    with IsolatedExecutor(1, kill_grace=0.1) as ex:
        with pytest.raises(TimeoutError):
            list(ex.map(w.sleep_for, [5], timeout=0.3))
        ex.terminate()


def test_as_completed_and_wait() -> None:
    with IsolatedExecutor(2) as ex:
        futures = [ex.submit(w.square, x) for x in range(6)]
        assert sorted(f.result() for f in as_completed(futures, timeout=30)) == \
            [x * x for x in range(6)]
        done, not_done = wait(futures, timeout=30)
        assert len(done) == 6 and not not_done


def test_shutdown_with_and_without_cancel_futures() -> None:
    ex = IsolatedExecutor(1)
    running = ex.submit(w.sleep_for, 0.3)
    queued = [ex.submit(w.square, x) for x in range(3)]
    ex.shutdown(wait=True, cancel_futures=True)
    assert running.result() is None
    assert all(f.cancelled() for f in queued)
    with pytest.raises(RuntimeError):
        ex.submit(w.square, 1)

    ex = IsolatedExecutor(1)
    queued = [ex.submit(w.square, x) for x in range(3)]
    ex.shutdown(wait=True)
    assert [f.result() for f in queued] == [0, 1, 4]


def test_initializer_runs_in_each_child() -> None:
    with IsolatedExecutor(1, initializer=w.remember, initargs=("init",)) as ex:
        assert ex.submit(w.initialized).result() == ["init"]
        assert ex.submit(w.initialized).result() == ["init"]  # a fresh process again


def test_initializer_runs_once_per_reused_worker() -> None:
    with IsolatedExecutor(1, max_tasks_per_child=3, initializer=w.remember,
                          initargs=("init",)) as ex:
        seen = [ex.submit(w.initialized).result() for _ in range(4)]
    assert seen == [["init"]] * 4  # once in each worker (the fourth task has a new one)
    with IsolatedPool(1, w.remember, ("pool",), maxtasksperchild=10) as pool:
        assert pool.map(w.initialized, range(3), 1) == [["pool"]] * 3


def test_a_failing_initializer_fails_the_unit_and_is_tried_again() -> None:
    with IsolatedExecutor(1, max_tasks_per_child=10, initializer=w.fail_on,
                          initargs=(1, 1)) as ex:
        for _ in range(2):
            with pytest.raises(ValueError):
                ex.submit(w.square, 2).result()


def test_statistics_and_progress_hook() -> None:
    seen: list[Any] = []
    with IsolatedExecutor(2, max_mem="64MiB", progress=seen.append) as ex:
        futures = [ex.submit(w.die_on, x, 2, "memory") for x in range(4)]
        wait(futures, timeout=60)
        stats = ex.statistics()
    assert len(seen) == 4
    assert stats.submitted == 4 and stats.completed == 3 and stats.failed == 1
    assert sum(v for k, v in stats.failed_by_kind.items() if k.startswith("memory:")) == 1
    assert stats.peak_rss >= 50 * w.MiB and len(stats.peak_rss_per_task) == 4


@pytest.mark.parametrize("tasks_per_child", [1, 10])
def test_a_progress_hook_that_raises_is_logged_and_the_pool_goes_on(
        tasks_per_child: int, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[Any] = []

    def broken(future: Any) -> None:
        calls.append(future)
        raise RuntimeError("bug in the hook")

    with IsolatedExecutor(2, max_tasks_per_child=tasks_per_child, progress=broken) as ex:
        futures = [ex.submit(w.square, x) for x in range(12)]
        assert [f.result(timeout=30) for f in futures] == [x * x for x in range(12)]
    assert len(calls) == 12
    assert caplog.text.count("the progress hook raised") == 12


# -- multiprocessing.Pool semantics ------------------------------------------------------

def test_pool_api() -> None:
    with IsolatedPool(2) as pool:
        assert pool.apply(w.add, (2, 3)) == 5
        assert pool.map(w.square, range(20)) == [x * x for x in range(20)]
        assert pool.starmap(w.add, [(1, 2), (3, 4)]) == [3, 7]
        assert pool.map_async(w.square, range(3)).get(30) == [0, 1, 4]
        assert pool.starmap_async(w.add, [(1, 1)]).get(30) == [2]
        assert list(pool.imap(w.square, range(5))) == [0, 1, 4, 9, 16]
        assert sorted(pool.imap_unordered(w.square, range(5), chunksize=2)) == [0, 1, 4, 9, 16]
        assert pool.map(w.square, []) == []


def test_pool_callbacks() -> None:
    got: list[Any] = []
    errors: list[BaseException] = []
    with IsolatedPool(2) as pool:
        ok = pool.apply_async(w.square, (4,), callback=got.append, error_callback=errors.append)
        bad = pool.apply_async(w.fail_on, (1, 1), callback=got.append,
                               error_callback=errors.append)
        many = pool.map_async(w.square, range(4), callback=got.append)
        for result in (ok, bad, many):
            result.wait(30)
        assert ok.successful() and not bad.successful()
        with pytest.raises(ValueError, match="bad input"):
            bad.get()
    assert 16 in got and [0, 1, 4, 9] in got
    assert len(errors) == 1 and isinstance(errors[0], ValueError)


def test_imap_is_lazy_on_an_endless_iterator() -> None:
    with IsolatedPool(2) as pool:
        first = list(itertools.islice(pool.imap(w.square, itertools.count()), 6))
    assert first == [0, 1, 4, 9, 16, 25]


@pytest.mark.parametrize("chunksize", [1, 2])
def test_imap_raises_a_failed_item_and_goes_on(chunksize: int) -> None:
    # As Pool.imap's iterator: next() raises the item's error, then yields the rest. With
    # chunks, the items of a failed chunk are that one error (items 2 and 3 here).
    expected: list[Any] = [0, 1, "ValueError", 3, 4] if chunksize == 1 \
        else [0, 1, "ValueError", 4]
    with IsolatedPool(2) as pool:
        results = pool.imap(functools.partial(w.fail_on, bad=2), range(5), chunksize)
        got: list[Any] = []
        while True:
            try:
                got.append(next(results))
            except StopIteration:
                break
            except ValueError:
                got.append("ValueError")
    assert got == expected


def test_pool_timeouts_are_multiprocessing_timeout_errors() -> None:
    # Code written for Pool catches multiprocessing.TimeoutError, not the builtin.
    with IsolatedPool(2) as pool:
        slow = pool.apply_async(w.sleep_for, (1.0,))
        with pytest.raises(multiprocessing.TimeoutError):
            slow.get(timeout=0.05)
        results = pool.imap(w.sleep_for, [1.0, 0.0])
        with pytest.raises(multiprocessing.TimeoutError) as caught:
            results.next(timeout=0.05)  # type: ignore[attr-defined]
        assert isinstance(caught.value, TimeoutError)
        assert results.next(timeout=30) is None  # type: ignore[attr-defined]
        assert list(results) == [None]
        assert slow.get(timeout=30) is None


def test_a_start_method_context_is_accepted_as_the_stdlib_pools_take_it() -> None:
    spawn = multiprocessing.get_context("spawn")
    with IsolatedExecutor(1, mp_context=spawn) as ex:
        assert ex.submit(w.square, 3).result(timeout=30) == 9
    with IsolatedPool(1, None, (), None, spawn) as pool:
        assert pool.apply(w.square, (4,)) == 16
    with pytest.raises(ConfigurationError, match="not a multiprocessing context"):
        IsolatedExecutor(1, mp_context="spawn")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not a multiprocessing context"):
        IsolatedPool(1, context="fork")  # type: ignore[arg-type]


def test_close_join_and_closed_pool() -> None:
    pool = IsolatedPool(2)
    result = pool.map_async(w.square, range(4))
    with pytest.raises(ValueError):
        pool.join()  # still running
    pool.close()
    pool.join()
    assert result.get(0) == [0, 1, 4, 9]
    with pytest.raises(ValueError):
        pool.apply(w.square, (1,))
    with pytest.raises(PoolClosed):
        pool.map(w.square, [1])


# -- one death among eight fails only its own task, through both APIs ----------------------

DEATHS = [
    ("sigkill", WorkerLost), ("segfault", WorkerLost), ("abort", WorkerLost),
    ("exit", WorkerLost), ("memory", MemoryLimitExceeded), ("timeout", TaskTimeout),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("how", "expected"), DEATHS, ids=[d[0] for d in DEATHS])
@pytest.mark.parametrize("api", ["executor", "pool"])
def test_one_death_among_eight(api: str, how: str, expected: type[BaseException]) -> None:
    options: dict[str, Any] = {"max_mem": "64MiB", "timeout": 2, "kill_grace": 0.1}
    if api == "executor":
        with IsolatedExecutor(2, **options) as ex:
            futures = [ex.submit(w.die_on, x, 3, how) for x in range(8)]
            outcomes = [f.exception(timeout=60) or f.result() for f in futures]
            assert ex.submit(w.square, 3).result() == 9  # still usable
    else:
        with IsolatedPool(2, **options) as pool:
            outcomes = conftest.outcomes([pool.apply_async(w.die_on, (x, 3, how))
                                          for x in range(8)])
            assert pool.apply(w.square, (3,)) == 9
    assert isinstance(outcomes[3], expected)
    assert [o for i, o in enumerate(outcomes) if i != 3] == [0, 1, 2, 4, 5, 6, 7]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("tasks_per_child", [1, 10])
def test_a_death_fails_its_task_within_a_tenth_of_a_second(
        tmp_path: Path, tasks_per_child: int) -> None:
    with IsolatedExecutor(2, max_tasks_per_child=tasks_per_child) as ex:
        for attempt in range(5):
            stamp = tmp_path / f"died-{attempt}"
            future = ex.submit(w.stamp_then_die, str(stamp))
            assert isinstance(future.exception(timeout=30), WorkerLost)
            noticed = time.time()
            assert noticed - float(stamp.read_text()) < 0.1
        assert ex.submit(w.square, 3).result(timeout=30) == 9


# -- interruption --------------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("api", ["executor", "pool", "executor-no-with", "pool-no-with"])
def test_ctrl_c_during_map_leaves_no_child(api: str) -> None:
    # Without a with block, the program's exit (which otherwise waits for the work handed
    # to a pool) must not wait after Ctrl-C.
    body = {
        "executor": "with IsolatedExecutor(2) as ex:\n    list(ex.map(w.pid_and_sleep, [60] * 6))",
        "pool": "with IsolatedPool(2) as pool:\n    pool.map(w.pid_and_sleep, [60] * 6, 1)",
        "executor-no-with": "ex = IsolatedExecutor(2)\nlist(ex.map(w.pid_and_sleep, [60] * 6))",
        "pool-no-with": "pool = IsolatedPool(2)\npool.map(w.pid_and_sleep, [60] * 6, 1)",
    }[api]
    script = "import _workloads as w\nfrom isolator import IsolatedExecutor, IsolatedPool\n" + body
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        pids = [int(proc.stdout.readline()), int(proc.stdout.readline())]
    except ValueError:
        proc.kill()
        raise
    proc.send_signal(signal.SIGINT)
    assert gone_within(pids, 1.0)
    proc.communicate(timeout=10)
    assert proc.returncode != 0



@pytest.mark.timeout(60)
@pytest.mark.parametrize("reuse", [None, 100])
def test_terminate_during_map_leaves_no_child_within_a_second(reuse: int | None) -> None:
    pool = IsolatedPool(2, maxtasksperchild=reuse)
    result = pool.map_async(w.sleep_for, [30] * 6, 1)
    zygote = conftest._zygote_pid()
    assert conftest.wait_until(lambda: len(conftest.task_children(zygote)) == 2, 10)
    started = time.monotonic()
    pool.terminate()
    assert conftest.wait_until(lambda: not conftest.task_children(zygote), 1.0)
    assert time.monotonic() - started < 1.5
    with pytest.raises(WorkerLost):
        result.get(5)
