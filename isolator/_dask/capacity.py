"""What the cluster's workers declare of the memory resource, seen from the client.

Dask's ``resources=`` are counters: a worker runs tasks only while their requests fit
in what it declared, so tasks whose caps add up to more than a worker's ``MEM`` never
run on it at once. But a request larger than every worker's would wait in
``no-worker`` forever, so the client checks each cap against the largest worker before
it submits, and holds an escalated retry to it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .._errors import ConfigurationError
from .._units import format_size

#: How long a look at the workers stays fresh when the cap fits in it.
FRESH = 5.0


class Capacity:
    """The largest amount of ``resource`` any worker of the cluster declares."""

    def __init__(self, client: Any, resource: str) -> None:
        self._client, self.resource = client, resource
        self._lock = threading.Lock()
        self._largest: float | None = None
        self._seen = float("-inf")
        self._workers = 0

    def largest(self, *, fresh: bool = False) -> float | None:
        """The largest worker's amount (None: no worker declares it), asked of the
        scheduler again when ``fresh`` or when the last look is old."""
        with self._lock:
            if fresh or time.monotonic() - self._seen > FRESH:
                info = self._client.scheduler_info(n_workers=-1)
                workers = info.get("workers", {}).values()
                amounts = [w.get("resources", {}).get(self.resource) for w in workers]
                declared = [float(a) for a in amounts if a is not None]
                self._largest = max(declared) if declared else None
                self._workers = len(workers)
                self._seen = time.monotonic()
            return self._largest

    def check(self, cap: int | None) -> None:
        """ConfigurationError when no worker could ever run a task capped at ``cap``."""
        if cap is None:
            return
        largest = self.largest()
        if largest is None or cap > largest:
            largest = self.largest(fresh=True)  # a worker may have joined since
        if largest is None:
            raise ConfigurationError(
                f"no worker of the cluster declares the resource {self.resource!r} "
                f"({self._workers} workers): start workers with --resources "
                f"{self.resource}=BYTES, or register isolator.dask.IsolatorPlugin(), "
                "which declares it from each worker's memory")
        if cap > largest:
            raise ConfigurationError(
                f"max_mem ({format_size(cap)}) is larger than any worker's "
                f"{self.resource} ({format_size(int(largest))}): no worker could ever run "
                f"the task; lower max_mem or start workers with more {self.resource}")

    def ceiling(self) -> int | None:
        """The cap an escalated retry may reach: the largest worker's amount."""
        largest = self.largest()
        return None if largest is None else int(largest)
