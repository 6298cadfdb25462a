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


def read_the_big_block() -> tuple[bool, int]:
    """Read _learn_big's block (sharing its pages) and stay long enough to be sampled:
    was it preloaded, and its length."""
    import time

    already = "_learn_big" in sys.modules
    import _learn_big

    time.sleep(0.5)
    return already, len(_learn_big.BLOCK) + _learn_big.BLOCK[12345]


def write_the_big_block() -> None:
    """Write one byte in every page of _learn_big's block, so this child holds a copy of
    each, then give the sampler time to see it."""
    import time

    import _learn_big

    block = _learn_big.BLOCK
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    time.sleep(10)
