"""The engine with real children: nothing kills it, nothing blocks it, nothing piles up.

What a hostile result does (a pickle that calls ``sys.exit`` as it is loaded), what a
slow user hook does (it must not delay any other child's outcome or deadline), what
the loop leaves behind after thousands of tasks, and what happens if the loop dies
anyway (every pending task fails at once, and the next call starts a new engine).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import wait
from pathlib import Path
from typing import Any

import _workloads as w
import conftest
import pytest

from isolator import (
    IsolatedExecutor,
    IsolatedPool,
    MemoryLimitExceeded,
    SerializationError,
    TaskTimeout,
    isolated,
)

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}"}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["isolated", "fresh", "reused", "pool"])
def test_a_result_that_exits_as_it_is_loaded_fails_only_its_task(how: str) -> None:
    if how == "isolated":
        with pytest.raises(SerializationError, match="SystemExit"):
            isolated(w.exits_when_loaded)()
        assert isolated(w.echo)(3) == 3
        return
    if how == "pool":
        with IsolatedPool(2) as pool:
            bad = pool.apply_async(w.exits_when_loaded)
            assert pool.map(w.square, range(6)) == [x * x for x in range(6)]
            with pytest.raises(SerializationError):
                bad.get(30)
        return
    with IsolatedExecutor(2, max_tasks_per_child=1 if how == "fresh" else 50) as ex:
        bad = ex.submit(w.exits_when_loaded)
        good = [ex.submit(w.square, x) for x in range(10)]
        assert [f.result(timeout=30) for f in good] == [x * x for x in range(10)]
        assert isinstance(bad.exception(timeout=30), SerializationError)
        assert ex.submit(w.square, 4).result(timeout=30) == 16  # still usable
    with IsolatedExecutor(1) as again:  # and so is the process's engine
        assert again.submit(w.square, 5).result(timeout=30) == 25


@pytest.mark.timeout(60)
def test_a_slow_report_hook_delays_no_other_child(tmp_path: Path) -> None:
    # While the breach's on_report sleeps, the other tasks' outcomes keep arriving.
    hook_started, hook_may_return = threading.Event(), threading.Event()

    def slow_hook(report: Any) -> None:
        hook_started.set()
        hook_may_return.wait(20)

    with IsolatedExecutor(2, max_mem="64MiB", on_report=slow_hook,
                          report_dir=tmp_path) as ex:
        breach = ex.submit(w.die_on, 1, 1, "memory")
        assert hook_started.wait(30)
        quick = [ex.submit(w.square, x) for x in range(20)]
        done, _ = wait(quick, timeout=20)
        assert len(done) == 20  # all while the hook still sleeps
        assert not breach.done()  # a breach resolves once its report is made
        hook_may_return.set()
        exc = breach.exception(timeout=30)
        assert isinstance(exc, MemoryLimitExceeded) and exc.report is not None


@pytest.mark.timeout(60)
def test_a_slow_progress_hook_does_not_delay_a_timeout() -> None:
    release = threading.Event()
    calls: list[float] = []

    def slow_progress(future: Any) -> None:
        calls.append(time.monotonic())
        release.wait(20)

    with IsolatedExecutor(2, timeout=0.5, kill_grace=0.1, progress=slow_progress) as ex:
        ex.submit(w.square, 2).result(timeout=30)  # its hook now blocks the callbacks
        started = time.monotonic()
        late = ex.submit(w.sleep_for, 30)
        exc = late.exception(timeout=10)
        killed_after = time.monotonic() - started
        release.set()
    assert isinstance(exc, TaskTimeout)
    assert killed_after < 5  # the timeout was 0.5 s; without the hand-off it waited 20 s
    assert len(calls) == 2


@pytest.mark.timeout(120)
def test_deadlines_of_finished_tasks_do_not_pile_up() -> None:
    with IsolatedExecutor(2, max_tasks_per_child=10**6, timeout=600) as ex:
        assert sum(ex.map(w.square, range(3000))) == sum(x * x for x in range(3000))
        engine = conftest.get_engine()
        held = conftest.ask(lambda: engine.timers.size)
    assert held < 200, held  # 3,000 ten-minute deadlines were set; none is live now


DYING_LOOP = """
    import threading, time
    import _workloads as w
    from isolator import IsolatedExecutor, WorkerLost, isolated
    from isolator._engine import engine as engine_module

    ex = IsolatedExecutor(2)
    running = [ex.submit(w.sleep_for, 30) for _ in range(2)]
    queued = [ex.submit(w.square, x) for x in range(3)]
    time.sleep(0.5)
    first = engine_module.get_engine()
    original = first._flush

    def broken():
        first._flush = original
        raise SystemExit("a bug in the loop")

    first._flush = broken
    first.call_soon(lambda: None)  # wake it: the next round dies
    started = time.monotonic()
    errors = [type(f.exception(timeout=10)).__name__ for f in running + queued]
    print("failed:", errors, round(time.monotonic() - started, 1) < 5, flush=True)
    print("next call:", isolated(w.echo)(7), engine_module.get_engine() is not first)
    print("pool again:", ex.submit(w.square, 3).result(timeout=10))
    ex.shutdown()
"""


@pytest.mark.timeout(60)
def test_if_the_loop_dies_every_pending_task_fails_and_the_next_call_works() -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(DYING_LOOP)], env=ENV,
                          capture_output=True, text=True, timeout=50)
    assert done.returncode == 0, done.stderr
    assert "failed: ['WorkerLost', 'WorkerLost', 'WorkerLost', 'WorkerLost', " \
           "'WorkerLost'] True" in done.stdout, done.stdout + done.stderr
    assert "next call: 7 True" in done.stdout
    assert "pool again: 9" in done.stdout
    assert "the engine's loop failed" in done.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("reused", [False, True])
def test_payloads_bigger_than_a_socket_takes_at_once_are_written_in_full(
        reused: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # Forty 300 KB tasks sent ahead to two workers (or one 10 MB task per fresh child):
    # the socket takes part, the rest must follow when it has room. (It once waited
    # for the next task to be given instead, forever if none came.)
    from isolator._engine import workers

    monkeypatch.setattr(workers, "AHEAD_WORK", 10.0)
    size, count = (300_000, 40) if reused else (10 << 20, 4)
    with IsolatedExecutor(2, max_tasks_per_child=10**6 if reused else 1) as ex:
        list(ex.map(len, [b"x"] * 50))
        futures = [ex.submit(len, bytes(size)) for _ in range(count)]
        assert [f.result(timeout=30) for f in futures] == [size] * count
