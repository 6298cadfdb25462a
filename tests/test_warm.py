"""Children start warm without configuration, and code sent by value is pickled once:
what a task needs is worked out in the caller (its functions' modules, the modules its
globals refer to and its body imports), through isolator's own wrappers."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from isolator._api.needs import modules_needed, task_functions
from isolator._child import calls

ROOT = Path(__file__).resolve().parent.parent


def _uses_json_global(x: str) -> object:
    return json.loads(x)


def _imports_in_its_body(x: int) -> int:
    import colorsys  # noqa: F401 - what the zygote should have before the child starts

    try:
        import no_such_module_here  # noqa: F401 - guarded: it must not be asked for
    except ImportError:
        pass
    return x


def test_the_modules_a_function_uses_are_found_in_its_code_and_globals() -> None:
    assert "json" in modules_needed(_uses_json_global)
    needed = modules_needed(_imports_in_its_body)
    assert "colorsys" in needed and "no_such_module_here" not in needed
    assert __name__ in needed  # its own module


def test_the_users_functions_are_found_inside_isolators_wrappers() -> None:
    partial = functools.partial(_uses_json_global)
    assert list(task_functions(calls.run_items, (_uses_json_global, [1]))) == \
        [_uses_json_global]
    assert list(task_functions(calls.with_initializer,
                               ("pool", _imports_in_its_body, (), calls.run_chunk,
                                partial, []))) == [_imports_in_its_body, _uses_json_global]


SCRIPT = """
    import json, sys
    import colorsys as palette
    import dill
    from isolator import IsolatedPool, isolated

    dump, calls = dill.Pickler.dump, []

    def counting(self, obj):  # every pickling by dill (multiprocess's pickler is dill's)
        calls.append(1)
        return dump(self, obj)

    dill.Pickler.dump = counting

    def task(x):  # defined in __main__: it goes by value; it uses a module global
        return (palette.__name__ in sys.modules, x * x)

    with IsolatedPool(2) as pool:
        results = pool.map(task, range(60), 1)
    first = isolated(max_mem="64MB")(task)(3)
    print(json.dumps({"warm": [r[0] for r in results], "values": [r[1] for r in results],
                      "dumps": len(calls), "first_warm": first[0]}))
"""


@pytest.mark.timeout(60)
def test_a_main_function_goes_through_dill_once_a_pool_and_its_children_start_warm(
        tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=50,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["values"] == [x * x for x in range(60)]
    assert seen["dumps"] == 2  # once for the pool's 60 units, once for the isolated function
    assert all(seen["warm"]) and seen["first_warm"]  # colorsys was there before the task
