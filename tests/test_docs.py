"""The documentation site builds without a warning, covers what the package exports,
and its guides' code runs.

The site is built once for the module (``sphinx -W``, into a scratch folder). A guide's
code block runs when the line before it says so:

- ``<!-- test: file NAME -->``: the block is written to ``NAME`` (a module the others use);
- ``<!-- test: run -->``: a Python script, run on its own, must exit 0;
- ``<!-- test: sh -->``: a shell script (isolator's program and this Python on ``PATH``),
  must exit 0.

Each guide's blocks run in document order in one scratch folder, each a fresh process.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import _fidelity_workloads as fw
import pytest

import isolator
import isolator.joblib
import isolator.pytest_plugin
import isolator.reports
from isolator import RemoteError, RemoteTraceback, SerializationError, isolated
from isolator._model import options
from isolator.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GUIDES = sorted((DOCS / "guides").glob("*.md"))
_BLOCK = re.compile(r"^<!-- test: (?P<how>[^>]*?) -->\n```(?P<lang>\w+)\n(?P<code>.*?)^```$",
                    re.DOTALL | re.MULTILINE)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for module in ("sphinx", "myst_parser", "sphinxarg"):
        pytest.importorskip(module, reason="the docs extra is not installed: "
                                           "pip install -e '.[dev,docs]'")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E", "-b", "html",
         str(DOCS), str(out / "html"), "-d", str(out / "doctrees")],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-4000:]
    return out / "html"


def _ids(page: Path) -> set[str]:
    return set(re.findall(r'<dt class="sig sig-object py" id="([^"]+)"', page.read_text()))


def _public(module: object) -> set[str]:
    name = module.__name__  # type: ignore[attr-defined]
    if hasattr(module, "__all__"):
        return {f"{name}.{n}" for n in module.__all__}
    return {f"{name}.{n}" for n, v in vars(module).items()
            if not n.startswith("_") and callable(v) and getattr(v, "__module__", "") == name}


def test_the_python_reference_covers_exactly_what_is_exported(site: Path) -> None:
    documented = {i for i in _ids(site / "reference.html") if i.count(".") <= 2}
    modules = (isolator, isolator.joblib, isolator.pytest_plugin, isolator.reports)
    exported = set().union(*map(_public, modules))
    # Methods and attributes have ids too (isolator.IsolatedPool.imap): keep the names
    # that are a module's own.
    top_level = {i for i in documented
                 if i.rpartition(".")[0] in {m.__name__ for m in modules}}
    assert top_level == exported
    # Each one with its docstring: its description (after its signatures, several for
    # an overloaded function) opens with a paragraph.
    page = (site / "reference.html").read_text()
    for name in exported:
        entry = page.split(f'id="{name}"', 1)[1]
        description = re.search(r"¶</a></dt>\s*<dd>(.{0,20})", entry, re.DOTALL)
        assert description is not None and description[1].lstrip().startswith("<p>"), \
            f"{name} has no description on the site"
    assert "isolator.pytest_plugin.pytest_pyfunc_call" in exported  # a hook, found without __all__


def test_every_option_is_in_the_site_once_as_declared(site: Path) -> None:
    page = (site / "reference.html").read_text()
    tables = re.findall(r'<table class="[^"]*isolator-options[^"]*">(.*?)</table>', page,
                        re.DOTALL)
    rows = [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
             for cell in re.findall(r"<td>(.*?)</td>", row, re.DOTALL)]
            for table in tables for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.DOTALL)]
    shown = [(cells[0], cells[1]) for cells in rows if cells]
    declared = [(name, repr(option.default))
                for name, (_, option) in options.declared(options.PoolOptions).items()]
    assert sorted(shown) == sorted(declared)
    # help() shows the same defaults, from the same declaration.
    for name, default in declared[:len(options.declared(options.CallOptions))]:
        assert f"{name} = {default}" in (isolator.isolated.__doc__ or "")


def test_every_command_and_flag_of_the_program_is_on_its_page(site: Path) -> None:
    from isolator.cli import build_parser

    page = (site / "cli.html").read_text()
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(subcommands) == set(COMMANDS)
    for name, sub in subcommands.items():
        assert f'id="isolator-{name}"' in page, name
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in html.unescape(page), (name, flag)


def test_the_readme_and_ci_install_and_test_alike() -> None:
    command = re.search(r"^python3 -m venv .*pytest.*$", (ROOT / "README.md").read_text(),
                        re.MULTILINE)
    assert command is not None
    assert command.group(0) in (ROOT / ".ci" / "run").read_text()
    extras = re.search(r"\.\[([\w,]+)\]", command.group(0))
    assert extras is not None and {"dev", "docs"} <= set(extras.group(1).split(","))


def _steps(guide: Path) -> Iterator[tuple[str, str, str]]:
    for match in _BLOCK.finditer(guide.read_text()):
        yield match["how"].strip(), match["lang"], match["code"]


def test_every_guide_has_code_that_runs() -> None:
    assert len(GUIDES) >= 5
    for guide in GUIDES:
        assert any(not how.startswith("file ") for how, _, _ in _steps(guide)), \
            guide.name


@pytest.mark.parametrize("guide", GUIDES, ids=[g.stem for g in GUIDES])
def test_a_guides_code_runs(guide: Path, tmp_path: Path) -> None:
    env = {**os.environ, "ISOLATOR_REPORT_DIR": str(tmp_path / "reports"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(tmp_path)}
    for number, (how, lang, code) in enumerate(_steps(guide)):
        where = f"{guide.name}, block {number} ({how})"
        if how.startswith("file "):
            (tmp_path / how.split(None, 1)[1]).write_text(code)
            continue
        if how == "run":
            assert lang == "python", where
            script = tmp_path / f"guide_{number}.py"
            script.write_text(code)
            command = [sys.executable, str(script)]
        elif how == "sh":
            command = ["bash", "-euo", "pipefail", "-c", code]
        else:
            raise AssertionError(f"{where}: unknown kind of block")
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"{where}:\n{done.stdout}{done.stderr}"


def test_design_md_says_truly_what_becomes_of_an_exception_that_will_not_pickle() -> None:
    design = " ".join((DOCS / "design.md").read_text().split())
    assert ("one that cannot be sent or rebuilt becomes a `RemoteError`, a "
            "`SerializationError` carrying its type name, its message and the child's "
            "traceback") in design
    # Rebuilt from its class, args and __dict__ when its __init__ cannot be called again.
    with pytest.raises(fw.ParseError) as parse_error:
        isolated(fw.raise_parse_error)()
    assert parse_error.value.line == 3 and str(parse_error.value) == "bad token"
    assert isinstance(parse_error.value.__cause__, RemoteTraceback)
    # Neither pickle nor dill can send it; its class not importable here: RemoteError.
    for task, type_name, message in (
            (fw.raise_hopeless, "_fidelity_workloads.HopelessError", "lost in transit"),
            (fw.raise_from_a_module_only_the_child_has, "made_in_the_child.ChildOnlyError",
             "its class is not importable in the caller")):
        with pytest.raises(RemoteError) as remote:
            isolated(task)()
        assert isinstance(remote.value, SerializationError)
        assert (remote.value.type_name, remote.value.message) == (type_name, message)
        cause = remote.value.__cause__
        assert isinstance(cause, RemoteTraceback)
        assert f"in {task.__name__}" in cause.tb and message in cause.tb
