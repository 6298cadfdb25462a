"""What the zygote imports so that children start warm, and what it refuses.

The zygote imports the modules a fork request names: those the caller preloads, the
task function's own, and those earlier tasks of the same function imported (the engine
learns them from its children, which report only what a clean task imported: one that
left no Python thread and no connection behind, so that no import that starts a thread
or opens a connection is ever learned). An import cannot be undone, so the zygote also
looks after each one: an import that started a Python thread (the zygote forks every
child, and a fork copies a lock another thread holds) or opened a connection (every
child would share it) is reported and said in a log line. The set is bounded: at most
``MAX_MODULES`` modules, and the zygote stops growing past ``MAX_RSS`` (or a quarter of
the cap of the task that asked), since every preloaded page is mapped in every child
from its first instruction: shared, and not counted against its cap, but copied into
each child that writes to it (a refcount is a write), and then counted there.
"""

from __future__ import annotations

import importlib
import os
import sys

MAX_MODULES = 256  # named and learned modules, beyond the zygote's own
MAX_RSS = 256 << 20  # the zygote's RssAnon past which it preloads no more


class Preloader:
    """The zygote's imports on behalf of its children."""

    def __init__(self) -> None:
        self.loaded: list[str] = []  # in the order they were imported
        self._tried: set[str] = set()

    def warm(self, names: tuple[str, ...], cap: int | None) -> tuple[list[str], dict[str, str]]:
        """Import what is new in ``names``; what was loaded and what was refused, why."""
        fresh = [n for n in dict.fromkeys(names) if n not in self._tried]
        self._tried.update(fresh)
        loaded: list[str] = []
        refused: dict[str, str] = {}
        bound = MAX_RSS if cap is None else min(MAX_RSS, cap // 4)
        for name in fresh:
            if name in sys.modules:
                continue
            why = self._room(bound)
            if why is None:
                why = _import(name)
            if why is None:
                loaded.append(name)
                self.loaded.append(name)
            else:
                refused[name] = why
        return loaded, refused

    def _room(self, bound: int) -> str | None:
        if len(self.loaded) >= MAX_MODULES:
            return f"the zygote preloads at most {MAX_MODULES} modules"
        held = _rss()
        if held > bound:
            return (f"the zygote holds {held >> 20} MiB already, and every child starts "
                    f"with it: it preloads nothing more past {bound >> 20} MiB")
        return None


def _import(name: str) -> str | None:
    """Import ``name``; None when that went well, else why it is not a preload."""
    threads, sockets = _python_threads(), _sockets()
    try:
        importlib.import_module(name)
    except BaseException as exc:  # noqa: BLE001 - whatever the import raises
        return f"its import failed: {type(exc).__name__}: {exc}"
    if _python_threads() > threads:
        return "its import started a thread (forks from here are no longer safe)"
    if _sockets() > sockets:
        return "its import opened a connection, which every child would share"
    return None


def _python_threads() -> int:
    threading = sys.modules.get("threading")  # imported by someone, or no thread at all
    return threading.active_count() if threading is not None else 1


def _sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count


def _rss() -> int:
    from .._wire.procfs import self_rss

    return self_rss()
