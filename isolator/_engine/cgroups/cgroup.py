"""Hard memory cap: one kernel memory cgroup per running child.

What it guarantees. The kernel charges every page to the cgroup when the page is
allocated, so usage can never pass the limit: there is no sampling window and no
overshoot. The charge covers the whole process tree that lives in the cgroup,
including descendants that called setsid() or double-forked away from the
supervisor, and it counts native allocations (C extensions, mmap, thread stacks,
kernel objects) as well as the Python heap. Page cache is charged too, but it is
reclaimed when the cgroup nears its limit, so reading a large file through mmap
does not get a task killed. Swap is capped at zero where the kernel lets us, so
memory cannot escape to disk. When a task really does not fit, the kernel OOM
killer sends SIGKILL; to the parent that is indistinguishable from any other
SIGKILL, and only the cgroup's oom_kill counter (oom_kills()) tells them apart.

What it does not do. Pages charged before the child attaches itself (those it
shares copy-on-write with its parent) stay charged to the parent's cgroup. Shared
memory and tmpfs pages are charged to whichever cgroup touched them first. Under
cgroup v1 the OOM killer kills one process, not the tree, so callers must still
kill_all(). GPU memory, hugetlb pages and other processes' page cache are outside
it. A child running as root can write itself into another cgroup and escape.
It needs a writable memory cgroup (root, or a delegated v2 subtree);
``cgroup_manager.CgroupManager.detect()`` finds one, or returns None when there is
none, and other layers must then do the job.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass
from typing import Literal

CgroupVersion = Literal[1, 2]



def read_file(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def write_file(path: str, value: str) -> None:
    # A raw write, so the kernel's verdict on this value is raised here and not
    # deferred to a buffered flush at close().
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def try_write(path: str, value: str) -> bool:
    try:
        write_file(path, value)
    except OSError:
        return False
    return True


def remove_dir(path: str) -> bool:
    with contextlib.suppress(OSError):
        os.rmdir(path)
    return not os.path.isdir(path)


@dataclass
class CgroupSlot:
    """One reusable memory cgroup that runs one child at a time."""

    path: str
    version: CgroupVersion

    @property
    def procs_file(self) -> str:
        return os.path.join(self.path, "cgroup.procs")

    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def set_limit(self, limit: int) -> None:
        """Cap memory (and swap, best effort) at `limit` bytes."""
        value = str(limit)
        if self.version == 2:
            write_file(self._file("memory.max"), value)
            try_write(self._file("memory.swap.max"), "0")
            return
        memory = self._file("memory.limit_in_bytes")
        memsw = self._file("memory.memsw.limit_in_bytes")
        # v1 insists on memory <= memory+swap after every single write, so raising the
        # limit only works once memsw has been raised first.
        try:
            write_file(memory, value)
        except OSError:
            if not try_write(memsw, value):
                raise
            write_file(memory, value)
        else:
            try_write(memsw, value)

    def oom_kills(self) -> int:
        """The kernel's OOM-kill counter for this cgroup; 0 if not exposed."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            found = re.search(
                r"^oom_kill (\d+)$", read_file(self._file(name)), re.MULTILINE
            )
        except OSError:
            return 0
        return int(found.group(1)) if found else 0

    def usage(self) -> int:
        """Bytes currently charged to this cgroup."""
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        return int(read_file(self._file(name)))

    def pids(self) -> list[int]:
        """Processes now in the cgroup (zombies are not listed)."""
        try:
            return [int(pid) for pid in read_file(self.procs_file).split()]
        except FileNotFoundError:
            return []

    def kill_all(self, deadline: float = 1.0) -> None:
        """SIGKILL everything in the cgroup; wait up to `deadline` s for it to empty."""
        end = time.monotonic() + deadline
        group_kill = self.version == 2 and os.path.exists(self._file("cgroup.kill"))
        pause = 0.0005
        while True:
            pids = self.pids()
            if not pids:
                return
            # Repeat every round: a process may fork between reading the list and the
            # kill, and its child lands in this cgroup where the next read finds it.
            if not (group_kill and try_write(self._file("cgroup.kill"), "1")):
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            if time.monotonic() >= end:
                return
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

    def reset(self) -> None:
        """Make the slot ready for the next task."""
        if self.pids():
            self.kill_all()
        if self.version == 1:
            # Page cache of the previous task stays charged here; dropping it gives
            # the next task its whole budget and an honest usage() baseline.
            try_write(self._file("memory.force_empty"), "0")
