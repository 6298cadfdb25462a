"""A script with its state in ``__main__``: run it as ``python sessions_script.py DIR``.

Events are grouped per user in the script's own ``_SESSIONS`` dict, which is never
pruned; the replay runs isolated (by value, since it lives in ``__main__``) and its
report goes to DIR.
"""

from __future__ import annotations

import itertools
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from isolator import MemoryLimitExceeded, isolated
from leakcorpus import NOTE
from leakcorpus._data import footprint, records

_SESSIONS: dict[str, dict[str, Any]] = {}
_kept = [0]


def handle(event: dict[str, Any]) -> None:
    session = _SESSIONS.setdefault(event["customer"][-3:], {"events": [], "open": True})
    session["events"].append(event)
    _kept[0] += footprint(event)


def replay() -> None:
    try:
        for event in itertools.islice(records(), 10**9):
            handle(event)
    except MemoryLimitExceeded as exc:
        lists = sum(sys.getsizeof(s) + sys.getsizeof(s["events"]) for s in _SESSIONS.values())
        exc.add_note(f"{NOTE}{_kept[0] + lists + sys.getsizeof(_SESSIONS)}")
        raise


if __name__ == "__main__":
    try:
        isolated(max_mem=sys.argv[2], report_dir=sys.argv[1])(replay)()
    except MemoryLimitExceeded as exc:
        print(exc.report.path)
