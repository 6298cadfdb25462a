"""isolator: run memory-hungry work in short-lived child processes with a cap that holds.

Every public name is listed in ``__all__`` and documented in docs/api.md. Names are
loaded on first use (PEP 562): the zygote that forks every task child imports this
package too, and each module it does not load keeps the child's fork cheaper.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_HOME = {
    "ConfigurationError": "._errors",
    "IsolatedExecutor": "._executor",
    "IsolatedFunction": "._decorator",
    "IsolatedPool": "._pool",
    "IsolatorError": "._errors",
    "LeakWarning": "._errors",
    "Limits": "._options",
    "MemoryLimitExceeded": "._errors",
    "PoolClosed": "._errors",
    "RemoteTraceback": "._errors",
    "SerializationError": "._errors",
    "Statistics": "._statistics",
    "TaskTimeout": "._errors",
    "WorkerError": "._errors",
    "WorkerLost": "._errors",
    "WorkerStartupError": "._errors",
    "escalate_memory": "._retry",
    "format_size": "._units",
    "isolated": "._decorator",
    "parse_size": "._units",
    "recycle_after_tasks": "._recycle",
    "recycle_any": "._recycle",
    "recycle_base": "._recycle",
    "recycle_on_growth": "._recycle",
    "recycle_on_idle_rss": "._recycle",
    "retry_if_memory_exceeded": "._retry",
    "retry_if_worker_lost": "._retry",
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
    "PoolClosed",
    "RemoteTraceback",
    "SerializationError",
    "Statistics",
    "TaskTimeout",
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
    from ._decorator import IsolatedFunction, isolated
    from ._errors import (
        ConfigurationError,
        IsolatorError,
        LeakWarning,
        MemoryLimitExceeded,
        PoolClosed,
        RemoteTraceback,
        SerializationError,
        TaskTimeout,
        WorkerError,
        WorkerLost,
        WorkerStartupError,
    )
    from ._executor import IsolatedExecutor
    from ._options import Limits
    from ._pool import IsolatedPool
    from ._recycle import (
        recycle_after_tasks,
        recycle_any,
        recycle_base,
        recycle_on_growth,
        recycle_on_idle_rss,
    )
    from ._retry import escalate_memory, retry_if_memory_exceeded, retry_if_worker_lost
    from ._statistics import Statistics
    from ._units import format_size, parse_size
