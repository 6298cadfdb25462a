"""The traceback a report keeps, at the privacy of its forensics level.

The caller's own exception keeps the child's whole traceback (it stays in the caller's
process); the report is a file that outlives the task and travels, so what it keeps
follows the forensics level: ``types`` keeps every frame's location and the exceptions'
type names but no message (a secret in a ``KeyError`` being handled at the breach is
data), the other levels cut every message, note included, as a value's repr is cut.
Source lines are kept at every level: they are the code, not the data it ran on; so are
isolator's own messages (the soft limit's), which say nothing of the data. Both texts,
the caller's and the report's, start at the task's first frame (``from_the_task``).
"""

from __future__ import annotations

import os
import traceback
from types import TracebackType

#: What a message is cut to outside the ``types`` level (the heap walk's repr limit).
MESSAGE_LIMIT = 80
WITHHELD = "<message withheld at the types level>"

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


_OWN_FILES = os.path.dirname(os.path.abspath(__file__)) + os.sep


def from_the_task(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` from the task's first frame on: the frames of this package that called the
    task (serving it, timing it, unwrapping a chunk) say nothing to whoever reads it.
    Frames after the task's stay (the soft limit's handler raised there)."""
    found = tb
    while found is not None and found.tb_frame.f_code.co_filename.startswith(_OWN_FILES):
        found = found.tb_next
    return found if found is not None else tb  # nothing but ours: it failed before the task


def for_report(exc: BaseException, level: str) -> str:
    """``exc``'s chain formatted as Python does, its messages kept as ``level`` allows."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    link = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(_one(current, level, current is exc) + link)
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    return "".join(reversed(parts))


def _one(exc: BaseException, level: str, outermost: bool) -> str:
    tb = exc.__traceback__
    if outermost:  # as the caller's text: without the frames that called the task
        tb = from_the_task(tb)
    frames = traceback.StackSummary.extract(traceback.walk_tb(tb), capture_locals=False)
    head = "Traceback (most recent call last):\n" if frames else ""
    lines = [head, *frames.format(), _headline(exc, level)]
    if level != "types":
        for note in getattr(exc, "__notes__", None) or ():
            lines.append(_cut(str(note)) + "\n")
    return "".join(lines)


def _headline(exc: BaseException, level: str) -> str:
    cls = type(exc)
    name = cls.__qualname__
    if cls.__module__ not in ("builtins", "__main__"):
        name = f"{cls.__module__}.{name}"
    message = _message(exc)
    if not message:
        return f"{name}\n"
    if cls.__module__.startswith("isolator."):  # ours say what happened, not the data
        return f"{name}: {message}\n"
    return f"{name}: {WITHHELD if level == 'types' else _cut(message)}\n"


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a __str__ that fails is reported as such
        return "<exception str() failed>"


def _cut(text: str) -> str:
    if len(text) <= MESSAGE_LIMIT:
        return text
    return f"{text[:MESSAGE_LIMIT]}... ({len(text):,} characters, cut to {MESSAGE_LIMIT})"
