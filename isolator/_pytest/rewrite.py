"""pytest's assertion rewriting where the test runs: in the zygote and its children.

pytest rewrites ``assert`` statements while it imports a test module, through an import
hook of its own in the pytest process. The test function sent to a child is pickled by
reference, so the child finds it by importing the module again, and without that hook
it would get the plain module, whose failed asserts say only ``AssertionError``. This
module gives the zygote and the child a finder that compiles test modules through
pytest's own rewriter, and the child pytest's explanations of failed comparisons.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import CodeType, ModuleType
from typing import Any


class RewritingLoader(importlib.machinery.SourceFileLoader):
    """Compiles a module's source with pytest's assertion rewriting.

    No bytecode is read or written: the ordinary ``__pycache__`` file holds the plain
    code, and a zygote compiles each test module once for all its children.
    """

    def get_code(self, fullname: str) -> CodeType:
        """The module's code, its asserts rewritten as pytest rewrites them."""
        from _pytest.assertion.rewrite import rewrite_asserts

        path = self.get_filename(fullname)
        source = self.get_data(path)
        tree = ast.parse(source, filename=path)
        rewrite_asserts(tree, source, path, None)
        return compile(tree, path, "exec", dont_inherit=True)


class RewritingFinder(importlib.abc.MetaPathFinder):
    """Finds, first on ``sys.meta_path``, the modules whose asserts pytest rewrites.

    ``names`` are modules the pytest process rewrote; with ``patterns``, also any module
    named as pytest's default ``python_files`` and conftest (``test_*``, ``*_test``,
    ``conftest``): the zygote imports test modules before it knows which are tests.
    """

    def __init__(self, names: Sequence[str] = (), patterns: bool = False) -> None:
        self.names = set(names)
        self.patterns = patterns

    def wants(self, fullname: str) -> bool:
        """Whether ``fullname`` is to be rewritten (decided on the name, before any
        search of ``sys.path``, so every other import costs a set lookup)."""
        if fullname in self.names:
            return True
        last = fullname.rpartition(".")[2]
        return self.patterns and (last == "conftest" or last.startswith("test_")
                                  or last.endswith("_test"))

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        """A spec with a rewriting loader, or None to leave the module to the others."""
        if not self.wants(fullname):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or \
                type(spec.loader) is not importlib.machinery.SourceFileLoader:
            return None
        spec.loader = RewritingLoader(fullname, spec.origin)
        return spec


def finder() -> RewritingFinder:
    """This process's finder (a child inherits the zygote's), put first on
    ``sys.meta_path`` by the first call."""
    for found in sys.meta_path:
        if isinstance(found, RewritingFinder):
            return found
    made = RewritingFinder()
    sys.meta_path.insert(0, made)
    return made


def is_rewritten(module: ModuleType | None, origin: str) -> bool:
    """Whether ``module`` is the one at ``origin``, compiled by a RewritingLoader."""
    spec = getattr(module, "__spec__", None)
    return isinstance(getattr(spec, "loader", None), RewritingLoader) and \
        getattr(spec, "origin", None) == origin


def import_rewritten(name: str, origin: str, also: Sequence[str]) -> ModuleType:
    """The test module ``name`` (the file ``origin``), asserts rewritten.

    The zygote may have imported it already, rewritten (the usual case) or not (a test
    file named otherwise than ``test_*.py``): then it is imported again here, from its
    file, so it does not matter whether ``sys.path`` finds it. ``also`` are the other
    modules the pytest process rewrote, for when they are first imported here.
    """
    finder().names.update(also)
    module = sys.modules.get(name)
    if module is not None and is_rewritten(module, origin):
        return module
    parent = name.rpartition(".")[0]
    if parent:
        try:  # its relative imports need the package
            importlib.import_module(parent)
        except ImportError:
            pass
    spec = importlib.util.spec_from_file_location(name, origin,
                                                  loader=RewritingLoader(name, origin))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


class _Settings:
    """The few pytest settings its comparison explanations read, as the pytest process
    had them: stands for pytest's ``Config``, which does not exist in the child."""

    class _NoPlugins:
        def has_plugin(self, name: str) -> bool:
            return False  # no terminal here: explanations stay plain text

    def __init__(self, verbosity: int, ini: dict[str, Any], assertmode: str) -> None:
        self.verbosity, self.ini, self.assertmode = verbosity, ini, assertmode
        self.pluginmanager = self._NoPlugins()

    def get_verbosity(self, kind: str | None = None) -> int:
        return self.verbosity

    def getini(self, name: str) -> Any:
        return self.ini[name]

    def getvalue(self, name: str) -> Any:
        if name != "assertmode":
            raise KeyError(name)
        return self.assertmode


def explain_comparisons(verbosity: int, ini: dict[str, Any], assertmode: str) -> None:
    """Give failed comparisons here pytest's detailed explanations ("At index 2 diff",
    "Full diff"), as its ``pytest_assertrepr_compare`` makes them in the pytest process
    (a conftest's own implementation of that hook is not called here)."""
    from _pytest import assertion
    from _pytest.assertion import truncate, util

    settings: Any = _Settings(verbosity, ini, assertmode)

    def explain(op: str, left: object, right: object) -> str | None:
        # As pytest's own callbinrepr does. Its helpers are pytest's internals: should
        # they change, the assert keeps its rewritten one-line explanation.
        try:
            lines = assertion.pytest_assertrepr_compare(config=settings, op=op, left=left,
                                                        right=right)
            if not lines:
                return None
            lines = truncate.materialize_with_truncation(lines, settings)
        except Exception:  # noqa: BLE001 - see above: fall back, never mask the assert
            return None
        if not lines:
            return None
        text = "\n~".join(line.replace("\n", "\\n") for line in lines)
        return text.replace("%", "%%") if assertmode == "rewrite" else text

    util._reprcompare = explain
