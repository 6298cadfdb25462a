"""Garbage that is never collected: reference cycles with the collector switched off."""

from __future__ import annotations

import gc
import itertools
import sys
from typing import Any

from ._data import Tally, footprint, records

TALLY = Tally()


class Node:
    """A parsed document's node: children know their parent (a cycle per node)."""

    def __init__(self, parent: Node | None, value: dict[str, Any]) -> None:
        self.parent = parent
        self.value = value
        self.children: list[Node] = []
        if parent is not None:
            parent.children.append(self)


def _parse(rows: list[dict[str, Any]]) -> Node:
    root = Node(None, {"kind": "document"})
    for row in rows:
        Node(root, row)
    return root


def gc_disabled_cycles() -> None:
    gc.disable()  # "the load is 20 % faster without the collector"
    source = records()
    for _ in itertools.count():
        rows = list(itertools.islice(source, 500))
        document = _parse(rows)
        total = sum(child.value["amount"] for child in document.children)
        assert total >= 0
        # The document is dropped here, but every node is in a cycle with its parent.
        node = sys.getsizeof(document) + 24  # the instance and its three inline slots
        TALLY.add("gc_disabled_cycles", footprint(rows) - sys.getsizeof(rows)
                  + (len(rows) + 1) * (node + sys.getsizeof([])) + footprint(document.value)
                  + sys.getsizeof(document.children))
        del document, rows


def held(name: str) -> int:
    return TALLY.get(name)
