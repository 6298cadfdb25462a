"""Retries with tenacity strategies, memory escalation, and memory-aware admission."""

from __future__ import annotations

from pathlib import Path

import _workloads as w
import pytest
import tenacity

from isolator import (
    ConfigurationError,
    IsolatedExecutor,
    IsolatedPool,
    MemoryLimitExceeded,
    escalate_memory,
    isolated,
    retry_if_memory_exceeded,
    retry_if_worker_lost,
)

MiB = w.MiB


@pytest.mark.timeout(60)
def test_escalation_succeeds_on_the_third_attempt() -> None:
    call = isolated(max_mem="32MiB", escalate=escalate_memory(2.0, ceiling="1GiB"))(w.need_mib)
    assert call(80) == 80  # 32 MiB fails, 64 MiB fails, 128 MiB holds


@pytest.mark.timeout(60)
def test_when_every_attempt_fails_the_last_real_error_carries_all_attempts() -> None:
    call = isolated(max_mem="32MiB", retry=retry_if_memory_exceeded(),
                    stop=tenacity.stop_after_attempt(2), escalate=escalate_memory(2.0))(w.need_mib)
    with pytest.raises(MemoryLimitExceeded) as info:
        call(300)
    attempts = info.value.attempts  # type: ignore[attr-defined]
    assert [a.limit for a in attempts] == [32 * MiB, 64 * MiB]
    assert attempts[-1] is info.value


@pytest.mark.timeout(60)
def test_ceiling_bounds_the_escalation() -> None:
    call = isolated(max_mem="32MiB", escalate=escalate_memory(4.0, ceiling="48MiB"))(w.need_mib)
    with pytest.raises(MemoryLimitExceeded) as info:
        call(200)
    assert info.value.limit == 48 * MiB


@pytest.mark.timeout(60)
def test_retry_if_worker_lost(tmp_path: Path) -> None:
    call = isolated(retry=retry_if_worker_lost())(w.die_once)
    assert call(str(tmp_path / "marker")) == "second time lucky"


def test_user_errors_are_not_retried_by_the_memory_condition() -> None:
    call = isolated(retry=retry_if_memory_exceeded())(w.raise_value_error)
    with pytest.raises(ValueError) as info:
        call("nope")
    assert len(info.value.attempts) == 1  # type: ignore[attr-defined]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("api", ["executor", "pool"])
def test_pools_retry_with_escalation(api: str) -> None:
    options = {"max_mem": "32MiB", "escalate": escalate_memory(2.0)}
    if api == "executor":
        with IsolatedExecutor(2, **options) as ex:  # type: ignore[arg-type]
            assert list(ex.map(w.need_mib, [1, 80, 2])) == [1, 80, 2]
            stats = ex.statistics()
    else:
        with IsolatedPool(2, **options) as pool:  # type: ignore[arg-type]
            assert pool.map(w.need_mib, [1, 80, 2], 1) == [1, 80, 2]
            stats = pool.statistics()
    assert stats.retried == 2 and stats.failed == 0


@pytest.mark.timeout(60)
def test_admission_never_exceeds_the_budget(tmp_path: Path) -> None:
    spans = tmp_path / "spans"
    with IsolatedExecutor(4, max_mem="40MiB", memory_budget="100MiB") as ex:
        for _ in range(6):
            ex.submit(w.record_span, str(spans), 0.3)
    stats = ex.statistics()
    assert stats.completed == 6
    assert stats.peak_admitted == 80 * MiB  # two 40 MiB caps fit in 100 MiB, three do not
    intervals = [tuple(map(float, line.split())) for line in spans.read_text().splitlines()]
    most = max(sum(1 for s, e in intervals if s <= t < e) for t, _ in intervals)
    assert most <= 2


def test_a_cap_larger_than_the_budget_fails_when_the_pool_is_made() -> None:
    with pytest.raises(ConfigurationError, match="budget"):
        IsolatedExecutor(2, max_mem="1GiB", memory_budget="512MiB")
    with pytest.raises(ConfigurationError, match="budget"):
        IsolatedPool(2, max_mem="1GiB", memory_budget="512MiB")


def test_bad_retry_options() -> None:
    with pytest.raises(ConfigurationError):
        isolated(stop=tenacity.stop_after_attempt(2))
    with pytest.raises(ConfigurationError):
        isolated(retry="yes")
    with pytest.raises(ConfigurationError):
        escalate_memory(0.5)


@pytest.mark.timeout(60)
def test_a_retry_strategy_that_raises_fails_its_task_with_that_error() -> None:
    def broken(exc: BaseException) -> bool:
        raise KeyError("bug in a user's retry predicate")

    with IsolatedExecutor(2, retry=tenacity.retry_if_exception(broken)) as ex:
        futures = [ex.submit(w.fail_on, x, 3) for x in range(6)]
        outcomes = [f.exception(timeout=30) or f.result() for f in futures]
    assert [o for i, o in enumerate(outcomes) if i != 3] == [0, 1, 2, 4, 5]
    assert isinstance(outcomes[3], KeyError)
    assert isinstance(outcomes[3].__context__, ValueError)  # the task's own error


def test_escalation_stops_at_8gb_unless_told_otherwise() -> None:
    from isolator import parse_size

    default = escalate_memory()
    assert (default.factor, default.ceiling) == (2.0, parse_size("8GB"))
    assert default.next_cap(parse_size("6GB"), 0) == parse_size("8GB")
    assert default.next_cap(100, 1000) == 1250  # 1.25 x the peak beats 2 x the cap
    assert escalate_memory(ceiling=None).next_cap(parse_size("6GB"), 0) == parse_size("12GB")
