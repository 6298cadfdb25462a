"""Report retention: a report folder keeps the newest reports, and none past an age.

Pruning runs after each report is written (``report_keep``) and from the command line
(``isolator reports --prune``), possibly in several processes at once, while others are
writing. It never removes a report still being written:

- a writer holds an exclusive ``flock`` on its report's directory from right after
  creating it until its last file is in place (``writing``); the pruner takes the same
  lock, without waiting, before it removes a directory, and skips one it cannot lock;
- a directory without ``report.json`` (written last) is incomplete: it is removed only
  once it has not changed for ``ABANDONED_AFTER`` seconds and its lock is free (its
  writer died), which also covers the instant between ``mkdir`` and the lock;
- only directories named as isolator names reports (``20250101-120000-fn-4242``) are
  considered, never links: a folder of the user's in the same place is never touched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import time
from collections.abc import Iterator
from typing import NamedTuple

ABANDONED_AFTER = 600.0  # seconds an incomplete report must be untouched to be removed
_ENTRY = re.compile(r"^\d{8}-\d{6}-[A-Za-z0-9_-]+$")


class Pruned(NamedTuple):
    """What a prune did: the directories removed, and how many reports it kept."""

    removed: list[str]
    kept: int


@contextlib.contextmanager
def writing(entry: str) -> Iterator[None]:
    """Hold the report directory ``entry`` as being written: pruners leave it alone."""
    fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last fd of the open file releases the lock


def _entries(directory: str) -> list[tuple[float, str, bool]]:
    """``(when it was finished or last changed, path, complete)`` of each report."""
    found = []
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if not _ENTRY.match(name) or os.path.islink(path) or not os.path.isdir(path):
            continue
        try:
            finished = os.stat(os.path.join(path, "report.json")).st_mtime
            found.append((finished, path, True))
        except FileNotFoundError:
            with contextlib.suppress(FileNotFoundError):
                found.append((os.stat(path).st_mtime, path, False))
        except OSError:
            continue  # another user's report in a shared folder: not ours to judge
    return sorted(found, reverse=True)


def _remove_unless_busy(path: str) -> bool:
    """Remove one report directory if no writer holds it; whether it was removed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False  # gone already (another pruner), or not a directory any more
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False  # being written
            raise
        shutil.rmtree(path, ignore_errors=True)
        return not os.path.exists(path)
    finally:
        os.close(fd)


def prune(directory: str, count: int | None, age: float | None,
          spare: str | None = None, now: float | None = None) -> Pruned:
    """Remove the reports in ``directory`` beyond the newest ``count`` and those finished
    more than ``age`` seconds ago (None: no such bound); ``spare`` (the report just
    written) is always kept."""
    now = time.time() if now is None else now
    removed: list[str] = []
    kept = 0
    spared = os.path.abspath(spare) if spare else None
    for when, path, complete in _entries(directory):
        if os.path.abspath(path) == spared:
            kept += 1
            continue
        if not complete:
            if now - when > ABANDONED_AFTER and _remove_unless_busy(path):
                removed.append(path)
            continue
        too_many = count is not None and kept >= count
        too_old = age is not None and now - when > age
        if (too_many or too_old) and _remove_unless_busy(path):
            removed.append(path)
        else:
            kept += 1
    return Pruned(removed, kept)
