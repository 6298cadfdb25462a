"""The caller's world, as a child must see it at call time: its environment, umask,
``sys.argv`` and resource limits.

The zygote is started once, so without this every child would see the caller's world
as it was then: a variable the caller removed since, a new umask, a raised file limit
would not reach it. The engine reads the world at each fork request (``capture``, about
20 µs), sends only what changed since the last one (``changes``), and the zygote takes
it on itself (``apply``) before it forks, so every child inherits it. The working
directory travels with each task instead (``ChildSpec.cwd``).
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Any, NamedTuple

_RLIMITS = tuple(getattr(resource, name) for name in sorted(dir(resource))
                 if name.startswith("RLIMIT_"))


class World(NamedTuple):
    env: dict[bytes, bytes]
    umask: int
    argv: tuple[str, ...]
    rlimits: tuple[tuple[int, int, int], ...]  # (resource, soft, hard)


def capture() -> World:
    """This process's world now. The umask is read from /proc, not set and restored:
    setting it, even for a moment, would change it for the caller's other threads."""
    return World(dict(os.environb), _umask(), tuple(sys.argv),
                 tuple((r, *resource.getrlimit(r)) for r in _RLIMITS))


def _umask() -> int:
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)  # no /proc: the racy way is the only one
    os.umask(current)
    return current


def changes(before: World | None, now: World) -> dict[str, Any] | None:
    """The parts of ``now`` that differ from ``before`` (all of it when there is none)."""
    if before is None:
        return now._asdict()
    changed = {name: value for name, value in now._asdict().items()
               if getattr(before, name) != value}
    return changed or None


def apply(changed: dict[str, Any]) -> None:
    """Take on the caller's world (in the zygote, so that its children inherit it)."""
    if "env" in changed:
        environ = os.environb
        for key in [key for key in environ if key not in changed["env"]]:
            del environ[key]
        for key, value in changed["env"].items():
            if environ.get(key) != value:
                environ[key] = value
    if "umask" in changed:
        os.umask(changed["umask"])
    if "argv" in changed:
        sys.argv[:] = changed["argv"]
    for limit, soft, hard in changed.get("rlimits", ()):
        try:
            if resource.getrlimit(limit) != (soft, hard):
                resource.setrlimit(limit, (soft, hard))
        except (OSError, ValueError):  # a hard limit the caller raised, which we cannot
            pass
