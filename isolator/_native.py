"""Native allocation tracking for the deep forensics level, through memray.

The child writes memray's capture file (its default format survives SIGKILL and
``os._exit``, unlike the aggregated one) into a private directory the supervisor made;
the supervisor reads it after the child is gone, so allocation sites reach the report
whatever killed the task. memray is an optional extra (``isolator[memray]``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

TOP = 10
FRAMES = 6


def available() -> bool:
    try:
        import memray  # noqa: F401
    except ImportError:
        return False
    return True


def capture_path() -> str:
    """A capture file in a new 0700 directory (the capture holds the task's call stacks)."""
    return os.path.join(tempfile.mkdtemp(prefix="isolator-capture-"), "capture.bin")


def start(path: str) -> Any:
    """In the child: track every allocation of the task (Python frames; no native traces,
    which would cost far more than the 1.5x budget)."""
    import memray

    tracker = memray.Tracker(path, native_traces=False, follow_fork=False)
    tracker.__enter__()
    return tracker


def read(path: str) -> dict[str, Any]:
    """In the supervisor: the allocation sites at the high-water mark and those still
    live when the child ended; the capture directory is removed either way."""
    try:
        import memray

        reader = memray.FileReader(path)
        return {
            "peak_memory": reader.metadata.peak_memory,
            "high_water_mark": _top(reader.get_high_watermark_allocation_records(
                merge_threads=True)),
            "live_at_end": _top(reader.get_leaked_allocation_records(merge_threads=True)),
        }
    finally:
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def discard(path: str) -> None:
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def _top(records: Any) -> list[dict[str, Any]]:
    rows = sorted(records, key=lambda record: -record.size)[:TOP]
    return [
        {
            "bytes": record.size,
            "allocations": record.n_allocations,
            "stack": [f"{func} ({os.path.basename(file)}:{line})"
                      for func, file, line in record.stack_trace()[:FRAMES]],
        }
        for record in rows
    ]
