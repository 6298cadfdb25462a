"""The layout says which process runs the code, and the imports keep to it.

Each package may import only what the processes it runs in may hold: the zygote and its
children never load the engine (so the zygote stays small and single-threaded), the
engine never reaches up into the public API or the command line. Checked two ways: the
import statements of every module (function-level ones included), and a running
zygote's ``sys.modules``, RSS and thread count.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "isolator"

# package -> the isolator packages and modules its code may import (itself always)
ALLOWED = {
    "_wire": {"_errors", "_units"},
    "_child": {"_wire", "_errors", "_units", "forensics"},
    "_model": {"_errors", "_units"},
    "forensics": {"_wire", "_errors", "_units"},
    "reports": {"_errors", "_units"},
    "_warden": {"_wire"},
    "_engine": {"_wire", "_errors", "_units", "_model", "_child", "_warden", "reports",
                "forensics"},
    "_api": {"_wire", "_errors", "_units", "_model", "_child", "_engine"},
    # The client's side pickles and submits as the pools do (_api's payload, _model's
    # retries, _child's chunk of a map); the worker's side hands each task to that
    # worker's own engine.
    "_dask": {"_wire", "_errors", "_units", "_model", "_child", "_api", "_engine"},
}


def _isolator_imports(path: Path) -> set[str]:
    """The top-level parts of isolator (``_engine``, ``_errors``...) a module imports."""
    tree = ast.parse(path.read_text(), str(path))
    package = path.relative_to(ROOT).with_suffix("").parts
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's own package
                base = list(package[:-1])  # a module's package; __init__'s is its own
                base = base[:len(base) - node.level + 1]
                module = ".".join([*base, *(node.module.split(".") if node.module else [])])
                names = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "isolator" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_its_process_may_hold(package: str) -> None:
    allowed = ALLOWED[package] | {package}
    wrong = {}
    for path in sorted((PACKAGE / package).rglob("*.py")):
        extra = _isolator_imports(path) - allowed
        if extra:
            wrong[str(path.relative_to(ROOT))] = sorted(extra)
    assert not wrong, f"imports outside what {package} may use: {wrong}"


def test_the_checker_sees_relative_and_function_level_imports() -> None:
    # The rule above is only as good as the scan: a module of the engine does import
    # the model at its top and reports inside a function.
    found = _isolator_imports(PACKAGE / "_engine" / "postmortem.py")
    assert {"_model", "_errors"} <= found
    assert "reports" in found


PROBE = """
    import json, sys
    sys.path.insert(0, {tests!r})
    import {module} as probe
    from isolator import isolated
    from isolator._engine.engine import get_engine

    modules = isolated(max_mem="256MB")(probe.loaded_modules)()
    pid = get_engine().zygote_pid
    status = dict(line.split(":", 1) for line in open(f"/proc/{{pid}}/status"))
    print(json.dumps({{"modules": modules, "rss_anon_kib": int(status["RssAnon"].split()[0]),
                      "threads": int(status["Threads"])}}))
"""

# What a zygote that forks capped tasks holds (measured: 154 modules when the task's
# module imports isolator, 146 when it does not, of which the heap walk's own are 17;
# RssAnon 9.3 MiB with the heap count the walk compares against, 7.8 MiB without it. It
# was 179 modules and 11.6 MiB, and 119 and 8.3 MiB, when the decorator loaded the
# supervisor and the walk was smaller).
MAX_MODULES = 170
MAX_RSS_ANON_MIB = 10


@pytest.mark.timeout(60)
@pytest.mark.parametrize("module", ["_zygote_probe_isolated", "_zygote_probe_plain"])
def test_the_zygote_holds_no_engine_module_and_stays_small(module: str) -> None:
    script = textwrap.dedent(PROBE.format(tests=str(ROOT / "tests"), module=module))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=50, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.splitlines()[-1])
    modules = facts["modules"]
    engine_side = [m for m in modules if m.startswith(("isolator._engine", "isolator.cli",
                                                       "isolator._api.handle", "tenacity",
                                                       "concurrent.futures", "isolator.reports"))]
    assert not engine_side, engine_side
    assert f"{module}" in modules  # the task's module was preloaded, as it should be
    assert facts["threads"] == 1  # forking is safe only from a single-threaded process
    assert len(modules) <= MAX_MODULES, len(modules)
    assert facts["rss_anon_kib"] <= MAX_RSS_ANON_MIB * 1024, facts["rss_anon_kib"]
