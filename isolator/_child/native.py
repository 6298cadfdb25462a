"""The child's half of native tracking at the deep forensics level: memray, per task.

The engine names a capture file (a CAPTURE frame before the TASK) and reads it once the
task has ended (``isolator._engine.native``); the child only starts the tracker and
closes it before it sends the task's outcome, so the capture is complete when read.
"""

from __future__ import annotations

from typing import Any


def start_tracking(path: str) -> Any:
    """Track every allocation of the task into ``path`` (Python frames; no native traces,
    which would cost far more than the 1.5x budget); the caller closes it."""
    import memray

    tracker = memray.Tracker(path, native_traces=False, follow_fork=False)
    tracker.__enter__()
    return tracker
