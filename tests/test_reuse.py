"""Reused workers, opt-in: recycle policies, tidying between tasks, failures stay local."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import wait
from typing import Any

import _workloads as w
import conftest
import pytest
from conftest import wait_until

from isolator import (
    ConfigurationError,
    IsolatedExecutor,
    IsolatedPool,
    MemoryLimitExceeded,
    TaskTimeout,
    WorkerLost,
    recycle_after_tasks,
    recycle_on_growth,
    recycle_on_idle_rss,
)
from isolator._engine import workers as workers_module
from isolator._model.recycle import WorkerFacts


@pytest.mark.timeout(60)
def test_max_tasks_per_child_reuses_then_replaces() -> None:
    with IsolatedExecutor(1, max_tasks_per_child=3) as ex:
        pids = [ex.submit(w.my_pid).result() for _ in range(7)]
        stats = ex.statistics()
    assert sorted(Counter(pids).values()) == [1, 3, 3]
    assert stats.recycled == 2


class _BrokenPolicy(recycle_after_tasks):
    def __call__(self, facts: WorkerFacts) -> bool:
        raise ValueError("bug in a user's policy")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["below-fresh-rss", "raises"])
def test_a_policy_that_says_recycle_at_once_still_runs_every_task(
        policy: str, caplog: pytest.LogCaptureFixture) -> None:
    # A replacement starts idle; a policy that condemns every worker, even one that has
    # run nothing, must not replace replacements forever.
    chosen = recycle_on_idle_rss("1MiB") if policy == "below-fresh-rss" else _BrokenPolicy(1)
    with IsolatedExecutor(2, recycle=chosen) as ex:
        pids = [ex.submit(w.my_pid).result(timeout=30) for _ in range(6)]
        stats = ex.statistics()
    assert len(set(pids)) == 6 and stats.completed == 6
    assert stats.recycled <= 6
    if policy == "raises":
        assert "the recycle policy" in caplog.text and "bug in a user's policy" in caplog.text


@pytest.mark.timeout(60)
def test_default_is_a_fresh_process_per_task() -> None:
    with IsolatedExecutor(1) as ex:
        pids = [ex.submit(w.my_pid).result() for _ in range(3)]
    assert len(set(pids)) == 3


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("ignore::isolator.LeakWarning")  # these workers do leak
def test_growth_policy_recycles_a_leaking_worker() -> None:
    with IsolatedExecutor(1, recycle=recycle_on_growth("50MiB")) as ex:
        pids = [ex.submit(w.hoard, 20).result() for _ in range(6)]
        assert ex.statistics().leaks_suspected >= 1
    # 20, 40, 60 MiB held: the third task pushes growth past 50 MiB, so a new worker
    # takes the fourth, and the same again.
    assert [len(list(g)) for g in _runs(pids)] == [3, 3]


@pytest.mark.timeout(60)
def test_pool_reuse_and_a_death_fails_only_its_task() -> None:
    with IsolatedPool(2, maxtasksperchild=50, max_mem="64MiB", kill_grace=0.1) as pool:
        outcomes = conftest.outcomes([pool.apply_async(w.die_on, (x, 3, "sigkill"))
                                      for x in range(8)])
        assert isinstance(outcomes[3], WorkerLost)
        assert [o for i, o in enumerate(outcomes) if i != 3] == [0, 1, 2, 4, 5, 6, 7]
        assert pool.map(w.square, range(10)) == [x * x for x in range(10)]


@pytest.mark.timeout(60)
def test_a_breach_in_a_reused_worker_retires_it() -> None:
    with IsolatedExecutor(1, max_tasks_per_child=100, max_mem="64MiB") as ex:
        before = ex.submit(w.my_pid).result()
        future = ex.submit(w.grow_python_objects, 64)
        wait([future], timeout=60)
        assert isinstance(future.exception(), MemoryLimitExceeded)
        after = ex.submit(w.my_pid).result()
    assert after != before


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how, error", [
    ("sigkill", WorkerLost), ("memory", MemoryLimitExceeded), ("exit", WorkerLost),
    ("segfault", WorkerLost), ("timeout", TaskTimeout),
])
def test_tasks_sent_ahead_to_a_worker_that_dies_run_elsewhere_once(
        how: str, error: type[BaseException], tmp_path: Any, monkeypatch: Any) -> None:
    # However slow this machine is, short tasks are sent ahead (the most a worker takes).
    monkeypatch.setattr(workers_module, "AHEAD_WORK", 10.0)
    log = tmp_path / "ran.txt"
    with IsolatedExecutor(2, max_tasks_per_child=10**6, max_mem="64MiB", timeout=3,
                          kill_grace=0.1) as ex:
        assert list(ex.map(w.square, range(50))) == [x * x for x in range(50)]
        futures = [ex.submit(w.note_then_die_on, str(log), x, 150, how) for x in range(300)]
        wait(futures, timeout=100)
        stats = ex.statistics()
    failed = [i for i, f in enumerate(futures) if f.exception() is not None]
    assert failed == [150]
    assert isinstance(futures[150].exception(), error)
    assert [f.result() for f in futures if f.exception() is None] == \
        [x for x in range(300) if x != 150]
    assert stats.resent >= 1  # the dead worker held tasks behind the one that killed it
    runs = Counter(int(line) for line in log.read_text().split())
    assert sorted(runs) == list(range(300)) and set(runs.values()) == {1}  # once each


@pytest.mark.timeout(180)
def test_a_mixed_batch_on_reused_workers_loses_nothing_and_runs_nothing_twice(
        tmp_path: Any, monkeypatch: Any) -> None:
    import random

    monkeypatch.setattr(workers_module, "AHEAD_WORK", 10.0)  # send ahead whatever the machine
    rng = random.Random(20261122)
    hows = ["ok"] * 40 + ["sigkill", "memory", "exit", "segfault", "timeout", "raise"]
    plan = [rng.choice(hows) for _ in range(400)]
    log = tmp_path / "ran.txt"
    with IsolatedExecutor(2, max_mem="64MiB", timeout=3, kill_grace=0.1,
                          recycle=recycle_after_tasks(25)) as ex:
        futures = [ex.submit(w.note_then_die_on, str(log), x, x if how != "ok" else -1,
                             "exit" if how == "raise" else how)
                   if how != "raise" else ex.submit(w.fail_on, x, x)
                   for x, how in enumerate(plan)]
        _, not_done = wait(futures, timeout=150)
        stats = ex.statistics()
    assert not not_done
    expected = {"sigkill": WorkerLost, "memory": MemoryLimitExceeded, "exit": WorkerLost,
                "segfault": WorkerLost, "timeout": TaskTimeout, "raise": ValueError}
    for x, (how, future) in enumerate(zip(plan, futures, strict=True)):
        if how == "ok":
            assert future.result() == x
        else:
            assert isinstance(future.exception(), expected[how]), (x, how)
    runs = Counter(int(line) for line in log.read_text().split())
    assert set(runs.values()) == {1}  # nothing ran twice
    assert sorted(runs) == [x for x, how in enumerate(plan) if how != "raise"]  # nor was lost
    assert stats.completed == plan.count("ok") and stats.failed == len(plan) - plan.count("ok")


@pytest.mark.timeout(60)
def test_replacement_workers_are_sent_tasks_ahead_too(monkeypatch: Any) -> None:
    monkeypatch.setattr(workers_module, "AHEAD_WORK", 10.0)
    with IsolatedExecutor(2, max_tasks_per_child=20) as ex:
        assert list(ex.map(w.square, range(200))) == [x * x for x in range(200)]
        workers = conftest.scheduler_of(ex).workers
        assert ex.statistics().recycled >= 8
        # The results come before the workers' IDLE: wait for both to be idle.
        assert wait_until(lambda: conftest.ask(lambda: len(workers.idle)) == 2)
        assert conftest.ask(lambda: all(worker in workers.live for worker in workers.idle))


@pytest.mark.timeout(60)
def test_terminate_with_tasks_sent_ahead_fails_them_and_leaves_no_child(
        monkeypatch: Any) -> None:
    import time

    monkeypatch.setattr(workers_module, "AHEAD_WORK", 10.0)
    pool = IsolatedPool(2, maxtasksperchild=1000)
    assert pool.map(w.square, range(50), 1) == [x * x for x in range(50)]
    result = pool.map_async(w.sleep_for, [30] * 8, 1)  # each worker holds one, sent more
    workers = conftest.scheduler_of(pool).workers
    assert wait_until(lambda: conftest.ask(lambda: sum(w.jobs for w in workers.live)) == 8)
    zygote = conftest._zygote_pid()
    started = time.monotonic()
    pool.terminate()
    assert wait_until(lambda: not conftest.task_children(zygote), 1.0)
    assert time.monotonic() - started < 1.5
    with pytest.raises(WorkerLost):
        result.get(5)
    pool.join()


@pytest.mark.timeout(60)
def test_the_live_view_shows_each_worker_once(monkeypatch: Any) -> None:
    from isolator.cli.progress import BatchView

    monkeypatch.setattr(workers_module, "AHEAD_WORK", 10.0)
    with IsolatedExecutor(2, max_tasks_per_child=100) as ex:
        list(ex.map(w.square, range(30)))
        futures = [ex.submit(w.sleep_for, 1.0) for _ in range(8)]
        view = BatchView(8, ex, live=False)
        assert wait_until(lambda: len(view.worker_lines()) == 2)
        assert ex.statistics().running == 8  # six of them sent ahead, not shown
        pids = [line.split()[1] for line in view.worker_lines()]
        assert len(set(pids)) == 2
        wait(futures, timeout=30)


@pytest.mark.timeout(60)
def test_long_tasks_are_not_sent_ahead() -> None:
    with IsolatedExecutor(2, max_tasks_per_child=100) as ex:
        list(ex.map(w.sleep_for, [0.02] * 6))
        workers = conftest.scheduler_of(ex).workers
        # 20 ms tasks: one at a time, no head-of-line wait
        assert conftest.ask(lambda: workers.ahead) == 0
        list(ex.map(w.square, range(300)))
        task_time = conftest.ask(lambda: workers.task_time)
        assert task_time is not None and task_time < 0.02


def test_policies_compose_like_tenacity() -> None:
    policy = recycle_after_tasks(10) | recycle_on_idle_rss("100MiB")
    assert not policy(WorkerFacts(tasks_done=3, baseline_rss=10 * w.MiB, rss=20 * w.MiB))
    assert policy(WorkerFacts(tasks_done=10, baseline_rss=10 * w.MiB, rss=20 * w.MiB))
    assert policy(WorkerFacts(tasks_done=1, baseline_rss=10 * w.MiB, rss=200 * w.MiB))
    with pytest.raises(ConfigurationError):
        recycle_after_tasks(0)
    with pytest.raises(ConfigurationError):
        IsolatedExecutor(1, recycle="often")  # type: ignore[arg-type]


def _runs(pids: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for pid in pids:
        if runs and runs[-1][-1] == pid:
            runs[-1].append(pid)
        else:
            runs.append([pid])
    return runs


@pytest.mark.timeout(60)
def test_a_worker_that_keeps_growing_is_reported_and_warned_about(tmp_path: Any) -> None:
    import warnings

    from isolator import LeakWarning
    from isolator.reports import Report

    seen: list[Report] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with IsolatedExecutor(1, max_tasks_per_child=100, report_dir=tmp_path,
                              on_report=seen.append) as ex:
            for _ in range(6):
                ex.submit(w.hoard, 10).result()
            stats = ex.statistics()
    assert stats.leaks_suspected == 1
    assert any(issubclass(c.category, LeakWarning) for c in caught)
    (report,) = seen
    assert report.kind == "leak-suspected" and report.path is not None
    assert "suspected of leaking" in str(report)
    assert "_workloads._HOARD" in str(report)  # who keeps it alive


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("ignore::isolator.LeakWarning")  # this worker does leak
def test_after_a_recycle_rss_is_back_at_the_fresh_baseline() -> None:
    with IsolatedExecutor(1, recycle=recycle_on_growth("40MiB")) as ex:
        fresh = ex.submit(w.own_rss).result()
        grown = [ex.submit(w.hoard, 15).result() for _ in range(3)]  # 45 MiB kept: recycle
        after = ex.submit(w.own_rss).result()
        assert len(set(grown)) == 1  # the leaking tasks shared one worker
        assert ex.statistics().recycled >= 1
    assert after < fresh + 8 * w.MiB  # a new worker: the 45 MiB went back to the OS


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore::isolator.LeakWarning")
def test_a_leak_is_reported_once_a_pool_however_many_workers_show_it(tmp_path: Any) -> None:
    import warnings

    from isolator import LeakWarning

    seen: list[Any] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Each worker leaks 10 MiB a task and is replaced after eight: every worker
        # of the pool grows the same way.
        with IsolatedExecutor(2, recycle=recycle_after_tasks(8), report_dir=tmp_path,
                              on_report=seen.append) as ex:
            for _ in range(40):
                ex.submit(w.hoard, 10).result()
            stats = ex.statistics()
    assert stats.leaks_suspected >= 2  # counted for every worker
    assert len(seen) == 1  # reported, and warned about, once
    assert sum(issubclass(c.category, LeakWarning) for c in caught) == 1


@pytest.mark.timeout(60)
def test_a_breach_names_its_report_in_its_message(tmp_path: Any) -> None:
    from isolator import MemoryLimitExceeded, isolated

    with pytest.raises(MemoryLimitExceeded) as caught:
        isolated(max_mem="64MiB", report_dir=tmp_path)(w.die_on)(1, 1, "memory")
    report = caught.value.report
    assert report is not None and f"report: {report.path}/report.html" in str(caught.value)
