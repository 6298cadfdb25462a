"""The memory cgroups of one supervisor process: found, created, handed out, removed.

Each supervisor process owns a directory ``isolator-<pid>`` under the first writable
memory cgroup it finds, with one reusable slot per running child. Directories of
supervisors that have died are removed (their processes killed) when the next one
starts.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading

from .cgroup import CgroupSlot, CgroupVersion, read_file, remove_dir, try_write, write_file

_V1_MOUNT = "/sys/fs/cgroup/memory"
_V2_MOUNT = "/sys/fs/cgroup"
_MANAGER_DIR = re.compile(r"isolator-(\d+)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    try:
        return read_file(f"/proc/{pid}/stat").rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # when unsure, never treat another supervisor's cgroups as stale


def _candidates() -> list[tuple[str, CgroupVersion]]:
    found: list[tuple[str, CgroupVersion]] = []
    for line in read_file("/proc/self/cgroup").splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and not controllers:
            own = os.path.normpath(_V2_MOUNT + path)
            with contextlib.suppress(OSError):
                if "memory" in read_file(os.path.join(own, "cgroup.controllers")).split():
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
                    remove_dir(entry.path)
        remove_dir(directory)


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
                if version == 2 and "memory" not in read_file(subtree).split():
                    # The kernel refuses this (EBUSY) while our own cgroup holds
                    # processes; that is the signal v2 is unusable, and we never move
                    # the caller out of its cgroup to get around it.
                    write_file(subtree, "+memory")
                os.makedirs(manager._dir, exist_ok=True)
                if version == 2:
                    write_file(
                        os.path.join(manager._dir, "cgroup.subtree_control"), "+memory"
                    )
                with manager._lock:
                    probe = manager._create()
                name = "memory.max" if version == 2 else "memory.limit_in_bytes"
                write_file(probe._file(name), "max" if version == 2 else "-1")
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
            try_write(slot._file("memory.oom.group"), "1")
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
            self._slots = [slot for slot in self._slots if not remove_dir(slot.path)]
            self._free = []
            remove_dir(self._dir)
