"""A user's code, type-checked with ``mypy --strict`` against the installed package.

isolator ships a ``py.typed`` marker (PEP 561): without it mypy says the module "is
installed, but missing library stubs or py.typed marker" and every isolated function is
``Any``. mypy runs once, in a subprocess, over one file; the installed package is found
through ``sys.path`` (``PYTHONPATH``), where mypy applies PEP 561 as to site-packages.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")

B = r"(builtins\.)?"  # mypy before 2.0 names builtin types in full


def _revealed(pattern: str) -> tuple[str, str]:
    return "note", f'Revealed type is "{pattern}"'


HEADER = """\
from concurrent.futures import Future
from typing import Literal

from isolator import IsolatedExecutor, MemoryLimitExceeded, isolated
from isolator.reports import Report


@isolated
def bare(x: int, label: str = "") -> list[int]:
    return [x]


@isolated(max_mem="64MB")
def capped(x: int) -> dict[str, float]:
    return {"x": float(x)}


def plain(x: int) -> bytes:
    return bytes(x)


with_options = isolated(max_mem="64MB", timeout=5.0)(plain)
"""

# Each line of the checked code, with what mypy must say about it (severity, regex).
CHECKED: list[tuple[str, tuple[str, str] | None]] = [
    ("reveal_type(bare(1))", _revealed(rf"{B}list\[{B}int\]")),
    ("reveal_type(capped(2))", _revealed(rf"{B}dict\[{B}str, {B}float\]")),
    ("reveal_type(with_options(3))", _revealed(rf"{B}bytes")),
    ('bare("one")', ("error", r'Argument 1 to "__call__" of "IsolatedFunction" has '
                              r'incompatible type "str"; expected "int"')),
    ("capped(3, 4)", ("error", r'Too many arguments for "__call__" of "IsolatedFunction"')),
    ("bare(1, label=2)", ("error", r'Argument "label" to "__call__" of "IsolatedFunction" '
                                   r'has incompatible type "int"; expected "str"')),
    ('with_options(b"x")', ("error", r'incompatible type "bytes"; expected "int"')),
    ('with IsolatedExecutor(max_mem="64MB") as pool:', None),
    ("    reveal_type(pool.submit(plain, 1))",
     _revealed(rf"concurrent\.futures\._base\.Future\[{B}bytes\]")),
    ("    reveal_type(pool.submit(capped, 1))",
     _revealed(rf"concurrent\.futures\._base\.Future\[{B}dict\[{B}str, {B}float\]\]")),
    ("    future: Future[bytes] = pool.submit(plain, 1)", None),
    ("def check(exc: MemoryLimitExceeded) -> None:", None),
    ("    reveal_type(exc.kind)", _revealed(
        r"(Union\[)?Literal\['soft'\](, | \| )Literal\['hard'\](, | \| )"
        r"Literal\['kernel-oom'\](, | \| )Literal\['rlimit'\]\]?")),
    ("    reveal_type(exc.report)",
     _revealed(r"(Union\[)?isolator\.reports\._model\.Report(, | \| )None\]?")),
    ('    kind: Literal["soft", "hard", "kernel-oom", "rlimit"] = exc.kind', None),
    ("    report: Report | None = exc.report", None),
    ('    wrong: Literal["soft"] = exc.kind',
     ("error", r"Incompatible types in assignment")),
]


def _installed_package() -> Path:
    spec = importlib.util.find_spec("isolator")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


def _mypy_messages(tmp_path: Path) -> tuple[list[tuple[int, str, str]], str]:
    source = HEADER + "".join(f"{code}\n" for code, _ in CHECKED)
    (tmp_path / "user.py").write_text(source)
    (tmp_path / "mypy.ini").write_text("[mypy]\n")
    env = dict(os.environ)
    # The installed package's folder on sys.path, where mypy treats it as installed: it
    # is analysed only when it carries py.typed.
    env["PYTHONPATH"] = os.pathsep.join([str(_installed_package().parent),
                                         *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", "mypy.ini",
         "--cache-dir", str(tmp_path / "cache"), "--no-error-summary", "--hide-error-context",
         "--no-pretty", "--show-error-codes", "user.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: it found the errors we planted
    found = []
    for line in done.stdout.splitlines():
        match = re.match(r"user\.py:(\d+): (error|note): (.*)", line)
        if match:
            found.append((int(match.group(1)), match.group(2), match.group(3)))
    return found, done.stdout


def test_the_package_ships_a_py_typed_marker() -> None:
    marker = _installed_package() / "py.typed"
    assert marker.is_file(), f"{marker} is missing: mypy treats isolator as untyped"


def test_mypy_strict_sees_isolated_calls_with_the_original_signature(tmp_path: Path) -> None:
    found, output = _mypy_messages(tmp_path)
    assert not [m for m in found if "import-untyped" in m[2] or "py.typed" in m[2]], output
    first = HEADER.count("\n") + 1
    expected = {first + i: want for i, (_, want) in enumerate(CHECKED) if want is not None}
    for line, (severity, pattern) in expected.items():
        said = [text for at, kind, text in found if at == line and kind == severity]
        assert any(re.search(pattern, text) for text in said), (
            f"line {line} ({CHECKED[line - first][0].strip()}): expected {severity} "
            f"/{pattern}/, mypy said {said}\n{output}")
    errors = {at for at, kind, _ in found if kind == "error"}
    planted = {line for line, (severity, _) in expected.items() if severity == "error"}
    assert errors == planted, f"unexpected errors on lines {errors - planted}:\n{output}"
