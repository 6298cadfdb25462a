"""Functions a joblib ``Parallel`` call runs under the isolator backend (in the tests'
subprocesses, so that the session's zygote never preloads joblib and numpy)."""

from __future__ import annotations

import os
import time

IMPORTED_IN = os.getpid()  # the zygote's pid when the backend preloaded this module


def where(x: int) -> dict[str, int | bool]:
    """Which process ran ``x``, its parent, and whether this module came preloaded."""
    return {"x": x, "pid": os.getpid(), "ppid": os.getppid(),
            "preloaded": IMPORTED_IN != os.getpid()}


def span(seconds: float) -> tuple[float, float]:
    """Sleep; when it started and ended (the tasks' own clock says what overlapped)."""
    started = time.time()
    time.sleep(seconds)
    return started, time.time()


def grow(mib: int) -> int:
    hold = [bytearray(b"\x01") * (1 << 20) for _ in range(mib)]
    return len(hold)


def sleep_then(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
