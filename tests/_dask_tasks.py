"""Functions the Dask tests run in isolated children on the cluster's workers (no
import of distributed here: the workers' zygotes preload this module)."""

from __future__ import annotations

import os
import time

MiB = 1024 * 1024


def span(seconds: float) -> tuple[int, float, float]:
    """Which worker ran it (its zygote's pid), and when it started and ended."""
    start = time.time()
    time.sleep(seconds)
    return os.getppid(), start, time.time()


def grow_to(mib: int) -> int:
    """Grow to ``mib`` MiB in 1 MiB steps from Python (a soft breach under a lower cap)."""
    hold = [bytearray(b"\x01") * MiB for _ in range(mib)]
    return len(hold)


def note_pid_and_sleep(path: str, seconds: float) -> int:
    """Say which process this is (atomically), then sleep."""
    with open(path + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.rename(path + ".tmp", path)
    time.sleep(seconds)
    return os.getpid()


def note_once_then_sleep(path: str, seconds: float) -> str:
    """The first attempt notes its pid and sleeps (to be killed); the next one returns."""
    if os.path.exists(path):
        return "second attempt"
    note_pid_and_sleep(path, seconds)
    return "first attempt"
