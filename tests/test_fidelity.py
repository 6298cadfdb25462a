"""isolator's pools against the stdlib's, item by item: the same check on both.

Each test states what CPython 3.11 documents (or its own test suite checks) for
``ProcessPoolExecutor`` and ``multiprocessing.Pool``, and runs it against the stdlib's
pool too, so that the expectation is known to be real; the ``Pool`` rows run against
``multiprocess.Pool`` (the dill-based fork of multiprocessing) as well. Where isolator
differs on purpose (docs/pools.md), the test says what each side does.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import gc
import multiprocessing
import multiprocessing.pool
import os
import pickle
import subprocess
import sys
import textwrap
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import _fidelity_workloads as fw
import multiprocess  # type: ignore[import-untyped]
import multiprocess.pool  # type: ignore[import-untyped]
import pytest
from conftest import wait_until

from isolator import (
    IsolatedExecutor,
    IsolatedPool,
    PicklingFailed,
    RemoteError,
    UnpicklingFailed,
)

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

EXECUTORS: dict[str, Callable[..., Any]] = {
    "ProcessPoolExecutor": cf.ProcessPoolExecutor,
    "IsolatedExecutor": IsolatedExecutor,
}
POOLS: dict[str, Callable[..., Any]] = {
    "multiprocessing.Pool": multiprocessing.Pool,
    "multiprocess.Pool": multiprocess.Pool,
    "IsolatedPool": IsolatedPool,
}
ISOLATOR = {"IsolatedExecutor", "IsolatedPool"}


@pytest.fixture(autouse=True)
def reap_stdlib_workers() -> Iterator[None]:
    # The stdlib's pools leave their joined workers' Process objects (and their pipes)
    # to be collected; the leftover check that follows must not count them.
    yield
    multiprocessing.active_children()
    multiprocess.active_children()
    gc.collect()


@contextlib.contextmanager
def pool_of(kind: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
    """A Pool of ``kind``, terminated and joined at the end (its handler threads too)."""
    pool = POOLS[kind](*args, **kwargs)
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


def freed(ref: weakref.ref[Any]) -> bool:
    gc.collect()
    return ref() is None


def outcome(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as exc:
        return exc


# -- 1 and 2: what cannot be pickled or loaded -------------------------------------------

@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", EXECUTORS)
def test_1_a_result_that_exits_as_it_is_loaded_fails_its_task(kind: str) -> None:
    # Both: the task fails and SystemExit never unwinds a thread of the caller.
    # ProcessPoolExecutor's is BrokenProcessPool and the executor is broken; isolator's
    # (docs/pools.md) is that task's UnpicklingFailed, and the executor goes on.
    with EXECUTORS[kind](1) as ex:
        error = ex.submit(fw.return_exits_when_loaded).exception(timeout=60)
        assert error is not None and not isinstance(error, SystemExit)
        if kind in ISOLATOR:
            assert isinstance(error, UnpicklingFailed) and "SystemExit" in str(error)
            assert isinstance(error, pickle.UnpicklingError)
            assert ex.submit(fw.square, 3).result(timeout=60) == 9
        else:
            assert isinstance(error, BrokenProcessPool)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", EXECUTORS)
def test_2_an_argument_that_exits_as_the_child_loads_it_fails_its_task(kind: str) -> None:
    with EXECUTORS[kind](1) as ex:
        error = ex.submit(fw.identity, fw.ExitsWhenLoaded()).exception(timeout=60)
        assert error is not None and not isinstance(error, SystemExit)
        if kind in ISOLATOR:
            assert isinstance(error, UnpicklingFailed) and "SystemExit" in str(error)
            assert ex.submit(fw.square, 4).result(timeout=60) == 16
        else:
            assert isinstance(error, BrokenProcessPool)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", EXECUTORS)
def test_2_an_argument_or_result_that_will_not_pickle_is_a_pickling_error(kind: str) -> None:
    # The stdlib sets the __reduce__'s own PicklingError on the future; isolator's is a
    # PicklingError too, with that exception as its cause.
    with EXECUTORS[kind](1) as ex:
        for future in (ex.submit(fw.identity, fw.Unpicklable()),
                       ex.submit(fw.return_unpicklable)):
            error = future.exception(timeout=60)
            assert isinstance(error, pickle.PicklingError), error
            assert "Unpicklable refuses to be pickled" in str(error)
        assert ex.submit(fw.square, 5).result(timeout=60) == 25
    if kind in ISOLATOR:
        with IsolatedExecutor(1) as ex:
            error = ex.submit(fw.identity, fw.Unpicklable()).exception(timeout=60)
            assert isinstance(error, PicklingFailed)
            assert isinstance(error.__cause__, pickle.PicklingError)
            assert str(error.__cause__) == "Unpicklable refuses to be pickled"


# -- 4 and 5: executor.map's references, submit at exit -------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("chunksize", [1, 3])
@pytest.mark.parametrize("kind", EXECUTORS)
def test_4_an_object_yielded_by_map_is_freed_once_the_caller_drops_it(
        kind: str, chunksize: int) -> None:
    # CPython's test_free_reference: map's iterator keeps no reference to what it yielded
    # (it is freed within moments: CPython's own test retries, as here).
    with EXECUTORS[kind](2) as ex:
        for obj in ex.map(fw.make_counted, range(6), chunksize=chunksize):
            ref = weakref.ref(obj)
            del obj
            assert wait_until(lambda: freed(ref))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", EXECUTORS)
def test_5_submit_after_interpreter_shutdown_began_raises_runtime_error(kind: str) -> None:
    script = textwrap.dedent(f"""
        import atexit, sys
        sys.path.insert(0, {str(TESTS)!r})
        import _fidelity_workloads as fw
        from concurrent.futures import ProcessPoolExecutor
        from isolator import IsolatedExecutor

        ex = {kind}(1)
        assert ex.submit(fw.square, 2).result(timeout=30) == 4

        def late():
            try:
                ex.submit(fw.square, 3)
            except RuntimeError as exc:
                print("RuntimeError:", exc)
            else:
                print("accepted")

        atexit.register(late)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=50, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    # ProcessPoolExecutor says "after shutdown" here: its exit hook shut it down first.
    assert done.stdout.startswith("RuntimeError: cannot schedule new futures after ")


# -- 6, 7, 8: sizes, reuse, a terminated pool -------------------------------------------------

@pytest.mark.parametrize(("kind", "call", "words"), [
    ("ProcessPoolExecutor", lambda: cf.ProcessPoolExecutor(0),
     "max_workers must be greater than 0"),
    ("IsolatedExecutor", lambda: IsolatedExecutor(0), "max_workers must be greater than 0"),
    ("ProcessPoolExecutor", lambda: cf.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=0),
     "max_tasks_per_child must be >= 1"),
    ("IsolatedExecutor", lambda: IsolatedExecutor(1, max_tasks_per_child=0),
     "max_tasks_per_child must be >= 1"),
    ("multiprocessing.Pool", lambda: multiprocessing.Pool(0),
     "Number of processes must be at least 1"),
    ("multiprocess.Pool", lambda: multiprocess.Pool(0),
     "Number of processes must be at least 1"),
    ("IsolatedPool", lambda: IsolatedPool(0), "Number of processes must be at least 1"),
    ("multiprocessing.Pool", lambda: multiprocessing.Pool(1, maxtasksperchild=0),
     "maxtasksperchild must be a positive int or None"),
    ("IsolatedPool", lambda: IsolatedPool(1, maxtasksperchild=0),
     "maxtasksperchild must be a positive int or None"),
], ids=["executor", "isolated-executor", "executor-tasks", "isolated-executor-tasks",
        "pool", "multiprocess-pool", "isolated-pool", "pool-tasks", "isolated-pool-tasks"])
def test_6_bad_sizes_are_value_errors_with_the_stdlib_words(
        kind: str, call: Callable[[], Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        call()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", [*EXECUTORS, *POOLS])
def test_7_an_explicit_none_reuses_workers_for_as_long_as_the_pool_lives(kind: str) -> None:
    if kind in EXECUTORS:
        with EXECUTORS[kind](1, max_tasks_per_child=None) as ex:
            reused = set(ex.map(fw.pid, range(6)))
        with EXECUTORS[kind](1) as ex:
            omitted = set(ex.map(fw.pid, range(6)))
    else:
        with pool_of(kind, 1, maxtasksperchild=None) as pool:
            reused = set(pool.map(fw.pid, range(6), chunksize=1))
        with pool_of(kind, 1) as pool:
            omitted = set(pool.map(fw.pid, range(6), chunksize=1))
    assert len(reused) == 1
    # Omitted, the stdlib reuses too; isolator gives each unit a fresh process
    # (docs/pools.md).
    assert len(omitted) == (6 if kind in ISOLATOR else 1)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stop", ["terminate", "close"])
@pytest.mark.parametrize("kind", POOLS)
def test_8_a_pool_that_is_not_running_cannot_be_entered(kind: str, stop: str) -> None:
    with pool_of(kind, 1) as pool:
        getattr(pool, stop)()
        with pytest.raises(ValueError, match="Pool not running"), pool:
            pass
        with pytest.raises(ValueError, match="Pool not running"):
            pool.apply_async(fw.square, (2,))


# -- 9, 10, 11: imap's input, what will not pickle, what results keep alive --------------

def _drain(results: Iterator[Any]) -> list[Any]:
    got: list[Any] = []
    while True:
        try:
            got.append(next(results))
        except StopIteration:
            return got
        except ValueError as exc:
            got.append(str(exc))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", POOLS)
def test_9_imap_raises_the_input_iterators_error_in_its_place(kind: str) -> None:
    error = "the input broke at item 3"
    with pool_of(kind, 2) as pool:
        assert _drain(pool.imap(fw.square, fw.read_items(6, bad=3))) == [0, 1, 4, error]
        unordered = _drain(pool.imap_unordered(fw.square, fw.read_items(6, bad=3)))
        assert sorted(map(str, unordered)) == sorted(["0", "1", "4", error])
        # With chunks, Pool loses the chunk being read when the error came (item 2 here);
        # isolator sends what it read, then the error (docs/pools.md).
        chunked = _drain(pool.imap(fw.square, fw.read_items(6, bad=3), 2))
        assert chunked == ([0, 1, 4, error] if kind in ISOLATOR else [0, 1, error])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", POOLS)
def test_10_what_will_not_pickle_raises_the_stdlib_types(kind: str) -> None:
    with pool_of(kind, 2) as pool:
        # An argument: the __reduce__'s own PicklingError (isolator's is one too).
        with pytest.raises(pickle.PicklingError, match="Unpicklable refuses") as caught:
            pool.map(fw.identity, [1, fw.Unpicklable()])
        if kind in ISOLATOR:
            assert isinstance(caught.value.__cause__, pickle.PicklingError)
        # A result: MaybeEncodingError (multiprocess has a class of its own of that name).
        encoding_error = (multiprocess.pool.MaybeEncodingError if kind == "multiprocess.Pool"
                          else multiprocessing.pool.MaybeEncodingError)
        for call in (lambda: pool.map(fw.return_unpicklable, range(3)),
                     lambda: pool.apply(fw.return_unpicklable)):
            error = outcome(call)
            assert isinstance(error, encoding_error), error
            assert "Unpicklable refuses to be pickled" in error.exc
            assert "Unpicklable object" in error.value
            assert str(error).startswith("Error sending result: ")
        # A lambda as the result: only multiprocessing cannot send it; multiprocess and
        # isolator send it by value (dill), docs/pools.md.
        returned = outcome(lambda: pool.apply(fw.return_lambda))
        if kind == "multiprocessing.Pool":
            assert isinstance(returned, multiprocessing.pool.MaybeEncodingError)
        else:
            assert returned() == 42
        assert pool.apply(fw.square, (6,)) == 36  # and the pool goes on


@pytest.mark.timeout(90)
@pytest.mark.parametrize("reuse", [1, None], ids=["fresh", "reused"])
@pytest.mark.parametrize("kind", POOLS)
def test_11_returned_objects_are_freed_once_the_caller_drops_them(
        kind: str, reuse: int | None) -> None:
    # CPython's test_release_task_refs: no copy of an argument or a result is kept.
    assert fw.Counted.live == 0
    with pool_of(kind, 2, maxtasksperchild=reuse) as pool:
        arguments = [fw.Counted() for _ in range(5)]
        assert len(pool.map(fw.identity, arguments)) == 5
        assert isinstance(pool.apply_async(fw.make_counted).get(60), fw.Counted)
        for item in pool.imap(fw.make_counted, range(4)):
            del item
        del arguments

        def all_freed() -> bool:
            gc.collect()
            return fw.Counted.live == 0

        assert wait_until(all_freed), fw.Counted.live


# -- 12: exceptions with a custom __init__ ---------------------------------------------------

def _raised(kind: str, fn: Callable[[], None]) -> BaseException:
    if kind in EXECUTORS:
        with EXECUTORS[kind](1) as ex:
            error = ex.submit(fn).exception(timeout=60)
            assert error is not None
            return error
    with pool_of(kind, 1) as pool:
        result = pool.apply_async(fn)
        return outcome(lambda: result.get(60))  # type: ignore[no-any-return]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", [*EXECUTORS, *POOLS])
def test_12_an_exception_comes_back_with_its_type_args_message_state_and_traceback(
        kind: str) -> None:
    error = _raised(kind, fw.raise_well_behaved)
    assert type(error) is fw.WellBehavedError
    assert error.args == ("bad token", 3) and str(error) == "('bad token', 3)"
    assert vars(error) == {"line": 3, "hint": "check the line"}
    assert "raise_well_behaved" in error.__cause__.tb  # type: ignore[union-attr]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["ProcessPoolExecutor", "IsolatedExecutor", "IsolatedPool"])
def test_12_an_exception_whose_init_cannot_be_called_again(kind: str) -> None:
    # ParseError(msg, line) passes only msg on: loading it calls ParseError(msg) and
    # fails. ProcessPoolExecutor breaks (its result thread dies; Pool's would hang);
    # isolator rebuilds it from its class, args and __dict__ (docs/pools.md).
    if kind not in ISOLATOR:
        # In a fresh interpreter: a module that installs tblib's pickling (distributed
        # does, and a test of this process may have imported it) makes the stdlib's
        # workers send exceptions another way, which loads this one.
        check = textwrap.dedent("""
            import concurrent.futures as cf
            import _fidelity_workloads as fw
            with cf.ProcessPoolExecutor(1) as ex:
                print(type(ex.submit(fw.raise_parse_error).exception(60)).__name__)
        """)
        done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                              timeout=50, cwd=Path(__file__).parent, check=False)
        assert done.stdout.split()[-1:] == [BrokenProcessPool.__name__], done.stderr
        return
    error = _raised(kind, fw.raise_parse_error)
    assert type(error) is fw.ParseError
    assert error.args == ("bad token",) and str(error) == "bad token"
    assert vars(error) == {"line": 3}
    assert "raise_parse_error" in error.__cause__.tb  # type: ignore[union-attr]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["IsolatedExecutor", "IsolatedPool"])
def test_12_an_exception_that_cannot_be_rebuilt_still_says_its_type_and_message(
        kind: str) -> None:
    error = _raised(kind, fw.raise_hopeless)
    assert isinstance(error, RemoteError)
    assert error.type_name == "_fidelity_workloads.HopelessError"
    assert error.message == "lost in transit"
    assert "HopelessError: lost in transit" in str(error)
    assert "raise_hopeless" in error.__cause__.tb  # type: ignore[union-attr]


# -- drop-in for multiprocess.Pool -------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", POOLS)
def test_a_lambda_as_the_function(kind: str) -> None:
    # multiprocessing cannot send it (a PicklingError, or for a local one an
    # AttributeError); multiprocess and isolator send it by value.
    with pool_of(kind, 2) as pool:
        got = outcome(lambda: pool.map(lambda x: x + 1, range(4)))
    if kind == "multiprocessing.Pool":
        assert isinstance(got, (pickle.PicklingError, AttributeError))
    else:
        assert got == [1, 2, 3, 4]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("family", [multiprocessing, multiprocess], ids=lambda m: m.__name__)
def test_either_familys_contexts_and_timeout_errors_are_taken(family: Any) -> None:
    spawn = family.get_context("spawn")
    with IsolatedPool(1, context=spawn) as pool:
        slow = pool.apply_async(fw.sleep_then, (0.5, "late"))
        with pytest.raises(family.TimeoutError):
            slow.get(timeout=0.01)
        with pytest.raises(family.TimeoutError):
            pool.imap(fw.sleep_then, [0.5]).next(timeout=0.01)  # type: ignore[attr-defined]
        assert slow.get(timeout=30) == "late"
    with IsolatedExecutor(1, mp_context=spawn) as ex:
        assert ex.submit(fw.square, 3).result(timeout=30) == 9
    with IsolatedPool(1) as pool:
        error = outcome(lambda: pool.apply(fw.return_unpicklable))
    assert isinstance(error, multiprocessing.pool.MaybeEncodingError)
    assert isinstance(error, multiprocess.pool.MaybeEncodingError)  # imported here


def test_the_new_errors_pickle_with_their_facts() -> None:
    from isolator import ResultEncodingError
    from isolator._api import pool_errors

    variant = pool_errors.ResultEncodingErrorMultiprocess
    errors: list[BaseException] = [
        PicklingFailed("no", what="result", value="<x>", reason="TypeError('t')"),
        UnpicklingFailed("no", what="exception"),
        RemoteError("the task raised E: m", type_name="m.E", message="m"),
        ResultEncodingError("no", value="<x>", reason="TypeError('t')"),
        variant("no", value="<x>", reason="TypeError('t')"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error) and vars(copy) == vars(error)
    assert isinstance(errors[-1], multiprocess.pool.MaybeEncodingError)
    assert str(errors[-1]) == "Error sending result: '<x>'. Reason: 'TypeError('t')'"
