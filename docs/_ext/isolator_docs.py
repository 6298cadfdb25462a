"""Sphinx extension of isolator's site: the Python reference from ``__all__``, and the
options from their one declaration.

``.. isolator-api:: MODULE`` (with ``:module-docstring:``, the module's docstring first)
documents every public name of ``MODULE`` (its ``__all__``,
or, without one, the functions and classes it defines whose names do not start with an
underscore) with autodoc, so the reference covers exactly what the package exports and
a name added to ``__all__`` appears on the site without anyone listing it.

The docstrings of ``isolated`` and the pools end with an "Options:" section that
``isolator._model.options.docstring`` writes from the declaration of options, as
``help()`` shows it. On the site that section becomes a table, written from the same
declaration (not parsed back from the text), each option in one table only: the
options of ``isolated`` under ``isolated``, the pools' own under ``IsolatedExecutor``.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

from isolator._model import options


def public_names(module: Any) -> list[str]:
    """What ``module`` exports: ``__all__``, else its own public functions and classes."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [name for name, value in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(value) or inspect.isclass(value))
            and value.__module__ == module.__name__]


def _directive_for(value: Any) -> str:
    if inspect.isclass(value):
        return "autoexception" if issubclass(value, BaseException) else "autoclass"
    if callable(value):
        return "autofunction"
    return "autodata"


def _data(module: str, name: str, value: Any) -> list[str]:
    """A constant, with the ``#:`` comment of the module that defines it (autodoc would
    look only in ``module``, which imports it, and show its type's docstring instead)."""
    lines = [f".. py:data:: {name}", f"   :value: {value!r}", ""]  # in the current module
    for candidate in sorted(m for m in sys.modules
                            if m == module or m.startswith(module + ".")):
        if name not in vars(sys.modules[candidate]):
            continue
        try:
            docs = ModuleAnalyzer.for_module(candidate).find_attr_docs()
        except PycodeError:
            continue
        if ("", name) in docs:
            return lines + [f"   {line}" for line in docs[("", name)]]
    return lines


class IsolatorApi(SphinxDirective):
    """``.. isolator-api:: isolator``: an autodoc entry for every public name."""

    required_arguments = 1
    option_spec: ClassVar[dict[str, Any]] = {"no-members": directives.flag,
                                             "module-docstring": directives.flag}

    def run(self) -> list[Any]:
        name = self.arguments[0]
        module = importlib.import_module(name)
        lines = [f".. automodule:: {name}", "   :no-members:", ""] \
            if "module-docstring" in self.options else [f".. module:: {name}", ""]
        for public in public_names(module):
            value = getattr(module, public)
            if _directive_for(value) == "autodata":
                lines += _data(name, public, value)
                continue
            lines.append(f".. {_directive_for(value)}:: {name}.{public}")
            if inspect.isclass(value) and "no-members" not in self.options:
                lines.append("   :members:")
            lines.append("")
        content = StringList(lines, source=f"<isolator-api {name}>")
        holder = nodes.section()
        holder.document = self.state.document
        nested_parse_with_titles(self.state, content, holder)
        return list(holder.children)


# -- options -------------------------------------------------------------------------------

#: Which options each documented object's table shows (None: no table), and what it
#: says of the rest.
_TABLES: dict[str, tuple[type | None, tuple[type, ...], str]] = {
    "isolator.isolated": (options.CallOptions, (), ""),
    "isolator.IsolatedExecutor": (
        options.PoolOptions, (options.CallOptions,),
        "Every option of :func:`isolated` (see its table), and the pools' own:"),
    "isolator.IsolatedPool": (
        None, (), "Every option of :func:`isolated` (see its table), and the pools' own "
        "(``memory_budget``, ``recycle``, ``progress``: see :class:`IsolatedExecutor`)."),
}


def _rst(markdown: str) -> str:
    """An option's meaning, written in Markdown in the declaration, as reStructuredText."""
    return re.sub(r"`([^`]+)`", r"``\1``", markdown)


def options_table(group: type, *parents: type) -> list[str]:
    """A ``list-table`` of ``group``'s options (less those of ``parents``)."""
    names = options.own(group, *parents) if parents else tuple(options.declared(group))
    table = options.declared(group)
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 15 20 65",
             "   :class: isolator-options", "",
             "   * - option", "     - default", "     - meaning"]
    for name in names:
        _, option = table[name]
        lines += [f"   * - ``{name}``", f"     - ``{option.default!r}``",
                  f"     - {_rst(option.doc)}"]
    return lines


def _options_section(app: Sphinx, what: str, name: str, obj: Any, opts: Any,
                     lines: list[str]) -> None:
    if name not in _TABLES or "Options:" not in lines:
        return
    group, parents, lead = _TABLES[name]
    del lines[lines.index("Options:"):]
    lines += [".. rubric:: Options", ""]
    if lead:
        lines += [lead, ""]
    if group is not None:
        lines += options_table(group, *parents)
    lines.append("")


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("isolator-api", IsolatorApi)
    app.connect("autodoc-process-docstring", _options_section)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
