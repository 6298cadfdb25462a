"""Everything a user may decorate: module functions, closures, lambdas, __main__ code."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import _workloads as w
from conftest import _zygote_pid

from isolator import IsolatedExecutor, isolated

ROOT = Path(__file__).resolve().parent.parent


@isolated(max_mem="256MB")
def parent_pid() -> int:
    return os.getppid()


def test_bare_decorator_and_function_form() -> None:
    @isolated
    def double(x: int) -> int:
        return 2 * x

    assert double(21) == 42
    assert isolated(max_mem="64MB")(w.echo)("x") == "x"


def test_a_decorated_function_runs_in_one_child_whoever_calls_it() -> None:
    # A child is forked by the zygote: one that ran the wrapper again would have run the
    # function in a grandchild, forked by a zygote of its own.
    zygote = _zygote_pid()
    assert parent_pid() == zygote
    with IsolatedExecutor(1) as pool:
        assert pool.submit(parent_pid).result(timeout=30) == zygote
        assert pool.submit(isolated(lambda: os.getppid())).result(timeout=30) == zygote


def test_closure_and_lambda() -> None:
    factor = 3

    def scale(x: int) -> int:
        return factor * x

    assert isolated(scale)(5) == 15
    assert isolated(lambda x: x + 1)(1) == 2


def test_decorated_method_receives_its_instance() -> None:
    class Box:
        def __init__(self) -> None:
            self.value = 7

        @isolated
        def get(self) -> int:
            return self.value

    assert Box().get() == 7


def test_functions_defined_in_main_even_after_the_first_call(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent("""
        from isolator import isolated

        class Point:
            def __init__(self, x):
                self.x = x

        class Oops(Exception):
            pass

        @isolated(max_mem="64MB")
        def first(x):
            return Point(x)

        assert first(1).x == 1
        assert isinstance(first(2), Point)

        @isolated
        def defined_later(x):
            return x * 10

        assert defined_later(4) == 40

        @isolated
        def raises():
            raise Oops("from main")

        try:
            raises()
        except Oops as exc:
            assert str(exc) == "from main"
        else:
            raise AssertionError("no exception")
        print("ok")
    """))
    _runs_ok(script)


def test_a_main_function_using_the_scripts_own_module_sends_that_module_by_name(
        tmp_path: Path) -> None:
    # A script's helper module next to it is neither stdlib nor installed: sent by value,
    # its whole namespace would go too, and a ctypes handle in it does not pickle.
    (tmp_path / "sim.py").write_text(textwrap.dedent("""
        import ctypes
        LIBC = ctypes.CDLL(None)
        LOADED_IN = []
        def step(x):
            return x * 2 + LIBC.abs(-1)
    """))
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent("""
        import os
        import sim
        from isolator import IsolatedPool, isolated

        sim.LOADED_IN.append(os.getpid())

        def work(x):
            return sim.step(x), sim.LOADED_IN  # the child's own import: no caller's pid

        if __name__ == "__main__":
            value, loaded = isolated(max_mem="200MB")(work)(20)
            assert value == 41 and os.getpid() not in loaded, loaded
            with IsolatedPool(2) as pool:
                assert [v for v, _ in pool.map(work, range(50))] == [2 * x + 1 for x in range(50)]
            print("ok")
    """))
    _runs_ok(script)


def _runs_ok(script: Path) -> None:
    """Run ``script`` as a user runs one (its own ``__main__``); it prints "ok"."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
