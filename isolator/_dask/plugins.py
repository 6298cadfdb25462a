"""The plugins that make a Dask cluster run isolated tasks as isolator means them.

``IsolatorPlugin`` (a ``WorkerPlugin``) prepares each worker: it starts the worker's
engine and zygote before the first task, declares the worker's ``MEM`` when it has
none, and kills a task's child when Dask cancels or releases the task (a Dask thread
cannot be stopped; a child can). ``IsolatorSchedulerPlugin`` makes a worker's death
final for the isolated tasks that had started on it: Dask would run them again on
another worker (and a task that kills its worker would take the next one down too);
isolator's retry policy decides instead.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

from .._errors import ConfigurationError
from . import worker as _worker

_log = logging.getLogger("isolator")


class IsolatorPlugin(WorkerPlugin):
    """Prepare every worker of a cluster for isolated tasks.

    ``client.register_plugin(IsolatorPlugin(memory="8GB"))`` (``DaskExecutor`` registers
    one with ``memory=None`` if none is registered). On each worker it:

    * starts isolator's engine and zygote at once, from the engine's own long-lived
      thread, so the first task does not pay for it;
    * declares the worker's ``resource`` (``"MEM"``, in bytes) when the worker has none:
      ``memory`` if given (an int of bytes or a string such as ``"8GB"``), else the
      worker's ``memory_limit`` less the memory the worker process holds itself, else
      four fifths of the host's available memory. A worker started with
      ``--resources MEM=...`` keeps what it was given;
    * kills an isolated task's child (SIGTERM, ``kill_grace``, SIGKILL) when Dask
      cancels or releases the task while it runs, so ``client.cancel`` stops the work
      and frees its memory: a ``DaskExecutor``'s tasks, and the calls of an isolated
      function that a task makes (``client.submit(isolated_fn, ...)``).
    """

    idempotent = True  # registering again keeps the plugin the workers already have
    name = "isolator"

    def __init__(self, memory: int | str | None = None, *, resource: str = "MEM") -> None:
        if not isinstance(resource, str) or not resource:
            raise ConfigurationError(f"resource={resource!r}; expected a resource name "
                                     "such as 'MEM'")
        self.memory = _worker.checked_memory(memory)
        self.resource = resource

    async def setup(self, worker: Any) -> None:
        _worker.warm_up()
        _worker.watch_calls(True)
        if worker.state.total_resources.get(self.resource) is None:
            amount = _worker.declared_memory(worker, self.memory)
            await worker.set_resources(**{self.resource: amount})
            # The scheduler looks for tasks waiting for a worker like this one only when
            # a worker joins, and this one joined without the resource: say it has it.
            worker.log_event(_worker.DECLARED, worker.address)

    def teardown(self, worker: Any) -> None:
        _worker.watch_calls(False)

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if _worker.abandoned(start, finish) and _worker.kill(str(key)):
            _log.info("isolator: task %s was %s on its worker; its child was killed",
                      key, finish)


class IsolatorSchedulerPlugin(SchedulerPlugin):
    """On the scheduler: an isolated task that started on a worker which then dies
    fails (``KilledWorker``, which the client turns into ``WorkerLost``) instead of
    being run again by Dask. Tasks that were only queued on that worker are moved to
    another worker as Dask always does: they never ran. And a worker that declares its
    memory after it joined (``IsolatorPlugin``) gets the tasks waiting for it."""

    idempotent = True
    name = "isolator-scheduler"

    def __init__(self) -> None:
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def log_event(self, topic: str, msg: Any) -> None:
        if self.scheduler is None:
            return
        if topic == _worker.STARTED:
            task = self.scheduler.tasks.get(msg)
            if task is not None:
                # One more death of its worker and the scheduler gives up on it.
                task.suspicious = max(task.suspicious, self.scheduler.allowed_failures)
        elif topic == _worker.DECLARED:
            self._runnable_on(msg)

    def _runnable_on(self, address: str) -> None:
        """Tasks waiting in ``no-worker`` that the worker at ``address`` can run now
        that it declared its memory (a restarted worker joins without it, and Dask
        looks at waiting tasks only when a worker joins)."""
        scheduler = self.scheduler
        worker = scheduler.workers.get(address)
        if worker is None or not scheduler.unrunnable:
            return
        found = scheduler.bulk_schedule_unrunnable_after_adding_worker(worker)
        if found:
            scheduler.transitions(found, stimulus_id=f"isolator-declared-{time.time()}")
