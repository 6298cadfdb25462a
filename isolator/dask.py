"""isolator on a Dask distributed cluster: every task in a fresh capped child on a worker.

::

    from distributed import Client
    from isolator import escalate_memory
    from isolator.dask import DaskExecutor

    with DaskExecutor(Client("tcp://scheduler:8786"), max_mem="4GB",
                      escalate=escalate_memory(2)) as ex:
        for result in ex.map(transform, paths):
            ...

Workers declare how much memory isolated tasks may use as the resource ``MEM`` (bytes:
``dask worker ... --resources MEM=8e9``, or ``IsolatorPlugin`` works it out); every
task requests its cap of it. A task past its cap fails alone with
``MemoryLimitExceeded`` and its report, on the client; the worker is not restarted.
See docs/cluster.md.

``distributed`` (the extra ``isolator[dask]``) is imported when a name is first used,
not when this module is.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["DaskExecutor", "IsolatorPlugin"]

_HOME = {"DaskExecutor": "._dask.executor", "IsolatorPlugin": "._dask.plugins"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'isolator.dask' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name], "isolator"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from ._dask.executor import DaskExecutor
    from ._dask.plugins import IsolatorPlugin
