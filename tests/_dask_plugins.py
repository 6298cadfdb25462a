"""A scheduler plugin that records what the scheduler was asked by isolated tasks."""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin


class Requests(SchedulerPlugin):
    """Records the resources every isolated task asked for, as the scheduler saw them."""

    name = "test-requests"

    def __init__(self) -> None:
        self.scheduler: Any = None
        self.seen: list[tuple[str, dict[str, float]]] = []

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish == "processing" and str(key).startswith("isolator-"):
            task = self.scheduler.tasks[key]
            self.seen.append((str(key), dict(task.resource_restrictions or {})))


def requests_seen(dask_scheduler: Any) -> list[tuple[str, dict[str, float]]]:
    plugin = dask_scheduler.plugins.get(Requests.name)
    return [] if plugin is None else list(plugin.seen)
