"""Exceptions a task raises that plain pickle cannot bring back whole (test_docs.py
checks design.md's account of them against real children)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator


def _rows() -> Iterator[int]:
    yield 1


class ParseError(Exception):
    """An ``__init__`` that takes other arguments than it passes on to ``args``."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class HoldsAGenerator(Exception):
    """Its ``__dict__`` holds what neither pickle nor dill can pickle."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.rows = _rows()


def raise_parse_error() -> None:
    raise ParseError("unexpected token", 7)


def raise_holding_a_generator() -> None:
    raise HoldsAGenerator("cannot travel")


def raise_from_a_module_only_the_child_has() -> None:
    module = types.ModuleType("made_in_the_child")
    sys.modules[module.__name__] = module
    cls = type("ChildOnlyError", (Exception,), {"__module__": module.__name__})
    module.ChildOnlyError = cls  # type: ignore[attr-defined]
    raise cls("its class is not importable in the caller")
