"""Task functions whose imports happen inside the task, as numpy's often do, for the
zygote's learning; and modules that record which process imported them."""

from __future__ import annotations

import importlib
import os
import sys


def import_then_report(module: str) -> tuple[int, bool]:
    """Import ``module`` (one of the _learn_* modules); this child's pid, and whether the
    module was already loaded when the task began (the zygote had it: learned)."""
    already = module in sys.modules
    importlib.import_module(module)
    return os.getpid(), already


def imports_in_a_map(item: int) -> bool:
    """A pool's per-item function: was _learn_in_map loaded before this item ran?"""
    already = "_learn_in_map" in sys.modules
    import _learn_in_map  # noqa: F401

    return already
