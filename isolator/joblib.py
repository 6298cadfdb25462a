"""isolator as a joblib backend: every batch of a ``Parallel`` call in a fresh child
under a memory cap.

::

    import joblib
    from isolator.joblib import register

    register()
    with joblib.parallel_backend("isolator", max_mem="2GB", n_jobs=4):
        scores = cross_val_score(model, X, y, n_jobs=4)

A batch that exceeds its cap fails the ``Parallel`` call with ``MemoryLimitExceeded``
and its post-mortem report, as any isolated call does. The backend takes the options of
``IsolatedExecutor`` (``max_mem``, ``timeout``, ``retry``, ``max_tasks_per_child``...).

joblib sends each batch as one ``BatchedCalls`` object, whose own module is joblib's:
the zygote would preload joblib and not the module of the user's function, and every
batch's child would import that module again (and what it imports, numpy or
scikit-learn: 100 ms and more). So the backend names the functions' modules for the
zygote to import once.

Unlike loky, which falls back to ``n_jobs=1`` in a thread that is not the main one and
in a daemonic process (a Dask worker), this backend runs in parallel anywhere: its
children are forked by isolator's zygote, from the engine's own thread.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Unpack

from ._api.decorator import function_name
from ._api.executor import IsolatedExecutor
from ._model.options import PoolOptions
from ._model.settings import settle
from ._model.values import Limits, Reporting

__all__ = ["IsolatorBackend", "register"]

_parallel: Any = importlib.import_module("joblib.parallel")  # joblib ships no type hints


class IsolatorBackend(_parallel.AutoBatchingMixin, _parallel.ParallelBackendBase):  # type: ignore[misc]
    """The joblib backend registered as ``"isolator"``: each batch in a fresh, capped
    child (by default; ``max_tasks_per_child`` and ``recycle`` reuse workers).

    Keyword arguments are ``IsolatedExecutor``'s, checked here; ``n_jobs`` is joblib's
    (``-1``: one per CPU). Batch sizes are chosen as joblib chooses them for its process
    backends (about 0.2 to 2 seconds a batch), so that a child's start is paid for a
    batch rather than for every call.
    """

    supports_retrieve_callback = True
    supports_timeout = True

    def __init__(self, nesting_level: int | None = None,
                 inner_max_num_threads: int | None = None, *,
                 max_tasks_per_child: int | None = 1, limits: Limits | None = None,
                 reporting: Reporting | None = None, **options: Unpack[PoolOptions]) -> None:
        super().__init__(nesting_level=nesting_level,
                         inner_max_num_threads=inner_max_num_threads)
        settle("isolator.joblib", dict(options), limits, reporting, PoolOptions)  # checks
        self._pool_options: dict[str, Any] = {"max_tasks_per_child": max_tasks_per_child,
                                              "limits": limits, "reporting": reporting,
                                              **options}
        self._executor: IsolatedExecutor | None = None
        self.parallel: Any = None

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            return 1
        if n_jobs < 0:
            return max((os.cpu_count() or 1) + 1 + n_jobs, 1)
        return n_jobs

    def configure(self, n_jobs: int | None = 1, parallel: Any = None, prefer: str | None = None,
                  require: str | None = None, **backend_kwargs: Any) -> int:
        """Make the pool of a ``Parallel`` call; the number of children it runs at once."""
        workers = self.effective_n_jobs(n_jobs)
        self._executor = IsolatedExecutor(workers, **self._pool_options)
        self.parallel = parallel
        return workers

    def submit(self, func: Callable[[], Any], callback: Callable[[Any], None] | None = None
               ) -> Future[Any]:
        """Run one batch in a child; ``callback(future)`` once it is done."""
        assert self._executor is not None, "configure() comes first"
        functions = [item[0] for item in getattr(func, "items", ())]
        name = function_name(functions[0]) if functions else function_name(func)
        future = self._executor._submit(func, (), {}, name, _modules(functions))
        if callback is not None:
            future.add_done_callback(callback)
        return future

    def retrieve_result_callback(self, future: Future[Any]) -> Any:
        return future.result()

    def terminate(self) -> None:
        """The end of a ``Parallel`` call: its children have all ended."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self.reset_batch_stats()

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """A batch failed: kill the others' children (and make a new pool if asked)."""
        if self._executor is not None:
            self._executor.terminate()
            self._executor = None
        if ensure_ready and self.parallel is not None:
            self.configure(n_jobs=self.parallel.n_jobs, parallel=self.parallel)


def _modules(functions: list[Any]) -> tuple[str, ...]:
    """The modules of the functions a batch calls, for the zygote to preload."""
    found: dict[str, None] = {}
    for fn in functions:
        inner = _unwrapped(fn)
        module = getattr(inner, "__module__", None)
        if isinstance(module, str) and module != "__main__" and module in sys.modules:
            found[module] = None
    return tuple(found)


def _unwrapped(fn: Any) -> Any:
    # delayed(partial(f, ...)); scikit-learn's delayed wraps f in a _FuncWrapper that
    # keeps it as .function; decorators keep it as __wrapped__.
    for _ in range(10):
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif callable(getattr(fn, "function", None)):
            fn = fn.function
        elif getattr(fn, "__wrapped__", None) is not None:
            fn = fn.__wrapped__
        else:
            break
    return fn


def register() -> None:
    """Register the backend with joblib as ``"isolator"`` (idempotent)."""
    _parallel.register_parallel_backend("isolator", IsolatorBackend)
