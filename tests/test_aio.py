"""asyncio: ``await fn.aio(...)``, and the executor through ``run_in_executor`` and
``asyncio.wrap_future``, cancellation included."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import _fidelity_workloads as fw
import _workloads as w
import conftest
import pytest
import tenacity

from isolator import (
    IsolatedExecutor,
    MemoryLimitExceeded,
    RemoteTraceback,
    isolated,
    retry_if_worker_lost,
)


def run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(main(), 60))


def _comm(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:  # gone
        return None


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0]
    except OSError:  # gone
        return None


async def running_children(deadline: float = 10.0) -> list[int]:
    """The children running a task, once there is one (the loop goes on meanwhile)."""
    zygote = conftest._zygote_pid()
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = [p for p in conftest.task_children(zygote) if _comm(p) == "isolator-task"]
        if found:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError("no task child started")


def gone_within(pids: list[int], seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if all(_state(p) in (None, "Z") for p in pids):
            return True
        time.sleep(0.01)
    return False


@pytest.mark.timeout(60)
def test_an_awaited_call_returns_raises_and_breaches_as_a_call_does() -> None:
    async def main() -> None:
        assert await isolated(fw.square).aio(7) == 49
        assert await asyncio.gather(*(isolated(fw.square).aio(i) for i in range(5))) == \
            [0, 1, 4, 9, 16]
        with pytest.raises(ValueError, match="bad row") as caught:
            await isolated(w.raise_value_error).aio("bad row")
        assert isinstance(caught.value.__cause__, RemoteTraceback)
        with pytest.raises(MemoryLimitExceeded) as breach:
            await isolated(max_mem="64MB")(w.grow_python_objects).aio(64)
        assert breach.value.report is not None

    run(main)


@pytest.mark.timeout(60)
def test_the_event_loop_runs_while_the_child_does() -> None:
    async def main() -> int:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        await isolated(fw.sleep_then).aio(0.5)
        ticker.cancel()
        return ticks

    assert run(main) >= 10  # a blocked loop would have ticked once


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["cancel", "wait_for"])
def test_a_cancelled_await_kills_the_child(how: str) -> None:
    async def main() -> None:
        call = asyncio.ensure_future(isolated(kill_grace=0.2)(fw.sleep_then).aio(60))
        if how == "cancel":
            children = await running_children()
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        else:
            call.cancel()  # the one above is not wanted here
            waited = asyncio.ensure_future(asyncio.wait_for(
                isolated(kill_grace=0.2)(fw.sleep_then).aio(60), 0.5))
            children = await running_children()
            with pytest.raises(asyncio.TimeoutError):
                await waited
        assert gone_within(children, 2.0), children

    run(main)


@pytest.mark.timeout(60)
def test_the_awaited_retries_wait_without_blocking_the_loop(tmp_path: Path) -> None:
    call = isolated(retry=retry_if_worker_lost(), stop=tenacity.stop_after_attempt(2),
                    wait=tenacity.wait_fixed(0.3))(w.die_once)

    async def main() -> tuple[str, float]:
        started = time.monotonic()
        result = await call.aio(str(tmp_path / "marker"))
        return result, time.monotonic() - started

    result, took = run(main)
    assert result == "second time lucky" and took >= 0.3


EXECUTORS: dict[str, Callable[..., Any]] = {
    "ProcessPoolExecutor": cf.ProcessPoolExecutor, "IsolatedExecutor": IsolatedExecutor,
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", EXECUTORS)
def test_run_in_executor_and_wrap_future_as_with_the_stdlibs_executor(kind: str) -> None:
    # asyncio documents run_in_executor for a ProcessPoolExecutor: the same here. A
    # cancelled await cancels work not started yet; a task already running runs to
    # its end, as concurrent.futures cannot stop it (fn.aio() kills it instead).
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with EXECUTORS[kind](1) as ex:
            assert await loop.run_in_executor(ex, fw.square, 6) == 36
            assert await asyncio.wrap_future(ex.submit(fw.square, 7)) == 49
            running = ex.submit(fw.sleep_then, 0.5, "ran to its end")
            queued = ex.submit(fw.square, 9)  # ProcessPoolExecutor queues one beyond
            pending = ex.submit(fw.square, 8)
            waiting = asyncio.wrap_future(pending)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await asyncio.sleep(0.01)  # the cancel reaches the future through the loop
            assert pending.cancelled()
            awaited = asyncio.wrap_future(running)
            await asyncio.sleep(0.1)
            awaited.cancel()
            with pytest.raises(asyncio.CancelledError):
                await awaited
            assert running.result(timeout=30) == "ran to its end"
            assert queued.result(timeout=30) == 81

    run(main)
