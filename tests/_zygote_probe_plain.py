"""A task module that imports nothing of isolator."""

import sys


def loaded_modules() -> list[str]:
    """The modules of the child that runs this (those of the zygote it was forked from)."""
    return sorted(sys.modules)
