"""Timeouts and crashes fail one call with a typed exception; nothing hangs.

Run with ``python examples/timeouts_and_crashes.py``.
"""

import os
import signal
import time

from isolator import TaskTimeout, WorkerLost, isolated


@isolated(timeout=0.5)
def slow() -> str:
    time.sleep(30)  # far longer than the timeout
    return "never returned"


@isolated(max_mem="128MB")
def exits_early() -> None:
    os._exit(3)  # like a C library calling exit(3): no result, no exception


@isolated(max_mem="128MB")
def killed() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # like the OOM killer or an operator's kill -9


# A timeout: the child is killed after 0.5 s and TaskTimeout (a TimeoutError) is raised.
started = time.monotonic()
try:
    slow()
except TaskTimeout as e:
    print(f"TaskTimeout after {time.monotonic() - started:.1f} s (timeout={e.timeout} s)")
else:
    raise SystemExit("expected TaskTimeout")

# A child that exits without a result: WorkerLost tells you how it ended.
try:
    exits_early()
except WorkerLost as e:
    print(f"WorkerLost: exit code {e.exitcode}")
    assert e.exitcode == 3
else:
    raise SystemExit("expected WorkerLost")

# A child killed by a signal: .signal names it.
try:
    killed()
except WorkerLost as e:
    print(f"WorkerLost: killed by {e.signal}")
    assert e.signal == "SIGKILL"
else:
    raise SystemExit("expected WorkerLost")

print("done: every failure was one exception, and the parent carries on")
