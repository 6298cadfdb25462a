"""One unit of a ``DaskExecutor``: its attempts on the cluster, seen from the client.

Each attempt is a new Dask task (a new key), requesting ``resources={MEM: its cap}``;
Dask's own ``retries`` are never used, because Dask would run the same spec again (the
same cap, the same request). When an attempt fails, isolator's retry policy decides, on
the executor's collector thread, where the attempt's outcome arrives: another attempt with the
escalated cap (held to the largest worker's MEM), or the end of the unit. The outcome
comes as bytes; the client loads it, names the worker in the report, writes the report
where its ``report_dir`` says and calls ``on_report``.
"""

from __future__ import annotations

import re
import threading
import uuid
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from .._errors import IsolatorError, MemoryLimitExceeded, RemoteTraceback, WorkerLost
from .._model.admission import clamped
from .._model.values import Limits
from .._wire import pickling
from .worker import KEY_PREFIX, Outcome, run_unit

if TYPE_CHECKING:
    from .executor import DaskExecutor

class UnitFuture(Future[Any]):
    """The caller's future of one unit; ``cancel()`` also cancels its Dask task, which
    the worker's plugin answers by killing the task's child."""

    def __init__(self) -> None:
        super().__init__()
        self.unit: Unit | None = None

    def cancel(self) -> bool:
        cancelled = super().cancel()
        if cancelled and self.unit is not None:
            self.unit.cancel()
            self.unit.executor.ended(self.unit, None, cancelled=True)
        return cancelled


class Unit:
    """The attempts of one submitted call."""

    def __init__(self, executor: DaskExecutor, future: UnitFuture, payload: bytes,
                 warm: tuple[str, ...], name: str, limits: Limits) -> None:
        self.executor, self.future, self.payload = executor, future, payload
        self.warm, self.name, self.limits = warm, name, limits
        short = re.sub(r"[^A-Za-z0-9_]+", "_", name.rsplit(".", 1)[-1]).strip("_") or "task"
        self._stem = f"{KEY_PREFIX}{short}-{uuid.uuid4().hex[:12]}"  # <lambda> -> lambda
        self._lock = threading.Lock()
        self._task: Any = None  # the Dask future of the attempt running now
        self._earlier: list[BaseException] = []
        retry = executor.settings.retry
        self._state = retry.new_state() if retry is not None else None
        self._delay = 0.0  # the wait before the next attempt, as the user's policy says
        future.unit = self

    def start(self) -> None:
        """Submit the next attempt under ``self.limits``."""
        executor, limits = self.executor, self.limits
        cap = limits.max_mem
        resources = None if cap is None else {executor.resource: cap}
        key = f"{self._stem}-{len(self._earlier) + 1}"
        task = executor.client.submit(
            run_unit, self.payload, limits, executor.settings.reporting.forensics,
            self.warm, self.name, executor.settings.learn, key=key, pure=False,
            resources=resources, retries=0)
        with self._lock:
            self._task = task
        if self.future.cancelled():  # cancelled while this attempt was being submitted
            self.cancel()
            return
        self.executor.collector.watch(task, self._landed)

    def cancel(self) -> None:
        with self._lock:
            task = self._task
        if task is not None:
            self.executor.client.cancel(task)

    def _landed(self, task: Any, got: Any, error: BaseException | None) -> None:
        """On the collector's thread: the attempt ended; finish or go again."""
        if self.future.cancelled():
            return  # counted when it was cancelled
        if task.status == "cancelled":  # by someone else: client.cancel, a restart, a close
            self.future.cancel()
            return
        try:
            ok, value, peak = self._outcome(got, error)
        except BaseException as exc:  # noqa: BLE001 - a bug here must still end the unit
            ok, value, peak = False, exc, 0
        self.executor.tally_peak(peak)
        if ok:
            self._end(True, value)
            return
        decision = self._retry(value)
        if decision is None:
            self._end(False, value)
            return
        self._earlier.append(value)
        self.limits = decision
        self.executor.retried()
        delay = self._delay
        if delay > 0:
            timer = threading.Timer(delay, self._again)
            timer.daemon = True
            timer.start()
        else:
            self._again()

    def _again(self) -> None:
        try:
            self.start()
        except BaseException as exc:  # noqa: BLE001 - the cluster went away, say
            self._end(False, exc)

    def _outcome(self, outcome: Outcome, error: BaseException | None) -> tuple[bool, Any, int]:
        from distributed import KilledWorker

        if isinstance(error, KilledWorker):
            lost = WorkerLost(f"the Dask worker running the task died mid-task: {error}")
            lost.__cause__ = error
            return False, lost, 0
        if error is not None:
            return False, error, 0
        if outcome.ok:
            return True, pickling.loads(outcome.body, what="result"), outcome.peak
        raised: BaseException = pickling.loads(outcome.body, what="exception")
        if outcome.traceback is not None:
            raised.__cause__ = RemoteTraceback(outcome.traceback)
        self._name_worker(raised, outcome.worker)
        return False, raised, outcome.peak

    def _name_worker(self, error: BaseException, where: dict[str, Any]) -> None:
        if isinstance(error, IsolatorError):
            error.worker = where["address"]  # type: ignore[attr-defined]
        report = getattr(error, "report", None)
        if not isinstance(error, MemoryLimitExceeded) or report is None:
            return
        report.sections["worker"] = dict(where)
        self.executor.deliver(report)
        if report.path and error.args:
            error.args = (f"{error.args[0]}; report: {report.path}/report.html",
                          *error.args[1:])

    def _retry(self, exc: BaseException) -> Limits | None:
        retry = self.executor.settings.retry
        if retry is None or self._state is None:
            return None
        decision = retry.after_failure(self._state, exc, self.limits)
        if decision is None:
            return None
        self._delay = decision.delay
        ceiling = self.executor.capacity.ceiling()
        return decision.limits if ceiling is None else clamped(decision.limits, ceiling)

    def _end(self, ok: bool, value: Any) -> None:
        if not ok:
            from .._model.retry import record_attempts

            if self._earlier:
                record_attempts(value, self._earlier)
            self._earlier = []
        self.executor.ended(self, None if ok else value)
        future = self.future
        if future.set_running_or_notify_cancel():
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        self.executor.progressed(future)
