"""The holders' back-reference graph, drawn by objgraph, for the report folder.

The holder rows name one chain each; objgraph's ``show_backrefs`` draws everything gc
sees referring to each container, a few levels up, so a second holder the chain does
not show (a cache also kept by a closure) is in the picture. The graph goes to the
report as Graphviz source (``backrefs.dot``; the HTML inlines it as SVG when ``dot``
is installed). Nodes are labelled as the report names them (``etl._CACHE``) and by
objgraph's short description; only at levels that may record values (objgraph labels
dict keys), and never with isolator's own objects.

objgraph calls ``repr()`` on the objects it draws, cut to 40 characters after the fact:
on a 100 MiB string or a deque of a million rows that repr alone would break the cap.
So while it draws, its ``_short_repr`` is replaced by a bounded one that runs no user
code. Each node costs one ``gc.get_referrers`` (a pass over the heap), so the number of
nodes is capped from the time one such pass takes here.
"""

from __future__ import annotations

import gc
import io
import os
import time
from collections import deque
from types import BuiltinFunctionType, FrameType, FunctionType, MethodType, ModuleType
from typing import Any

from ._common import OURS, Budget, Skipped, c_attr, is_isolator, safe_repr, type_name
from ._stack import is_ours

MAX_DEPTH = 4
TOO_MANY = 4  # referrers drawn per node (objgraph says how many more there are)
MAX_NODES = 30
HOLDERS = 3
_SIZED = (list, tuple, dict, set, frozenset, deque)


def backrefs_section(containers: list[Any], named: dict[str, Any] | None,
                     budget: Budget) -> dict[str, Any]:
    """The ``backrefs`` section: objgraph's graph of what refers to the containers."""
    try:
        import objgraph
    except ImportError as exc:
        raise Skipped("objgraph is not installed (pip install objgraph)") from exc
    if not hasattr(objgraph, "_short_repr") or not hasattr(objgraph, "show_backrefs"):
        raise Skipped("this objgraph version has no _short_repr to bound its reprs")
    rows = (named or {}).get("holders", [])
    targets = containers[:HOLDERS]
    names = {id(obj): str(row.get("path")) for obj, row in zip(targets, rows, strict=False)}
    started = time.monotonic()
    gc.get_referrers(targets[0])
    per_node = max(time.monotonic() - started, 1e-4)
    nodes = int(min(MAX_NODES, max(len(targets), budget.left() * 0.5 / per_node)))
    if nodes <= len(targets) or budget.left() < 3 * per_node:
        raise Skipped(f"no time left to draw it ({per_node * 1000:.0f} ms a node)")
    accepted = [len(targets)]

    def keep(obj: Any) -> bool:
        if is_isolator(obj) or (type(obj) is FrameType and is_ours(obj)):
            return False
        if accepted[0] >= nodes or budget.expired():
            return False
        accepted[0] += 1
        return True

    out = io.StringIO()
    original, collector = objgraph._short_repr, objgraph.gc
    objgraph._short_repr = _bounded_repr
    objgraph.gc = _Collected()  # the garbage step has just collected: no second pass
    try:
        objgraph.show_backrefs(
            targets, max_depth=MAX_DEPTH, too_many=TOO_MANY, filter=keep,
            extra_ignore=[*OURS, id(targets), id(containers), id(names)],
            extra_info=lambda obj: names.get(id(obj), ""), shortnames=False, output=out,
            highlight=lambda obj: id(obj) in names)
    finally:
        objgraph._short_repr, objgraph.gc = original, collector
    return {"dot": out.getvalue(), "nodes": accepted[0], "holders": list(names.values()),
            "max_depth": MAX_DEPTH, "drawn_by": f"objgraph {objgraph.__version__}"}


class _Collected:
    """The gc module for objgraph, whose ``collect()`` does nothing: the report made one
    full collection already (its garbage step), and each costs ~0.1 s a million objects."""

    def collect(self, generation: int = 2) -> int:
        return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(gc, name)


def _bounded_repr(obj: Any) -> str:
    """objgraph's node text, without running user code or building big strings."""
    cls = type(obj)
    if issubclass(cls, (type, ModuleType, FunctionType, BuiltinFunctionType)):
        name = c_attr(obj, "__qualname__") if cls is not ModuleType else c_attr(obj, "__name__")
        if cls is ModuleType:
            name = getattr(obj, "__name__", None) if type(name) is not str else name
        return name if type(name) is str else type_name(cls)
    if cls is MethodType:
        return f"{_bounded_repr(c_attr(obj, '__func__'))} (bound)"
    if cls is FrameType:
        code = obj.f_code
        return f"{code.co_qualname} ({os.path.basename(code.co_filename)}:{obj.f_lineno})"
    base = next((b for b in _SIZED if issubclass(cls, b)), None)
    if base is not None:
        return f"{base.__len__(obj)} items"
    return safe_repr(obj, 40)
