"""When a reused worker is replaced: small policies combined with ``|``, tenacity style.

A policy is asked after every task, with the worker's facts: how many tasks it ran, its
fresh baseline (the RSS it had before its first task) and its RSS after the task, once it
has run ``gc.collect()`` and ``malloc_trim(0)``. Recycling is what gives fragmented
memory back to the OS: only the end of a process returns pymalloc's arenas.
"""

from __future__ import annotations

from typing import NamedTuple

from .._errors import ConfigurationError
from .._units import parse_size


class WorkerFacts(NamedTuple):
    """What a recycle policy sees after each task of a reused worker."""

    tasks_done: int
    baseline_rss: int
    rss: int

    @property
    def growth(self) -> int:
        return self.rss - self.baseline_rss


class recycle_base:
    """A recycle policy: ``policy(facts)`` is True when the worker should be replaced."""

    def __call__(self, facts: WorkerFacts) -> bool:
        raise NotImplementedError

    def __or__(self, other: recycle_base) -> recycle_base:
        return recycle_any(self, other)


class recycle_any(recycle_base):
    """Recycle when any of the policies says so."""

    def __init__(self, *policies: recycle_base) -> None:
        self.policies = policies

    def __call__(self, facts: WorkerFacts) -> bool:
        return any(policy(facts) for policy in self.policies)


class recycle_after_tasks(recycle_base):
    """Recycle after ``tasks`` tasks (what ``max_tasks_per_child`` means)."""

    def __init__(self, tasks: int) -> None:
        if isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 1:
            raise ConfigurationError(f"recycle_after_tasks({tasks!r}): a positive int")
        self.tasks = tasks

    def __call__(self, facts: WorkerFacts) -> bool:
        return facts.tasks_done >= self.tasks


class recycle_on_growth(recycle_base):
    """Recycle when the RSS after a task exceeds the fresh baseline by more than ``size``."""

    def __init__(self, size: int | str) -> None:
        self.size = parse_size(size, name="size")

    def __call__(self, facts: WorkerFacts) -> bool:
        return facts.growth > self.size


class recycle_on_idle_rss(recycle_base):
    """Recycle when the RSS after a task (idle, tidied) is above ``size``."""

    def __init__(self, size: int | str) -> None:
        self.size = parse_size(size, name="size")

    def __call__(self, facts: WorkerFacts) -> bool:
        return facts.rss > self.size
