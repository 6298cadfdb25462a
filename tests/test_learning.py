"""The zygote learns what tasks import, so the next child of the same function starts
with it loaded; it never learns an import that starts a thread; what it holds is bounded
and visible (``isolator.zygote_modules()``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import _learning_jobs as lj
import conftest
import pytest
from conftest import wait_until

from isolator import IsolatedPool, isolated, zygote_modules

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def _zygote_threads() -> int:
    with open(f"/proc/{conftest._zygote_pid()}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("Threads"))


@pytest.mark.timeout(60)
def test_what_a_task_imported_is_preloaded_for_the_next_child_of_its_function() -> None:
    run = isolated(max_mem="256MB")(lj.import_then_report)
    _, already = run("_learn_once")
    assert not already  # the first child imported it itself
    assert wait_until(lambda: "_learn_once" in zygote_modules(), 10)
    _, already = run("_learn_once")
    assert already  # forked from a zygote that had it


@pytest.mark.timeout(60)
def test_a_pool_learns_through_its_chunks() -> None:
    with IsolatedPool(2) as pool:  # a fresh child for every chunk
        loaded_before = pool.map(lj.imports_in_a_map, range(40), chunksize=1)
    assert loaded_before[-10:] == [True] * 10  # the later chunks started warm
    assert loaded_before.count(False) <= 6  # only those forked before it was learned


@pytest.mark.timeout(60)
def test_an_import_that_starts_a_thread_is_never_learned() -> None:
    run = isolated(max_mem="256MB")(lj.import_then_report)
    for _ in range(3):
        _, already = run("_learn_starts_a_thread")
        assert not already
    assert "_learn_starts_a_thread" not in zygote_modules()
    assert _zygote_threads() == 1


def test_only_modules_a_task_needed_are_preloaded() -> None:
    run = isolated(max_mem="256MB")(lj.import_then_report)
    run("_learn_once")
    assert "_learn_unneeded" not in zygote_modules()


NAMED = """
    import sys, logging
    logging.basicConfig()
    sys.path.insert(0, {tests!r})
    from isolator import isolated
    import _learning_jobs as lj
    print(isolated(preload=["_learn_starts_a_thread"])(lj.import_then_report)("json")[1])
"""


@pytest.mark.timeout(60)
def test_a_named_preload_that_starts_a_thread_is_said_in_a_log_line() -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(NAMED.format(
        tests=str(TESTS)))], capture_output=True, text=True, timeout=50,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "does not preload _learn_starts_a_thread: its import started a thread" \
        in done.stderr


def test_the_learned_set_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from isolator._child import preload
    from isolator._engine.learning import MAX_PER_FUNCTION, Learning

    learning = Learning()
    learning.learn("m.f", [f"mod{i}" for i in range(MAX_PER_FUNCTION + 50)])
    assert len(learning.modules_for("m.f")) == MAX_PER_FUNCTION
    monkeypatch.setattr(preload, "MAX_MODULES", 1)
    loader = preload.Preloader()
    loaded, refused = loader.warm(("_learn_bound_a", "_learn_bound_b"), None)
    assert loaded == ["_learn_bound_a"] and "_learn_bound_b" not in sys.modules
    assert "at most 1 modules" in refused["_learn_bound_b"]
    loaded, refused = preload.Preloader().warm(("_learn_bound_b",), 1 << 20)
    assert "preloads nothing more" in refused["_learn_bound_b"]  # a quarter of 1 MiB


def test_preload_false_turns_the_learning_off() -> None:
    run = isolated(max_mem="256MB", preload=False)(lj.import_then_report)
    for _ in range(3):
        _, already = run("_learn_off")
        assert not already
    assert "_learn_off" not in zygote_modules()


@pytest.mark.timeout(60)
def test_preloaded_pages_count_once_and_a_childs_copies_of_them_count_for_it() -> None:
    from isolator import MemoryLimitExceeded

    isolated(max_mem="256MB")(lj.read_the_big_block)()
    assert wait_until(lambda: "_learn_big" in zygote_modules(), 10)
    # 24 MiB that the zygote holds and the child only shares: not the child's.
    already, size = isolated(max_mem="20MB")(lj.read_the_big_block)()
    assert already and size == (24 << 20) + ord("x")
    # Written, each page is copied into the child: its own, past a 20 MB cap.
    with pytest.raises(MemoryLimitExceeded) as caught:
        isolated(max_mem="20MB", timeout=30)(lj.write_the_big_block)()
    assert caught.value.peak > 20_000_000
