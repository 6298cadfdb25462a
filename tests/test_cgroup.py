"""The memory cgroup layer, exercised with real processes and real memory."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from isolator._engine.cgroups.cgroup import CgroupSlot
from isolator._engine.cgroups.manager import CgroupManager

MIB = 1 << 20
REPO = str(Path(__file__).resolve().parent.parent)


def _probe() -> bool:
    manager = CgroupManager.detect()
    if manager is None:
        return False
    manager.close()
    return True


pytestmark = pytest.mark.skipif(
    not _probe(), reason="no writable memory cgroup (needs root or a delegated cgroup)"
)

# Every child attaches itself first, exactly as the engine's children will.
PRELUDE = (
    "import os, sys, time\n"
    "from isolator._child.child import join_cgroup\n"
    "join_cgroup(sys.argv[1])\n"
)


@pytest.fixture
def manager() -> Iterator[CgroupManager]:
    found = CgroupManager.detect()
    assert found is not None
    yield found
    found.close()


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def spawn(
    started: list[subprocess.Popen[bytes]], procs_file: str, body: str, *args: str
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.Popen(
        [sys.executable, "-c", PRELUDE + body, procs_file, *args], env=env
    )
    started.append(proc)
    return proc


def dead(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in {"Z", "X"}


def wait_for_file(path: Path, timeout: float = 10.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.01)
    pytest.fail(f"{path} was not written within {timeout} s")


def expected_version() -> int:
    try:
        controllers = Path("/sys/fs/cgroup/cgroup.controllers").read_text().split()
    except OSError:
        return 1
    return 2 if "memory" in controllers else 1


def test_slots_are_reused_and_removed_on_close(manager: CgroupManager) -> None:
    assert manager.version == expected_version()
    first, second = manager.acquire(), manager.acquire()
    assert first.path != second.path
    own_dir = os.path.join(manager.root, f"isolator-{os.getpid()}")
    for slot in (first, second):
        assert os.path.dirname(slot.path) == own_dir
        assert os.path.isfile(slot.procs_file)
        assert slot.pids() == []
    manager.release(first)
    assert manager.acquire() == first
    manager.close()
    assert not os.path.exists(first.path)
    assert not os.path.exists(second.path)
    assert not os.path.exists(own_dir)
    manager.close()  # idempotent


def test_oversized_allocation_is_oom_killed(
    manager: CgroupManager, children: list[subprocess.Popen[bytes]]
) -> None:
    slot = manager.acquire()
    slot.set_limit(64 * MIB)
    before = slot.oom_kills()
    body = f"b = bytearray(b'\\x01') * {256 * MIB}\n"
    proc = spawn(children, slot.procs_file, body)
    assert proc.wait(timeout=60) == -9
    assert slot.oom_kills() >= before + 1


def test_allocation_within_limit_succeeds(
    manager: CgroupManager, children: list[subprocess.Popen[bytes]]
) -> None:
    slot = manager.acquire()
    slot.set_limit(64 * MIB)
    before = slot.oom_kills()
    body = f"b = bytearray(b'\\x01') * {16 * MIB}\nassert b[-1] == 1\n"
    proc = spawn(children, slot.procs_file, body)
    assert proc.wait(timeout=60) == 0
    assert slot.oom_kills() == before


def test_kill_all_reaches_setsid_grandchild(
    manager: CgroupManager, children: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    slot = manager.acquire()
    slot.set_limit(256 * MIB)
    pid_file = tmp_path / "grandchild"
    body = (
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    with open(sys.argv[2], 'w') as fh:\n"
        "        fh.write(f'{os.getpid()}\\n')\n"
        "    time.sleep(120)\n"
        "    os._exit(0)\n"
        "time.sleep(120)\n"
    )
    proc = spawn(children, slot.procs_file, body, str(pid_file))
    grandchild = int(wait_for_file(pid_file))
    assert sorted(slot.pids()) == sorted([proc.pid, grandchild])

    started = time.monotonic()
    slot.kill_all()
    while not (dead(proc.pid) and dead(grandchild)):
        assert time.monotonic() - started < 1.0, "survivors after kill_all()"
        time.sleep(0.005)
    assert proc.wait(timeout=5) == -9
    assert slot.pids() == []

    manager.close()
    assert not os.path.exists(slot.path)


def test_page_cache_is_reclaimed_not_killed(
    manager: CgroupManager, children: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    size, limit = 512 * MIB, 128 * MIB
    data = tmp_path / "big.bin"
    chunk = os.urandom(8 * MIB)
    digest = hashlib.sha1(usedforsecurity=False)
    with data.open("wb") as fh:
        for index in range(size // len(chunk)):
            block = bytes([index]) + chunk[1:]
            fh.write(block)
            digest.update(block)
        fh.flush()
        os.fsync(fh.fileno())
        # Evict the file so the child's reads are charged to the child's cgroup.
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)

    slot = manager.acquire()
    slot.set_limit(limit)
    before = slot.oom_kills()
    body = (
        "import hashlib, mmap\n"
        "with open(sys.argv[2], 'rb') as fh:\n"
        "    m = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)\n"
        "view, h = memoryview(m), hashlib.sha1(usedforsecurity=False)\n"
        "for at in range(0, len(m), 8 << 20):\n"
        "    h.update(view[at:at + (8 << 20)])\n"
        "assert h.hexdigest() == sys.argv[3], 'read wrong data'\n"
    )
    proc = spawn(children, slot.procs_file, body, str(data), digest.hexdigest())
    assert proc.wait(timeout=120) == 0
    assert slot.oom_kills() == before
    assert slot.usage() <= limit
    peak_name = "memory.max_usage_in_bytes" if slot.version == 1 else "memory.peak"
    peak_file = Path(slot.path, peak_name)
    if peak_file.exists():
        # The file really went through this cgroup, so the limit was hit and the
        # kernel reclaimed page cache instead of killing.
        assert 64 * MIB < int(peak_file.read_text().split()[0]) <= limit


def test_detect_removes_stale_manager_dirs(
    manager: CgroupManager, children: list[subprocess.Popen[bytes]]
) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait(timeout=10)
    assert dead(gone.pid)
    stale = os.path.join(manager.root, f"isolator-{gone.pid}")
    os.mkdir(stale)
    leftover = CgroupSlot(os.path.join(stale, "slot-0"), manager.version)
    os.mkdir(leftover.path)
    orphan = spawn(children, leftover.procs_file, "time.sleep(120)\n")
    end = time.monotonic() + 10
    while leftover.pids() != [orphan.pid]:
        assert time.monotonic() < end, "orphan never attached to the stale slot"
        time.sleep(0.01)

    again = CgroupManager.detect()
    assert again is not None
    try:
        assert not os.path.exists(stale)
        assert orphan.wait(timeout=5) == -9
    finally:
        again.close()
