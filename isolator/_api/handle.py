"""The caller's side of one pool: it checks, pickles and enqueues; the engine runs.

A ``PoolHandle`` holds no engine state. Its only state is its own: whether the pool
still takes work (so ``submit`` after ``shutdown`` raises in the caller's thread, as the
stdlib's does) and which scheduler it feeds. Every other call is a command to the
engine thread (``add``, ``close``, ``cancel_pending``, ``kill_running``) or a wait on
its answer (``join``, ``statistics``). If the engine it fed has stopped, the next
submission starts a new engine and a new scheduler.
"""

from __future__ import annotations

import functools
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError, PoolClosed, SerializationError
from .._model.statistics import Statistics
from .._wire import pickling
from .decorator import task_payload, warm_modules

if TYPE_CHECKING:
    from .._engine.engine import Engine
    from .._engine.scheduler import Scheduler, Settings

_live: weakref.WeakSet[PoolHandle] = weakref.WeakSet()  # every pool of this process
_at_exit_registered = False


class PoolHandle:
    """Submit to, wait on and stop one pool's scheduler (any thread)."""

    def __init__(self, settings: Settings, preload: tuple[str, ...]) -> None:
        from .._model.admission import misfit

        why = misfit(settings.limits, settings.budget)
        if why is not None:  # no unit of this pool could ever start
            raise ConfigurationError(why)
        self.settings, self.preload = settings, preload
        self._lock = threading.Lock()
        self._by_value: pickling.ByValueCache = {}  # the pool's code sent by value, pickled
        self._closed = False
        self._engine: Engine | None = None
        self._scheduler: Scheduler | None = None
        _register(self)

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
               name: str, warm: tuple[str, ...] = ()) -> Future[Any]:
        """Queue ``fn(*args, **kwargs)``; ``warm`` names modules for the zygote to import
        beyond ``fn``'s own (a wrapper's, such as joblib's batch, hides the real ones)."""
        IsolatorFuture, Unit = _engine_types()
        with self._lock:
            if self._closed:
                raise PoolClosed("cannot submit to a pool that has been shut down or closed")
            engine, scheduler = self._feed()
        future: Future[Any] = IsolatorFuture()
        try:
            payload = task_payload(fn, args, kwargs, self._by_value)
        except SerializationError as exc:
            future.set_exception(exc)
            engine.call_soon(lambda: scheduler.rejected(future))
            return future
        unit = Unit(future, payload, warm_modules(fn, args, payload, self.preload + warm),
                    self.settings.limits, name)
        engine.call_soon(lambda: scheduler.add(unit), future.set_exception)
        return future

    def close(self) -> None:
        """No more submissions; what was submitted runs to its end."""
        with self._lock:
            self._closed = True
        self._command(lambda s: s.close())

    def cancel_pending(self) -> None:
        self._command(lambda s: s.cancel_pending())

    def kill_running(self) -> None:
        """Kill every running unit's child (SIGTERM, grace, SIGKILL); they fail WorkerLost."""
        self._command(lambda s: s.kill_running())

    def join(self, timeout: float | None = None) -> bool:
        """Wait until nothing is pending, running or waiting to retry, and the last
        progress hook call has returned; False on timeout."""
        with self._lock:
            engine, scheduler = self._engine, self._scheduler
        if engine is None or scheduler is None or engine.closed:
            return True  # nothing was ever submitted, or it all failed with its engine
        drained = threading.Event()
        engine.call_soon(lambda: scheduler.when_drained(drained.set), lambda _: drained.set())
        return drained.wait(timeout)

    def statistics(self) -> Statistics:
        with self._lock:
            engine, scheduler = self._feed()
        return engine.ask(scheduler.snapshot)

    def running_scheduler(self) -> Scheduler | None:
        """The scheduler this pool feeds now, if any (for tests and the live view)."""
        return self._scheduler

    def _feed(self) -> tuple[Engine, Scheduler]:
        """The engine and scheduler to feed, started when there are none (under the lock)."""
        engine, scheduler = self._engine, self._scheduler
        if engine is not None and scheduler is not None and not engine.closed:
            return engine, scheduler  # unit after unit: nothing to look up
        from .._engine.engine import get_engine
        from .._engine.scheduler import Scheduler

        engine = get_engine()
        if self._scheduler is None or self._engine is not engine:
            scheduler = Scheduler(engine, self.settings)
            engine.call_soon(lambda: engine.adopt(scheduler))
            self._engine, self._scheduler = engine, scheduler
        assert self._scheduler is not None
        return engine, self._scheduler

    def _command(self, command: Callable[[Scheduler], object]) -> None:
        with self._lock:
            engine, scheduler = self._engine, self._scheduler
        if engine is not None and scheduler is not None:
            engine.call_soon(lambda: command(scheduler))


@functools.cache
def _engine_types() -> tuple[Any, Any]:
    """The engine's future and unit classes, imported on first use (not at import: a
    task module that names a pool must not load the engine into the zygote)."""
    from .._engine.offload import IsolatorFuture
    from .._engine.scheduler import Unit

    return IsolatorFuture, Unit


def _register(handle: PoolHandle) -> None:
    global _at_exit_registered
    _live.add(handle)
    if not _at_exit_registered:
        from .._engine.engine import at_exit_first

        at_exit_first.append(_finish_at_exit)
        _at_exit_registered = True


def _finish_at_exit() -> None:
    # As concurrent.futures does: the program does not exit before the work it handed to
    # a pool has run (unless the pool was terminated). Not after Ctrl-C: then the
    # engine's own exit handler kills every child at once, as terminate() does.
    last = getattr(sys, "last_type", None)  # what ended the program, if an exception did
    if last is not None and issubclass(last, KeyboardInterrupt):
        return
    for handle in list(_live):
        handle.join()
