"""A task module as the README writes one: it imports isolator to decorate its jobs."""

import sys

from isolator import isolated


@isolated(max_mem="256MB")
def transform(path: str) -> str:
    return path


def loaded_modules() -> list[str]:
    """The modules of the child that runs this (those of the zygote it was forked from)."""
    return sorted(sys.modules)
