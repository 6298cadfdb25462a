"""The ``holders`` section from the named roots (``_named``), and what it leaves to the
search up from the biggest objects (``_holders``)."""

from __future__ import annotations

from typing import Any

from ._common import Budget, ours
from ._edges import Namer
from ._named import holder_rows, walk_roots
from ._retained import Walker
from ._roots import collect_roots
from ._stack import Stack


def named_section(modules: dict[int, str], stack: Stack, namer: Namer, budget: Budget,
                  plan: Any, held: dict[str, Any]) -> dict[str, Any]:
    """Walk every named root, best first, and explain the biggest (see ``_named``).

    Leaves in ``held`` the containers found (for the graph) and the ids of every big
    object a walk met (the search up skips them: a named root explains them)."""
    roots = ours(collect_roots(modules, stack))
    walker = Walker(ours(set(modules)), budget, plan.max_seen)
    walker.later.update(id(root.value) for root in roots)
    held["walker"] = walker
    found, coverage = walk_roots(roots, walker, budget)
    roots.clear()
    walker.seen.clear()  # the descents below count afresh; give the memory back first
    rows, containers = holder_rows(found, walker, namer, budget)
    for item in found:
        item.walk.release()
    found.clear()
    held["containers"] = ours(containers)
    held["explained_ids"] = walker.big_ids
    return {"holders": rows, "explained": {"bytes": sum(row["bytes"] for row in rows)},
            "roots": coverage, "targets": 0, "objects_searched": 0}


def unexplained_targets(targets: list[Any], sizes: list[int], explained: set[int]
                        ) -> tuple[list[Any], list[int]]:
    """The biggest objects of the heap scan that no walk from a named root met."""
    keep = [i for i, obj in enumerate(targets) if id(obj) not in explained]
    return [targets[i] for i in keep], [sizes[i] for i in keep]
