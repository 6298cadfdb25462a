"""Native allocation tracking for the deep level, through memray: the engine's half.

Each task at the deep level gets its own capture file, in a private directory the
engine made (a CAPTURE frame names it before the TASK), and the child tracks the task
into it (``isolator._child.native``). The child closes the file before it sends the
task's outcome, so the engine reads it then; when the task was killed instead, it reads
it after the child is gone (memray's default format survives SIGKILL and ``os._exit``,
unlike the aggregated one),
so allocation sites reach the report whatever ended the task, in fresh children and
reused workers alike. memray is an optional extra (``isolator[memray]``).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from typing import Any

TOP = 10
FRAMES = 6


@functools.cache
def available() -> bool:
    """Whether memray can be imported; asked once (a failed import searches sys.path)."""
    try:
        import memray  # noqa: F401
    except ImportError:
        return False
    return True


def wanted(forensics: str, cap: int | None) -> bool:
    """Whether a task is tracked: at the deep level, under a cap."""
    return forensics == "deep" and cap is not None


def capture_for(forensics: str, cap: int | None) -> tuple[str | None, str | None]:
    """A new capture file for one task when it is tracked, or why it cannot be."""
    if not wanted(forensics, cap):
        return None, None
    if not available():
        return None, "native tracking needs memray: pip install 'isolator[memray]'"
    return capture_path(), None


def capture_path() -> str:
    """A capture file in a new 0700 directory (the capture holds the task's call stacks)."""
    return os.path.join(tempfile.mkdtemp(prefix="isolator-capture-"), "capture.bin")


def read(path: str) -> dict[str, Any]:
    """Off the engine's loop (it takes ~0.3 s): the allocation sites at the high-water
    mark and those still live when the child ended; the capture directory is removed
    either way."""
    try:
        import memray

        reader = memray.FileReader(path)
        peak = list(reader.get_high_watermark_allocation_records(merge_threads=True))
        return {
            "peak_memory": reader.metadata.peak_memory,
            "high_water_mark": _top(peak),
            "live_at_end": _top(reader.get_leaked_allocation_records(merge_threads=True)),
            "flame": _flame(peak),
        }
    finally:
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def sites(path: str) -> dict[str, Any]:
    """``read``, or what went wrong: a report without this part beats none."""
    try:
        return read(path)
    except Exception as exc:  # noqa: BLE001 - any failure of the reader
        return {"error": f"the memray capture could not be read: {exc}"}


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


FLAME_DEPTH = 16
FLAME_MIN_SHARE = 0.005  # nodes under half a percent of the peak are folded away


def _flame(records: list[Any]) -> dict[str, Any]:
    """The high-water mark as a tree of call stacks weighted by bytes (outermost first),
    for the report's icicle chart; small branches are dropped to keep the report small."""
    root: dict[str, Any] = {"name": "all", "bytes": 0, "children": {}}
    for record in records:
        frames = [f"{func} ({os.path.basename(file)}:{line})"
                  for func, file, line in reversed(record.stack_trace())][:FLAME_DEPTH]
        node = root
        node["bytes"] += record.size
        for frame in frames:
            node = node["children"].setdefault(frame, {"name": frame, "bytes": 0,
                                                        "children": {}})
            node["bytes"] += record.size
    floor = root["bytes"] * FLAME_MIN_SHARE
    return _prune(root, floor)


def _prune(node: dict[str, Any], floor: float) -> dict[str, Any]:
    children = sorted((c for c in node["children"].values() if c["bytes"] >= floor),
                      key=lambda c: -c["bytes"])
    return {"name": node["name"], "bytes": node["bytes"],
            "children": [_prune(child, floor) for child in children]}
