"""The engine's pure rules, fast: scheduling against a fake engine, deadlines, counters,
how an ending is classified, retries and escalation, admission. No child process here
(the same rules run against real children in test_pools, test_reuse and test_retries)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
import tenacity
from _fake_engine import MiB, scheduler, unit

from isolator import (
    ConfigurationError,
    MemoryLimitExceeded,
    TaskTimeout,
    WorkerLost,
    WorkerStartupError,
    escalate_memory,
    recycle_after_tasks,
    recycle_any,
)
from isolator._engine.children import State
from isolator._engine.outcome import Ending, resolve
from isolator._engine.timers import PRUNE_FLOOR, Timers
from isolator._errors import NotStarted
from isolator._model import admission
from isolator._model.leaks import LeakWatch
from isolator._model.retry import make_retry_policy, retry_if_memory_exceeded
from isolator._model.statistics import RECENT, Tally
from isolator._model.values import Limits

# -- fresh children: FIFO, slots, admission ------------------------------------------------


def test_units_start_in_order_up_to_the_number_of_workers() -> None:
    engine, sched = scheduler(2)
    units = [unit(sched, f"u{i}") for i in range(5)]
    assert [job.name for job in engine.fresh] == ["u0", "u1"]
    engine.finish(engine.fresh[0], 10)
    assert [job.name for job in engine.fresh] == ["u0", "u1", "u2"]
    assert units[0].future.result() == 10 and units[1].future.running()
    assert sched.snapshot().pending == 2 and sched.snapshot().running == 2


def test_the_head_of_the_queue_waits_for_room_in_the_budget() -> None:
    engine, sched = scheduler(4, max_mem=40 * MiB, budget=100 * MiB)
    unit(sched, "a")
    unit(sched, "b")
    unit(sched, "big", cap=90 * MiB)
    unit(sched, "small")  # would fit, but must not overtake the big one
    assert [job.name for job in engine.fresh] == ["a", "b"]
    engine.finish(engine.fresh[0])
    assert [job.name for job in engine.fresh] == ["a", "b"]  # 40 + 90 > 100: still waiting
    engine.finish(engine.fresh[1])
    assert [job.name for job in engine.fresh] == ["a", "b", "big"]
    assert sched.tally.peak_admitted == 90 * MiB


def test_a_cancelled_pending_unit_never_starts() -> None:
    engine, sched = scheduler(1)
    unit(sched, "first")
    second = unit(sched, "second")
    assert second.future.cancel()
    engine.finish(engine.fresh[0])
    assert [job.name for job in engine.fresh] == ["first"]
    assert sched.snapshot().cancelled == 1 and sched.drained


def test_join_waits_for_the_last_unit_and_its_progress_hook() -> None:
    seen: list[Any] = []
    engine, sched = scheduler(1, progress=seen.append)
    first = unit(sched)
    drained: list[bool] = []
    sched.when_drained(lambda: drained.append(True))
    assert not drained
    engine.finish(engine.fresh[0], 1)
    assert drained == [True] and seen == [first.future]


def test_a_hook_that_submits_more_work_keeps_join_waiting() -> None:
    engine, sched = scheduler(1)
    sched.settings = sched.settings._replace(progress=lambda f: more.append(unit(sched)))
    more: list[Any] = []
    unit(sched)
    drained: list[bool] = []
    sched.when_drained(lambda: drained.append(True))
    engine.finish(engine.fresh[0])  # its hook queues one more unit
    assert not drained and len(more) == 1
    sched.settings = sched.settings._replace(progress=None)
    engine.finish(engine.fresh[1])
    assert drained == [True]


# -- retries -------------------------------------------------------------------------------


def _breach(limit: int, peak: int) -> MemoryLimitExceeded:
    return MemoryLimitExceeded("over", limit=limit, peak=peak, kind="hard")


def test_a_retry_escalates_its_cap_clamped_to_the_budget_and_goes_first() -> None:
    policy = make_retry_policy(escalate=escalate_memory(2.0))
    engine, sched = scheduler(1, max_mem=64 * MiB, budget=100 * MiB, retry=policy)
    failing = unit(sched, "big")
    unit(sched, "next")
    engine.finish(engine.fresh[0], exc=_breach(64 * MiB, 70 * MiB))
    retry = engine.fresh[1]
    assert retry.name == "big" and retry.limits.max_mem == 100 * MiB  # 128 MiB, clamped
    engine.finish(retry, "done")
    assert failing.future.result() == "done" and sched.snapshot().retried == 1


def test_every_attempt_is_recorded_on_the_last_error() -> None:
    policy = make_retry_policy(retry=retry_if_memory_exceeded(),
                               stop=tenacity.stop_after_attempt(2))
    engine, sched = scheduler(1, max_mem=64 * MiB, retry=policy)
    failing = unit(sched)
    engine.finish(engine.fresh[0], exc=_breach(64 * MiB, 70 * MiB))
    engine.finish(engine.fresh[1], exc=_breach(64 * MiB, 71 * MiB))
    exc = failing.future.exception()
    assert isinstance(exc, MemoryLimitExceeded) and exc.peak == 71 * MiB
    assert [a.peak for a in exc.attempts] == [70 * MiB, 71 * MiB]  # type: ignore[attr-defined]


def test_a_retry_wait_is_an_engine_timer_and_terminate_ends_it() -> None:
    policy = make_retry_policy(retry=tenacity.retry_if_exception_type(ValueError),
                               wait=tenacity.wait_fixed(30))
    engine, sched = scheduler(1, retry=policy)
    waiting = unit(sched)
    engine.finish(engine.fresh[0], exc=ValueError("flaky"))
    assert len(engine.timers) == 1 and not sched.drained  # waiting out its 30 s
    sched.kill_running()
    assert isinstance(waiting.future.exception(), ValueError) and sched.drained
    assert len(engine.timers) == 0


def test_a_retry_after_its_wait_runs_again() -> None:
    policy = make_retry_policy(retry=tenacity.retry_if_exception_type(ValueError),
                               wait=tenacity.wait_fixed(0.01))
    engine, sched = scheduler(1, retry=policy)
    waiting = unit(sched)
    engine.finish(engine.fresh[0], exc=ValueError("flaky"))
    engine.advance(1.0)
    engine.finish(engine.fresh[1], "ok")
    assert waiting.future.result() == "ok"


def test_a_retry_strategy_that_raises_fails_the_unit_with_its_error() -> None:
    def broken(state: Any) -> bool:
        raise SystemExit("a strategy's bug")

    engine, sched = scheduler(1, retry=make_retry_policy(retry=broken))
    failing = unit(sched)
    engine.finish(engine.fresh[0], exc=ValueError("task"))
    exc = failing.future.exception()
    assert isinstance(exc, SystemExit) and isinstance(exc.__context__, ValueError)


# -- reused workers --------------------------------------------------------------------------


def test_units_go_to_idle_workers_then_new_ones_then_the_least_loaded() -> None:
    engine, sched = scheduler(2, recycle=recycle_any())
    assert sched.workers is not None
    sched.workers.ahead = 2
    first, second = unit(sched, "a"), unit(sched, "b")
    assert len(engine.children) == 2  # one new worker each
    one, two = engine.children
    engine.hello(one)
    engine.hello(two)
    unit(sched, "c")
    unit(sched, "d")
    assert (one.jobs, two.jobs) == (2, 2)  # sent ahead, spread
    engine.finish(first.job)  # type: ignore[arg-type]
    engine.idle(one)
    assert one.current is not None and one.current.name == "c"
    assert second.future.running()


def test_nothing_is_sent_ahead_to_a_retiring_or_tainted_worker_or_with_other_limits() -> None:
    engine, sched = scheduler(1, max_mem=64 * MiB, recycle=recycle_after_tasks(2))
    workers = sched.workers
    assert workers is not None
    workers.ahead = 8
    unit(sched, "a")
    (worker,) = engine.children
    engine.hello(worker)
    unit(sched, "b")  # the second of its two tasks: sent ahead
    unit(sched, "c")  # would be its third: the policy replaces it after two
    assert worker.jobs == 2 and len(sched.pending) == 1
    other = unit(sched, "escalated", cap=128 * MiB)
    assert other.job is None  # not behind a task with another cap
    worker.tainted = True
    assert not workers._takes_next(worker, worker.limits)


def test_a_breached_worker_is_replaced_and_what_it_held_runs_elsewhere() -> None:
    engine, sched = scheduler(1, max_mem=64 * MiB, recycle=recycle_any())
    assert sched.workers is not None
    sched.workers.ahead = 4
    first = unit(sched, "breaches")
    (worker,) = engine.children
    engine.hello(worker)
    behind = [unit(sched, f"behind{i}") for i in range(3)]
    worker.tainted = True
    engine.finish(first.job, exc=_breach(64 * MiB, 70 * MiB))  # type: ignore[arg-type]
    engine.exit(worker)
    assert sched.snapshot().resent == 3 and sched.snapshot().recycled == 1
    replacement = engine.children[1]
    assert replacement.current is not None and replacement.current.name == "behind0"
    assert all(not u.future.done() for u in behind)


def test_a_policy_that_raises_recycles_its_worker(caplog: pytest.LogCaptureFixture) -> None:
    def broken(facts: Any) -> bool:
        raise RuntimeError("a policy's bug")

    policy = recycle_any()
    policy.policies = (broken,)  # type: ignore[assignment]
    engine, sched = scheduler(1, recycle=policy)
    first = unit(sched)
    (worker,) = engine.children
    engine.hello(worker)
    engine.finish(first.job)  # type: ignore[arg-type]
    engine.idle(worker)
    assert engine.retired == [worker] and len(engine.children) == 2
    assert "the recycle policy" in caplog.text


def test_a_fresh_replacement_is_never_recycled_before_it_ran_anything() -> None:
    engine, sched = scheduler(1, recycle=recycle_after_tasks(1) | recycle_any())
    engine.hello(engine.start_worker(sched.workers, sched.settings.limits,
                                     sched.settings.reporting, ()))
    assert not engine.retired and len(sched.workers.idle) == 1  # type: ignore[union-attr]


def test_closing_lets_idle_workers_go() -> None:
    engine, sched = scheduler(2, recycle=recycle_any())
    first = unit(sched)
    (worker,) = engine.children
    engine.hello(worker)
    engine.finish(first.job)  # type: ignore[arg-type]
    engine.idle(worker)
    assert worker.state is State.IDLE
    sched.close()
    assert engine.retired == [worker]


def test_a_worker_that_keeps_growing_is_examined_once() -> None:
    watch = LeakWatch()
    rising = [watch.suspect(1, n, 10 * MiB, (10 + 10 * n) * MiB, None) for n in range(1, 6)]
    assert rising[:2] == [None, None] and rising[2] is not None
    assert rising[3:] == [None, None]  # reported once
    flat = [watch.suspect(2, n, 10 * MiB, 40 * MiB, None) for n in range(1, 6)]
    assert flat == [None] * 5


# -- deadlines and counters stay bounded ---------------------------------------------------


def test_cancelled_deadlines_are_pruned() -> None:
    timers = Timers()
    for _ in range(20_000):  # 20,000 tasks with timeout=600, each done in time
        timers.cancel(timers.at(time.monotonic() + 600, lambda: None))
    timers.at(time.monotonic() + 600, lambda: None)
    assert len(timers) == 1 and timers.size <= 2 * PRUNE_FLOOR + 2


def test_deadlines_fire_in_order_once() -> None:
    timers = Timers()
    fired: list[int] = []
    now = time.monotonic()
    for i in (3, 1, 2):
        timers.at(now - 1 + i / 1000, lambda i=i: fired.append(i))  # type: ignore[misc]
    dropped = timers.at(now - 1, lambda: fired.append(0))
    timers.cancel(dropped)
    for action in timers.due():
        action()
    assert fired == [1, 2, 3] and timers.due() == [] and timers.sleep_for() is None


def test_statistics_keep_running_aggregates_not_every_task() -> None:
    tally = Tally()
    for i in range(140_000):
        tally.peak(i)
        tally.outcome(None)
    snapshot = tally.snapshot(0, 0)
    assert len(snapshot.peak_rss_per_task) == RECENT
    assert snapshot.peak_rss == 139_999 and snapshot.mean_peak_rss == 69_999
    assert snapshot.peak_rss_per_task[-1] == 139_999 and snapshot.completed == 140_000


# -- how an ending is classified -----------------------------------------------------------

KILLED = signal.SIGKILL  # a wait status of "killed by SIGKILL" is the signal number


@pytest.mark.parametrize(("facts", "expected", "kind"), [
    ({"stop_reason": "hard"}, MemoryLimitExceeded, "hard"),
    ({"oom_killed": True}, MemoryLimitExceeded, "kernel-oom"),
    ({"stop_reason": "timeout"}, TaskTimeout, None),
    ({"stop_reason": "startup"}, WorkerStartupError, None),
    ({"hello": False}, WorkerStartupError, None),
    ({"rlimit": True, "status": int(signal.SIGSEGV)}, MemoryLimitExceeded, "rlimit"),
    ({"stop_reason": "cancelled"}, WorkerLost, None),
    ({}, WorkerLost, None),
])
def test_each_death_is_classified(facts: dict[str, Any], expected: type[BaseException],
                                  kind: str | None) -> None:
    ending = {"pid": 7, "status": int(KILLED), "hello": True, "stop_reason": None,
              "limit": 64 * MiB, "peak": 70 * MiB, "timeout": 1.0, "oom_killed": False,
              "rlimit": False, **facts}
    ok, exc, _ = resolve(None, lambda: Ending(**ending))
    assert not ok and type(exc) is expected
    if kind is not None:
        assert exc.kind == kind and exc.peak == 70 * MiB


def test_a_result_whose_unpickling_raises_system_exit_is_that_tasks_error() -> None:
    from isolator import SerializationError
    from isolator._wire import frames

    ok, exc, _ = resolve((frames.RESULT, b"\x80\x05cbuiltins\nexit\n)R."), lambda: None)  # type: ignore[arg-type,return-value]
    assert not ok and isinstance(exc, SerializationError) and "SystemExit" in str(exc)


def test_an_exit_status_is_read_from_the_wait_status() -> None:
    _, exc, _ = resolve(None, lambda: Ending(7, os.waitstatus_to_exitcode(3 << 8) << 8,
                                             True, None, None, 0, None, False, False))
    assert isinstance(exc, WorkerLost) and exc.exitcode == 3


# -- admission and escalation ----------------------------------------------------------------


def test_admission_rules() -> None:
    assert admission.admits(None, 10**12, 10**12)
    assert admission.admits(100, 60, 40) and not admission.admits(100, 61, 40)
    limits = Limits(max_mem=200 * MiB)
    assert admission.misfit(limits, 100 * MiB) is not None
    assert admission.misfit(limits, 300 * MiB) is None
    clamped = admission.clamped(limits, 100 * MiB)
    assert clamped.max_mem == 100 * MiB and clamped.soft_mem == 100 * MiB - 12.5 * MiB


def test_escalation_takes_the_larger_of_factor_and_peak_under_the_ceiling() -> None:
    policy = make_retry_policy(escalate=escalate_memory(2.0, ceiling="300MiB"))
    assert policy is not None
    state = policy.new_state()
    decision = policy.after_failure(state, _breach(64 * MiB, 200 * MiB), Limits(max_mem=64 * MiB))
    assert decision is not None and decision.limits.max_mem == 250 * MiB  # 1.25 x the peak
    decision = policy.after_failure(state, _breach(250 * MiB, 260 * MiB), decision.limits)
    assert decision is not None and decision.limits.max_mem == 300 * MiB  # the ceiling
    assert policy.after_failure(state, _breach(1, 2), decision.limits) is None  # 3 attempts
    with pytest.raises(ConfigurationError):
        escalate_memory(0.5)


def test_a_unit_that_never_started_is_not_a_failure() -> None:
    assert issubclass(NotStarted, WorkerLost)  # what a caller sees only at terminate()
