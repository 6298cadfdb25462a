"""Who keeps the biggest objects alive: a reference chain from a module, class or frame.

One breadth-first search serves every target at once: each level is a single
``gc.get_referrers(*frontier)`` (one pass over the heap, ~20 ms per million objects
plus a little per frontier object), so the frontier is capped and the depth bounded.
The search stops at roots: a module's namespace, a class, or a local of a running frame
(those are invisible to ``gc``, see ``_stack``). Targets whose chains have the same
shape (same names once keys and indices are blurred) form one holder; its container is
the last object all their chains share: ``_leaks._ERRORS`` for twenty exceptions whose
tracebacks each keep a 5 MiB local alive.
"""

from __future__ import annotations

import gc
import sys
from collections import deque
from types import FrameType, ModuleType
from typing import Any

from ._common import OURS, Budget, deep_size, is_isolator, type_name
from ._edges import Namer
from ._stack import Stack, is_ours

MAX_DEPTH = 16
MAX_FRONTIER = 64
MAX_PARENTS = 4
NOISE = 100  # holders 100 times smaller than the biggest are left out
_MODULE_DICT: Any = vars(ModuleType)["__dict__"]
_SIZED = (list, tuple, dict, set, frozenset, deque)
_FAR = 1 << 30


def module_namespaces() -> dict[int, str]:
    """id of each imported module's ``__dict__`` -> the module's name."""
    found: dict[int, str] = {}
    for key, module in list(sys.modules.items()):
        if issubclass(type(module), ModuleType):
            namespace = _MODULE_DICT.__get__(module)
            name = namespace.get("__name__")
            found.setdefault(id(namespace), name if type(name) is str else key)
    return found


class Graph:
    """The part of the heap the search saw: who refers to whom, and the roots."""

    def __init__(self, stack: Stack, modules: dict[int, str], extra: dict[int, Any]) -> None:
        self.stack = stack
        self.modules = modules
        self.extra = extra  # id -> the untracked container holding it (from the scan)
        self.nodes: dict[int, Any] = {}
        self.parents: dict[int, list[int]] = {}
        self.roots: dict[int, tuple[str, str, str]] = {}  # id -> (kind, label, root name)
        self.expanded: set[int] = set()
        self.note: str | None = None
        self._memo: dict[int, tuple[int, int]] = {}

    def add(self, obj: object) -> bool:
        """Record a node; True if the search should go on above it."""
        self.nodes[id(obj)] = obj
        label = self.stack.root_label(obj)
        if label is not None:
            frame = self.stack.names[self.stack.by_id[id(obj)]][0]
            self.roots[id(obj)] = ("frame", label, frame)
        elif id(obj) in self.modules:
            name = self.modules[id(obj)]
            self.roots[id(obj)] = ("module", name, name)
        elif issubclass(type(obj), type):
            qualname = type.__dict__["__qualname__"].__get__(obj)
            label = qualname if type(qualname) is str else "?"
            self.roots[id(obj)] = ("class", label, type_name(obj))  # type: ignore[arg-type]
        return id(obj) not in self.roots

    def search(self, targets: list[Any], ignore: set[int], budget: Budget) -> None:
        frontier = [obj for obj in targets if self.add(obj)]
        ignore = ignore | {id(targets), id(self.nodes), id(self.extra)}
        for depth in range(MAX_DEPTH):
            if not frontier:
                return
            if budget.expired():
                self.note = f"time budget exhausted {depth} references above the targets"
                return
            wanted = set(map(id, frontier))
            self.expanded |= wanted
            referrers = gc.get_referrers(*frontier)
            ours = ignore | {id(frontier), id(referrers)} | OURS
            above: list[Any] = []
            ours.add(id(above))
            for ident in wanted:  # untracked containers: invisible to gc, the scan saw them
                if ident in self.extra:
                    self._link(ident, self.extra[ident], above)
            for ref in referrers:
                if id(ref) not in ours and not is_isolator(ref) \
                        and not (type(ref) is FrameType and is_ours(ref)):
                    for child in wanted.intersection(map(id, gc.get_referents(ref))):
                        self._link(child, ref, above)
            del referrers
            frontier = above
        if frontier:
            self.note = f"stopped {MAX_DEPTH} references above the targets"

    def _link(self, child: int, parent: Any, above: list[Any]) -> None:
        """Record ``parent -> child``; a new parent joins the next frontier."""
        parents = self.parents.setdefault(child, [])
        if len(parents) < MAX_PARENTS and id(parent) not in parents:
            parents.append(id(parent))
        if id(parent) in self.nodes or not self.add(parent):
            return
        if len(above) < MAX_FRONTIER:
            above.append(parent)
        else:
            self.note = f"searched only {MAX_FRONTIER} referrers per level"

    def path(self, target: int) -> list[int]:
        """Ids from a root down to ``target`` (the shortest chain the search saw); if
        no root was reached, from the highest object found."""
        chain = [target]
        while chain[-1] not in self.roots:
            distance, parent = self._distance(chain[-1], set())
            if distance >= _FAR:
                return self._climb_anyway(target)
            chain.append(parent)
        return chain[::-1]

    def _distance(self, node: int, seen: set[int]) -> tuple[int, int]:
        if node in self.roots:
            return 0, node
        if node in self._memo:
            return self._memo[node]
        seen.add(node)
        best = (_FAR, node)
        for parent in self.parents.get(node, ()):
            if parent not in seen:
                distance = self._distance(parent, seen)[0] + 1
                if distance < best[0]:
                    best = (distance, parent)
        seen.discard(node)
        self._memo[node] = best
        return best

    def _climb_anyway(self, target: int) -> list[int]:
        chain = [target]
        while self.parents.get(chain[-1]) and len(chain) <= MAX_DEPTH:
            parent = next((p for p in self.parents[chain[-1]] if p not in chain), None)
            if parent is None:
                break
            chain.append(parent)
        top = chain[-1]
        if top in self.expanded and not self.parents.get(top):
            why = "<held by no object gc can see: a running frame's temporaries or C code>"
            if callable(self.nodes[top]):
                why = ("<held from C only: an atexit callback, audit hook or signal handler "
                       "registered before isolator could see it, or a C extension's registry>")
        else:
            why = f"<no module, class or frame found within {MAX_DEPTH} references>"
        self.roots.setdefault(-top, ("unknown", why, type_name(type(self.nodes[top]))))
        return [-top, *chain[::-1]]


def holders(
    targets: list[Any], sizes: list[int], graph: Graph, ignore: set[int], budget: Budget,
    namer: Namer, skip: set[int], top: int = 5,
) -> dict[str, Any]:
    """The ``holders`` section: the few biggest holders and their chains."""
    graph.search(targets, ignore, budget)
    groups: dict[tuple[Any, ...], list[tuple[list[int], int]]] = {}
    blur = Namer(namer.values, namer.max_repr, namer.drop, exact=False)
    for target, size in zip(targets, sizes, strict=True):
        ids = graph.path(id(target))
        kind, label, _ = graph.roots[ids[0]]
        nodes = [graph.nodes.get(i) for i in ids[ids[0] < 0 :]]
        shape = (kind, label, *(text for text, _ in blur.chain(kind, label, nodes)))
        groups.setdefault(shape, []).append((ids, size))
    rows = []
    for members in _merge(groups.values()):
        if budget.expired():
            graph.note = "time budget exhausted while naming the chains"
            break
        rows.append(_holder(members, graph, namer, skip))
    rows.sort(key=lambda row: row["bytes"], reverse=True)
    rows = [row for row in rows[:top] if row["bytes"] * NOISE >= rows[0]["bytes"]]
    section: dict[str, Any] = {"holders": rows, "targets": len(targets),
                               "objects_searched": len(graph.nodes)}
    if graph.note:
        section["partial"] = graph.note
    return section


def _merge(groups: Any) -> list[list[tuple[list[int], int]]]:
    """Groups whose chains meet in the same container become one."""
    by_container: dict[int, list[tuple[list[int], int]]] = {}
    for members in groups:
        by_container.setdefault(_common(members)[-1], []).extend(members)
    return list(by_container.values())


def _common(members: list[tuple[list[int], int]]) -> list[int]:
    first = members[0][0]
    length = min(len(ids) for ids, _ in members)
    end = next((i for i in range(length) if any(ids[i] != first[i] for ids, _ in members)),
               length)
    return first[: max(end, 1)]


def _holder(members: list[tuple[list[int], int]], graph: Graph, namer: Namer,
            skip: set[int]) -> dict[str, Any]:
    ids, _ = max(members, key=lambda member: member[1])
    kind, label, root_name = graph.roots[ids[0]]
    offset = 1 if ids[0] < 0 else 0
    nodes = [graph.nodes[i] for i in ids[offset:]]
    edges = namer.chain(kind, label, nodes)
    shared = len(_common(members)) - 1 - offset  # index in nodes of the container
    cut = max((n for n, (_, end) in enumerate(edges) if end <= shared), default=0)
    container = nodes[edges[cut][1]]
    objects = sum(size for _, size in members)
    held = deep_size(container, skip) if len(members) > 1 else objects
    types = sorted({type_name(type(graph.nodes[m[-1]])) for m, _ in members})
    return {
        "root": kind, "root_name": root_name,
        "chain": [text for text, _ in edges[: cut + 1]],
        "path": join([text for text, _ in edges[: cut + 1]]),
        "container": {"type": type_name(type(container)), "bytes": held,
                      **_length(container)},
        "example": [text for text, _ in edges[cut + 1 :]],
        "objects": {"count": len(members), "bytes": objects, "types": types[:3]},
        "bytes": max(held, objects),
    }


def _length(obj: Any) -> dict[str, int]:
    base = next((b for b in _SIZED if issubclass(type(obj), b)), None)
    return {} if base is None else {"len": base.__len__(obj)}


def join(names: list[str]) -> str:
    """``_leaks._ERRORS[3].__traceback__ -> local 'payload' in fail()``."""
    text = ""
    for name in names:
        glue = "" if not text or name.startswith((".", "[")) else " -> "
        text += glue + name
    return text
