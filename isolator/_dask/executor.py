"""``DaskExecutor``: a ``concurrent.futures.Executor`` whose units run on a Dask cluster,
each in a fresh capped child of a worker's zygote."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from concurrent.futures import wait as wait_for
from types import TracebackType
from typing import Any, TypeVar, Unpack

from .._api.decorator import function_name, task_payload, warm_modules
from .._api.executor import leave, map_in_units
from .._errors import ConfigurationError, PoolClosed, SerializationError
from .._model.options import CallOptions, docstring, show_options
from .._model.settings import settle
from .._model.statistics import Statistics, Tally
from .._model.values import Limits, Reporting
from .._wire import pickling
from .attempts import Unit, UnitFuture
from .capacity import Capacity
from .collector import Collector

T = TypeVar("T")


def _connect(client_or_address: Any) -> tuple[Any, bool]:
    """The client to submit through, and whether this executor made it (and closes it)."""
    from distributed import Client

    if isinstance(client_or_address, Client):
        return client_or_address, False
    if isinstance(client_or_address, str) and client_or_address:
        return Client(client_or_address, set_as_default=False), True  # type: ignore[no-untyped-call]
    if isinstance(getattr(client_or_address, "scheduler_address", None), str):
        # A cluster object (LocalCluster, a deployment's): its scheduler's address.
        return Client(client_or_address.scheduler_address,  # type: ignore[no-untyped-call]
                      set_as_default=False), True
    raise ConfigurationError(
        f"DaskExecutor({client_or_address!r}): expected a distributed.Client, a cluster "
        "or a scheduler address such as 'tcp://10.0.0.5:8786'")


class DaskExecutor(Executor):
    def __init__(self, client_or_address: Any, *, resource: str = "MEM",
                 limits: Limits | None = None, reporting: Reporting | None = None,
                 progress: Callable[[Future[Any]], None] | None = None,
                 **options: Unpack[CallOptions]) -> None:
        settings, _ = settle("DaskExecutor", dict(options), limits, reporting)
        if not isinstance(resource, str) or not resource:
            raise ConfigurationError(f"resource={resource!r}; expected a resource name "
                                     "such as 'MEM'")
        if progress is not None and not callable(progress):
            raise ConfigurationError(f"progress={progress!r} is not callable")
        self.settings, self.resource, self._progress = settings, resource, progress
        self.client, self._owns_client = _connect(client_or_address)
        self.capacity = Capacity(self.client, resource)
        self.collector = Collector(self.client)
        self._lock = threading.Lock()
        self._by_value: pickling.ByValueCache = {}
        self._units: set[Unit] = set()
        self._admitted = 0  # the caps of the units handed to the cluster, summed
        self._tally = Tally()
        self._closed = False
        self._install_plugins()

    def _install_plugins(self) -> None:
        from .plugins import IsolatorPlugin, IsolatorSchedulerPlugin

        # Both are idempotent: a cluster that has them (with the user's memory=) keeps them.
        self.client.register_plugin(IsolatorSchedulerPlugin())
        self.client.register_plugin(IsolatorPlugin(resource=self.resource))

    # -- submitting ------------------------------------------------------------------------

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` in a fresh capped child on a worker; PoolClosed
        after shutdown, ConfigurationError when no worker could ever take its cap."""
        return self._submit(fn, args, kwargs, function_name(fn))

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...],
                kwargs: dict[str, Any], name: str) -> Future[Any]:
        if self._closed:
            raise PoolClosed("cannot submit to a DaskExecutor that has been shut down")
        limits = self.settings.limits
        self.capacity.check(limits.max_mem)
        future = UnitFuture()
        try:
            payload = task_payload(fn, args, kwargs, self._by_value)
        except SerializationError as exc:
            future.set_exception(exc)
            return future
        warm = warm_modules(fn, args, payload, self.settings.preload)
        unit = Unit(self, future, payload, warm, name, limits)
        with self._lock:
            self._units.add(unit)
            self._tally.counts["submitted"] += 1
            self._admit(limits.max_mem or 0)
        try:
            unit.start()
        except BaseException:
            self.ended(unit, None, cancelled=True)
            raise
        return future

    def map(self, fn: Callable[..., T], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1) -> Iterator[T]:
        """Results in input order. With ``chunksize`` > 1 each chunk is one task: one
        child on a worker, under one cap, for that many items."""
        return map_in_units(self._submit, fn, iterables, timeout, chunksize)

    # -- what units tell the executor (its collector's thread) -------------------------------

    def _admit(self, cap: int) -> None:
        self._admitted += cap
        self._tally.peak_admitted = max(self._tally.peak_admitted, self._admitted)

    def ended(self, unit: Unit, error: BaseException | None, cancelled: bool = False) -> None:
        with self._lock:
            if unit not in self._units:
                return
            self._units.discard(unit)
            self._admitted -= unit.executor.settings.limits.max_mem or 0
            if cancelled:
                self._tally.counts["cancelled"] += 1
            else:
                self._tally.outcome(error)

    def retried(self) -> None:
        with self._lock:
            self._tally.counts["retried"] += 1

    def tally_peak(self, peak: int) -> None:
        if peak:
            with self._lock:
                self._tally.peak(peak)

    def deliver(self, report: Any) -> None:
        """Write a report the client received and hand it to ``on_report``."""
        from .._engine.postmortem import deliver

        deliver(report, self.settings.reporting)

    def progressed(self, future: Future[Any]) -> None:
        if self._progress is None:
            return
        try:
            self._progress(future)
        except Exception:  # as the local pools do: logged, not raised
            import logging

            logging.getLogger("isolator").exception("isolator: the progress hook failed")

    # -- ending ------------------------------------------------------------------------------

    def statistics(self) -> Statistics:
        """Counters so far; ``running`` counts units handed to the cluster (queued on
        the scheduler or running on a worker), ``pending`` is always 0."""
        with self._lock:
            return self._tally.snapshot(len(self._units), 0)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work; optionally cancel what has not finished; wait if asked.
        A client this executor connected itself is closed once nothing is left."""
        self._closed = True
        with self._lock:
            units = list(self._units)
        if cancel_futures:
            for unit in units:
                unit.future.cancel()
        if wait:
            wait_for([unit.future for unit in units])
        self.collector.stop(wait)
        if wait and self._owns_client:
            self.client.close()

    def terminate(self) -> None:
        """Cancel every unit, killing the children that run them, and wait for none."""
        self.shutdown(wait=False, cancel_futures=True)
        if self._owns_client:
            self.client.close()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        leave(self, exc_type)


DaskExecutor.__doc__ = """Like ``IsolatedExecutor``, but every unit runs on a Dask cluster:
on a worker, in a fresh child of that worker's zygote, under ``max_mem``.

``client_or_address`` is a ``distributed.Client`` (kept open at shutdown), or a
scheduler address or a cluster object (a client is made, and closed at shutdown). Every
task requests ``resources={resource: its cap}``, so a worker never runs at once tasks
whose caps add up to more than its ``MEM``; a cap larger than every worker's fails at
``submit`` with ``ConfigurationError``. A breach, crash or timeout fails only its own
task with isolator's typed exception (the worker is not restarted); its report reaches
the client (``exc.report``, with the worker in its ``worker`` section), which writes it
under ``report_dir`` and calls ``on_report``. Retries are isolator's: each attempt is a
new Dask task with the escalated cap (held to the largest worker's ``MEM``) and the
larger request; Dask's ``retries=`` is never used. A worker that dies mid-task fails its
task with ``WorkerLost`` (or it is retried by the policy). ``progress`` is called with
each future as it completes. See docs/cluster.md for every deliberate difference from
``IsolatedExecutor``.

""" + docstring(CallOptions)
show_options(DaskExecutor.__init__, CallOptions)
