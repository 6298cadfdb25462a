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
CgroupManager.detect() returns None when there is none, and other layers must
then do the job.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from typing import Literal

CgroupVersion = Literal[1, 2]

_V1_MOUNT = "/sys/fs/cgroup/memory"
_V2_MOUNT = "/sys/fs/cgroup"
_MANAGER_DIR = re.compile(r"isolator-(\d+)")


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def _write(path: str, value: str) -> None:
    # A raw write, so the kernel's verdict on this value is raised here and not
    # deferred to a buffered flush at close().
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def attach_self(procs_file: str) -> None:
    """Move the calling process into the cgroup whose cgroup.procs is `procs_file`."""
    _write(procs_file, str(os.getpid()))


def _try_write(path: str, value: str) -> bool:
    try:
        _write(path, value)
    except OSError:
        return False
    return True


def _rmdir(path: str) -> bool:
    with contextlib.suppress(OSError):
        os.rmdir(path)
    return not os.path.isdir(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    try:
        return _read(f"/proc/{pid}/stat").rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # when unsure, never treat another supervisor's cgroups as stale


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
            _write(self._file("memory.max"), value)
            _try_write(self._file("memory.swap.max"), "0")
            return
        memory = self._file("memory.limit_in_bytes")
        memsw = self._file("memory.memsw.limit_in_bytes")
        # v1 insists on memory <= memory+swap after every single write, so raising the
        # limit only works once memsw has been raised first.
        try:
            _write(memory, value)
        except OSError:
            if not _try_write(memsw, value):
                raise
            _write(memory, value)
        else:
            _try_write(memsw, value)

    def oom_kills(self) -> int:
        """The kernel's OOM-kill counter for this cgroup; 0 if not exposed."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            found = re.search(
                r"^oom_kill (\d+)$", _read(self._file(name)), re.MULTILINE
            )
        except OSError:
            return 0
        return int(found.group(1)) if found else 0

    def usage(self) -> int:
        """Bytes currently charged to this cgroup."""
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        return int(_read(self._file(name)))

    def pids(self) -> list[int]:
        """Processes now in the cgroup (zombies are not listed)."""
        try:
            return [int(pid) for pid in _read(self.procs_file).split()]
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
            if not (group_kill and _try_write(self._file("cgroup.kill"), "1")):
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
            _try_write(self._file("memory.force_empty"), "0")


def _candidates() -> list[tuple[str, CgroupVersion]]:
    found: list[tuple[str, CgroupVersion]] = []
    for line in _read("/proc/self/cgroup").splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and not controllers:
            own = os.path.normpath(_V2_MOUNT + path)
            with contextlib.suppress(OSError):
                if "memory" in _read(os.path.join(own, "cgroup.controllers")).split():
                    found.insert(0, (own, 2))
        elif "memory" in controllers.split(","):
            own = os.path.normpath(_V1_MOUNT + path)
            # Without a cgroup namespace a container sees the host path here, while
            # its mount already starts at its own cgroup.
            if not os.path.isdir(own):
                own = _V1_MOUNT
            found.append((own, 1))
    return found


def _remove_stale(root: str, version: CgroupVersion) -> None:
    for name in os.listdir(root):
        match = _MANAGER_DIR.fullmatch(name)
        pid = int(match.group(1)) if match else os.getpid()
        if pid == os.getpid() or _alive(pid):
            continue
        directory = os.path.join(root, name)
        with contextlib.suppress(OSError):
            for entry in os.scandir(directory):
                if entry.is_dir(follow_symlinks=False):
                    CgroupSlot(entry.path, version).kill_all(deadline=0.1)
                    _rmdir(entry.path)
        _rmdir(directory)


class CgroupManager:
    """Owns the per-child cgroups of one supervisor process.

    Slots are reused: a cgroup is created once and handed out again, because creating
    and removing memory cgroups per task is slow and leaves offline cgroups behind in
    the kernel.
    """

    def __init__(self, root: str, version: CgroupVersion) -> None:
        self.root = root
        self.version: CgroupVersion = version
        self._dir = os.path.join(root, f"isolator-{os.getpid()}")
        self._lock = threading.Lock()
        self._slots: list[CgroupSlot] = []
        self._free: list[CgroupSlot] = []
        self._next = 0
        self._closed = False

    @classmethod
    def detect(cls) -> CgroupManager | None:
        """A manager on the first writable memory cgroup, or None. Never raises."""
        try:
            candidates = _candidates()
        except (OSError, ValueError):
            return None
        for root, version in candidates:
            manager = cls(root, version)
            try:
                _remove_stale(root, version)
                subtree = os.path.join(root, "cgroup.subtree_control")
                if version == 2 and "memory" not in _read(subtree).split():
                    # The kernel refuses this (EBUSY) while our own cgroup holds
                    # processes; that is the signal v2 is unusable, and we never move
                    # the caller out of its cgroup to get around it.
                    _write(subtree, "+memory")
                os.makedirs(manager._dir, exist_ok=True)
                if version == 2:
                    _write(
                        os.path.join(manager._dir, "cgroup.subtree_control"), "+memory"
                    )
                with manager._lock:
                    probe = manager._create()
                name = "memory.max" if version == 2 else "memory.limit_in_bytes"
                _write(probe._file(name), "max" if version == 2 else "-1")
                manager._free.append(probe)
                return manager
            except (OSError, ValueError):
                manager.close()
        return None

    def _create(self) -> CgroupSlot:
        while True:
            path = os.path.join(self._dir, f"slot-{self._next}")
            self._next += 1
            try:
                os.mkdir(path)
                break
            except FileExistsError:
                continue  # another manager of this same process shares the directory
        slot = CgroupSlot(path, self.version)
        self._slots.append(slot)
        if self.version == 2:
            # v2 can take the whole tree down together on OOM, as v1 cannot.
            _try_write(slot._file("memory.oom.group"), "1")
        return slot

    def acquire(self) -> CgroupSlot:
        """A free slot, created on demand. Thread-safe."""
        with self._lock:
            if self._closed:
                raise RuntimeError("CgroupManager is closed")
            return self._free.pop() if self._free else self._create()

    def release(self, slot: CgroupSlot) -> None:
        """Return a slot whose processes the caller has killed."""
        slot.reset()
        with self._lock:
            # A slot that still holds processes (stuck in uninterruptible sleep) would
            # mix them into the next task's accounting: keep it out of rotation.
            reusable = slot in self._slots and slot not in self._free
            if reusable and not self._closed and not slot.pids():
                self._free.append(slot)

    def close(self) -> None:
        """Kill everything and remove every slot and the manager's directory. Never raises."""
        with contextlib.suppress(OSError, ValueError), self._lock:
            self._closed = True
            for slot in self._slots:
                slot.reset()
            self._slots = [slot for slot in self._slots if not _rmdir(slot.path)]
            self._free = []
            _rmdir(self._dir)
