"""The frames that were running: their biggest locals, and locals as roots of chains.

A running frame keeps its locals in the interpreter's own frame, where ``gc`` cannot see
them (its ``tp_traverse`` visits only ``f_back``), so they are read with ``f_locals``.
On 3.11 that builds a snapshot dict stored on the frame, holding every local until the
frame dies: the user's ``del blob`` after catching ``MemoryLimitExceeded`` would free
nothing (FINDINGS.md: it caused a second MemoryError). So each snapshot is cleared once
read, unless something else may use it: the user's own ``locals()`` result or an
``exec`` namespace (an extra reference to the dict), or a Python-level trace function
(``sys.settrace`` writes the snapshot back into the frame after each trace call, and
would then erase the locals). Isolator's own frames are skipped.
"""

from __future__ import annotations

import os
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

from ._common import PACKAGE_DIR, Budget, deep_size, is_code, is_library_file, safe_repr, type_name

CO_OPTIMIZED = 0x0001  # a function's frame (not a module, class body or exec)
_PACKAGE = PACKAGE_DIR
MAX_FRAMES = 200


def is_ours(frame: FrameType) -> bool:
    """A frame of isolator's own code."""
    return frame.f_code.co_filename.startswith(_PACKAGE)


def function_label(frame: FrameType) -> str:
    """``parse()``: how a chain names the function a local lives in."""
    return f"{frame.f_code.co_qualname}()"


def frame_label(frame: FrameType) -> str:
    """``parse (reader.py:42)``: a frame, the way a traceback line names it."""
    code = frame.f_code
    return f"{code.co_qualname} ({os.path.basename(code.co_filename)}:{frame.f_lineno})"


def may_drop_snapshots() -> str | None:
    """None if f_locals snapshots can be cleared after reading, else why not."""
    tracer = sys.gettrace()
    if tracer is None or type(tracer).__name__ == "CTracer":  # coverage's C tracer
        return None
    return "a Python trace function is active; clearing its snapshots would erase locals"


def read_locals(frame: FrameType, drop: bool) -> list[tuple[str, Any]]:
    """``(name, value)`` of a function frame's locals, leaving nothing behind if
    ``drop`` (see the module docstring); also used on finished frames."""
    snapshot = frame.f_locals
    if type(snapshot) is not dict:  # a class body's __prepare__ namespace, say
        return []
    items = list(dict.items(snapshot))
    # References now: the frame's, ``snapshot``, getrefcount's argument. More means
    # someone else (locals(), exec) holds this very dict.
    if drop and frame.f_code.co_flags & CO_OPTIMIZED and sys.getrefcount(snapshot) == 3:
        snapshot.clear()
    return items


class Stack:
    """The locals of the running frames, innermost first; holds references to the
    user's objects until :meth:`release`."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.names: list[tuple[str, str, str]] = []  # (frame label, function label, name)
        self.library: list[bool] = []  # the value's frame runs library code, not the user's
        self.by_id: dict[int, int] = {}  # id(value) -> index of its innermost occurrence
        #: globals of user frames that are no module's namespace (a function sent by
        #: value, from the caller's ``__main__``): id -> (its ``__name__``, the dict)
        self.namespaces: dict[int, tuple[str, Any]] = {}
        self.frames = 0
        self.kept: str | None = None  # why snapshots were left on the frames

    def release(self) -> None:
        self.values.clear()
        self.by_id.clear()
        self.namespaces.clear()

    def root_label(self, obj: object) -> str | None:
        """``local 'blob' in parse()`` if ``obj`` is a local of a running frame."""
        index = self.by_id.get(id(obj))
        if index is None:
            return None
        _, function, name = self.names[index]
        return f"local '{name}' in {function}"


def frames_of(frame: FrameType | None, traceback: TracebackType | None) -> list[FrameType]:
    """The frames that were running, innermost first: a traceback's frames, then the
    callers of its outermost one. A generator that raised has lost its caller (its
    frame's ``f_back`` is gone once it finished), so ``f_back`` alone would stop there."""
    found: list[FrameType] = []
    outer = None
    while traceback is not None:
        found.append(traceback.tb_frame)
        outer = outer or traceback.tb_frame
        traceback = traceback.tb_next
    found.reverse()
    start = outer.f_back if outer is not None else frame
    if outer is not None and frame is not None and frame not in found:
        found.insert(0, frame)
    while start is not None and len(found) < MAX_FRAMES:
        found.append(start)
        start = start.f_back
    return found


def read_stack(frame: FrameType | None, stack: Stack, thread: str | None = None,
               modules: dict[int, str] | None = None,
               traceback: TracebackType | None = None) -> Stack:
    """Read the locals of ``frame`` and its callers (or of a ``traceback``'s frames)
    into ``stack``, isolator's own frames skipped; ``thread`` names the thread when it
    is not the one that failed. Globals of user frames that are no module's
    (``modules``) are kept as namespaces."""
    if stack.kept is None:
        stack.kept = may_drop_snapshots()
    namespaces: set[int] = set()  # dicts that inner module/class/exec frames run in
    for running in frames_of(frame, traceback):
        if stack.frames >= MAX_FRAMES:
            break
        if is_ours(running):
            pass
        elif not running.f_code.co_flags & CO_OPTIMIZED:
            namespaces.add(id(running.f_locals))  # a namespace, not a snapshot
        else:
            stack.frames += 1
            drop = stack.kept is None and id(running.f_locals) not in namespaces
            where = "" if thread is None else f" (thread {thread!r})"
            labels = (frame_label(running), function_label(running) + where)
            library = is_library_file(running.f_code.co_filename)
            for name, value in read_locals(running, drop):
                stack.by_id.setdefault(id(value), len(stack.values))
                stack.values.append(value)
                stack.names.append((*labels, name))
                stack.library.append(library)
            _namespace(running, stack, modules, library)
    return stack


def _namespace(frame: FrameType, stack: Stack, modules: dict[int, str] | None,
               library: bool) -> None:
    globals_ = frame.f_globals
    if modules is None or library or id(globals_) in modules or type(globals_) is not dict:
        return
    name = globals_.get("__name__")
    stack.namespaces[id(globals_)] = (name if type(name) is str else "__main__", globals_)


def read_threads(stack: Stack, modules: dict[int, str]) -> int:
    """Add the locals of every other thread's running frames; how many threads."""
    me = threading.get_ident()
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    count = 0
    for ident, frame in list(sys._current_frames().items()):
        if ident != me:
            count += 1
            read_stack(frame, stack, names.get(ident, str(ident)), modules)
    return count


def locals_section(
    stack: Stack, skip: set[int], budget: Budget, values: bool, max_repr: int, top: int = 10
) -> dict[str, Any]:
    """The biggest locals of the running frames, by size one level deep."""
    ranked: list[tuple[int, int]] = []
    for index, value in enumerate(stack.values):
        if stack.by_id.get(id(value)) != index or is_code(value):
            continue  # the same object further out, or code
        if index % 64 == 0:
            budget.check(f"after sizing {index} of {len(stack.values)} locals")
        ranked.append((deep_size(value, skip, sample=5000), index))
    ranked.sort(reverse=True)
    rows = []
    for size, index in ranked[:top]:
        value = stack.values[index]
        frame, _, name = stack.names[index]
        row: dict[str, Any] = {
            "frame": frame, "name": name, "type": type_name(type(value)), "bytes": size,
        }
        if values:
            row["repr"] = safe_repr(value, max_repr)
        rows.append(row)
    section: dict[str, Any] = {"frames": stack.frames, "top": rows}
    if stack.kept:
        section["snapshots_kept"] = stack.kept
    return section
