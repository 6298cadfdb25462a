"""The stdlib pools' own arguments (sizes, start-method contexts, worker reuse), checked
as the stdlib checks them and with its words, so that code matching its messages keeps
matching."""

from __future__ import annotations

import os
import sys
from multiprocessing.context import BaseContext

from .._errors import ConfigurationError
from .._model.recycle import recycle_after_tasks, recycle_any, recycle_base


def start_context(value: object, name: str) -> None:
    """Accept a stdlib pool's start-method context, multiprocessing's or multiprocess's,
    and ignore it: every child is forked from isolator's zygote, a fresh interpreter,
    whatever it says (docs/pools.md)."""
    if value is None or isinstance(value, BaseContext):
        return
    fork = sys.modules.get("multiprocess.context")  # imported, if one of its contexts exists
    if fork is not None and isinstance(value, fork.BaseContext):
        return
    raise ConfigurationError(f"{name}={value!r} is not a multiprocessing context")


# What the stdlib says for each, so that code matching its message keeps matching.
_STDLIB_WORDS = {
    "max_workers": "max_workers must be greater than 0",
    "processes": "Number of processes must be at least 1",
    "max_tasks_per_child": "max_tasks_per_child must be >= 1",
    "maxtasksperchild": "maxtasksperchild must be a positive int or None",
}


def worker_count(value: int | None, name: str) -> int:
    """Validate a pool size; None means one per CPU, as the stdlib pools do."""
    if value is None:
        return os.cpu_count() or 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        words = _STDLIB_WORDS.get(name, f"{name} must be at least 1")
        raise ConfigurationError(f"{words}: {name}={value!r} (a positive int, or None)")
    return value


def reuse_policy(max_tasks: int | None, recycle: recycle_base | None,
                 name: str) -> recycle_base | None:
    """None for a fresh child per unit; else when to replace a reused worker. ``max_tasks``
    of 1 is a fresh child per unit, None a worker that lives as long as the pool (as in
    both stdlib pools), N a worker replaced after N units."""
    if max_tasks is None:
        return recycle or recycle_any()  # never replaced, but by the recycle policy
    worker_count(max_tasks, name)
    after = recycle_after_tasks(max_tasks) if max_tasks > 1 else None
    if after is not None and recycle is not None:
        return after | recycle
    return after or recycle
