"""isolator: run memory-hungry work in short-lived child processes with a cap that holds.

Every public name is listed in ``__all__`` and documented in docs/api.md. Names are
loaded on first use (PEP 562): the zygote that forks every task child imports this
package too, and each module it does not load keeps the child's fork cheaper.

Where code runs is in the layout: ``_api`` (the caller's threads), ``_engine`` (the
engine's thread, and the reporting threads it starts), ``_child`` (the zygote and the
task children), ``_warden`` (the process that samples every child and enforces its
cap), ``_wire`` (both sides), ``_model`` (plain values and policies), ``forensics`` (in a
child, on a breach), ``reports`` and ``cli``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_HOME = {
    "ConfigurationError": "._errors",
    "IsolatedExecutor": "._api.executor",
    "IsolatedFunction": "._api.decorator",
    "IsolatedPool": "._api.pool",
    "IsolatorError": "._errors",
    "LeakWarning": "._errors",
    "Limits": "._model.values",
    "MemoryLimitExceeded": "._errors",
    "PicklingFailed": "._errors",
    "PoolClosed": "._errors",
    "RemoteError": "._errors",
    "RemoteTraceback": "._errors",
    "Reporting": "._model.values",
    "ResultEncodingError": "._api.pool_errors",
    "SerializationError": "._errors",
    "Statistics": "._model.statistics",
    "TaskTimeout": "._errors",
    "UnpicklingFailed": "._errors",
    "WorkerError": "._errors",
    "WorkerLost": "._errors",
    "WorkerStartupError": "._errors",
    "escalate_memory": "._model.escalation",
    "format_size": "._units",
    "isolated": "._api.decorator",
    "parse_size": "._units",
    "recycle_after_tasks": "._model.recycle",
    "recycle_any": "._model.recycle",
    "recycle_base": "._model.recycle",
    "recycle_on_growth": "._model.recycle",
    "recycle_on_idle_rss": "._model.recycle",
    "retry_if_memory_exceeded": "._model.retry",
    "retry_if_worker_lost": "._model.retry",
    "zygote_modules": "._api.zygote",
}

__all__ = [
    "ConfigurationError",
    "IsolatedExecutor",
    "IsolatedFunction",
    "IsolatedPool",
    "IsolatorError",
    "LeakWarning",
    "Limits",
    "MemoryLimitExceeded",
    "PicklingFailed",
    "PoolClosed",
    "RemoteError",
    "RemoteTraceback",
    "Reporting",
    "ResultEncodingError",
    "SerializationError",
    "Statistics",
    "TaskTimeout",
    "UnpicklingFailed",
    "WorkerError",
    "WorkerLost",
    "WorkerStartupError",
    "escalate_memory",
    "format_size",
    "isolated",
    "parse_size",
    "recycle_after_tasks",
    "recycle_any",
    "recycle_base",
    "recycle_on_growth",
    "recycle_on_idle_rss",
    "retry_if_memory_exceeded",
    "retry_if_worker_lost",
    "zygote_modules",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'isolator' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from ._api.decorator import IsolatedFunction, isolated
    from ._api.executor import IsolatedExecutor
    from ._api.pool import IsolatedPool
    from ._api.pool_errors import ResultEncodingError
    from ._api.zygote import zygote_modules
    from ._errors import (
        ConfigurationError,
        IsolatorError,
        LeakWarning,
        MemoryLimitExceeded,
        PicklingFailed,
        PoolClosed,
        RemoteError,
        RemoteTraceback,
        SerializationError,
        TaskTimeout,
        UnpicklingFailed,
        WorkerError,
        WorkerLost,
        WorkerStartupError,
    )
    from ._model.escalation import escalate_memory
    from ._model.recycle import (
        recycle_after_tasks,
        recycle_any,
        recycle_base,
        recycle_on_growth,
        recycle_on_idle_rss,
    )
    from ._model.retry import retry_if_memory_exceeded, retry_if_worker_lost
    from ._model.statistics import Statistics
    from ._model.values import Limits, Reporting
    from ._units import format_size, parse_size
