"""The warden on its own: the slots it shares with the engine, and a real warden
watching real processes through the link, with and without a slot."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from isolator._engine.warden_link import WardenLink
from isolator._warden import slots as _slots

MiB = 1 << 20
# It ignores the soft limit's signal, should one come (a task's child raises at it), and
# grows once it reads a line.
GROW = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGRTMIN + 3, signal.SIG_IGN)\n"
    "sys.stdin.readline()\n"
    "hold = []\n"
    "for _ in range({mib}):\n"
    "    hold.append(bytearray(b'1') * {MiB})\n"
    "    time.sleep(0.002)\n"
    "time.sleep(60)\n"
)


def _pair() -> tuple[_slots.Slots, _slots.Slots]:
    fd = _slots.create()
    return _slots.Slots(os.dup(fd)), _slots.Slots(fd)


def test_a_slot_gives_the_facts_of_its_generation_only() -> None:
    warden, engine = _pair()
    try:
        assert engine.read(3, 7) is None  # nothing written yet
        warden.write(3, 7, 100 * MiB, 90 * MiB, True, False)
        assert engine.read(3, 7) == (100 * MiB, 90 * MiB, True, False)
        assert engine.read(3, 8) is None  # the next task's facts are not these
        assert engine.read(4, 7) is None  # nor another slot's
        warden.write(3, 8, 5, 4, False, True)
        assert engine.read(3, 8) == (5, 4, False, True)
    finally:
        warden.close()
        engine.close()


def test_the_engines_half_carries_the_next_task_and_its_limits() -> None:
    warden, engine = _pair()
    try:
        engine.start(9, 12, 256 * MiB, None)
        assert warden.orders(9) == (12, 0, 256 * MiB, None)
        engine.settle(9, 12)
        engine.start(9, 13, None, None)
        assert warden.orders(9) == (13, 12, None, None)
        engine.start(9, (1 << 32) + 5, 64 * MiB, 32 * MiB)  # generations wrap, as slots do
        assert warden.orders(9)[0] == 5
        warden.write(9, (1 << 32) + 5, 1, 1, False, False)
        assert engine.read(9, (1 << 32) + 5) == (1, 1, False, False)
    finally:
        warden.close()
        engine.close()


@pytest.fixture()
def link() -> Iterator[WardenLink]:
    link = WardenLink()
    link.spawn()
    link.ready()
    try:
        yield link
    finally:
        link.close()
        link.wait()


@contextlib.contextmanager
def _growing(mib: int) -> Iterator[subprocess.Popen[bytes]]:
    """A process that grows ``mib`` MiB once ``_go`` says so; killed and reaped after."""
    child = subprocess.Popen([sys.executable, "-c", GROW.format(mib=mib, MiB=MiB)],
                             stdin=subprocess.PIPE, start_new_session=True)
    try:
        yield child
    finally:
        child.kill()
        child.wait()
        if child.stdin is not None:
            child.stdin.close()


def _go(child: subprocess.Popen[bytes]) -> None:
    assert child.stdin is not None
    child.stdin.write(b"go\n")
    child.stdin.close()


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        fields = dict(line.split(":", 1) for line in fh)
    return sum(int(fields[k].split()[0]) * 1024 for k in ("RssAnon", "RssShmem"))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("with_slot", [True, False])
def test_a_tree_past_its_cap_is_killed_and_its_end_says_so(link: WardenLink,
                                                           with_slot: bool) -> None:
    if not with_slot:
        link._free.clear()  # every slot taken: the watch goes by messages alone
    with _growing(400) as child:
        view = link.watch(child.pid, 64 * MiB, None, _rss(child.pid))
        _go(child)
        assert (view.slot >= 0) is with_slot
        status = child.wait(30)
        assert status == -signal.SIGKILL
        if with_slot:
            # Written before the kill: what the slot says when the death is seen is final.
            link.settle(view)
            assert view.killed and view.peak >= 64 * MiB
        link.unwatch(view, ask=True)
        assert view.killed and not view.soft_sent and view.peak >= 64 * MiB
        # (its last sample may be of the dead process: 0, which reports leave out)
        assert max(level for _, level in view.timeline) >= 64 * MiB


@pytest.mark.timeout(60)
@pytest.mark.parametrize("with_slot", [True, False])
def test_a_reset_gives_the_next_task_its_own_peak_and_cap(link: WardenLink,
                                                          with_slot: bool) -> None:
    if not with_slot:
        link._free.clear()
    with _growing(40) as child:
        view = link.watch(child.pid, 1024 * MiB, None, _rss(child.pid))
        _go(child)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the first task: it grows to about 40 MiB
            link.settle(view, timeline=not with_slot)
            if view.peak >= 30 * MiB:
                break
            view.settled = False
            time.sleep(0.05)
        assert view.peak >= 30 * MiB and not view.killed
        link.reset(view, 16 * MiB, None)  # the next task may hold only 16 MiB: it holds 40
        assert child.wait(10) == -signal.SIGKILL
        link.unwatch(view, ask=True)
        assert view.killed


@pytest.mark.timeout(60)
def test_requests_to_a_stopped_warden_never_block_the_engine(link: WardenLink) -> None:
    # A task can SIGSTOP the warden; the engine goes on sending it requests until its
    # heartbeat check notices. Filling the socket must break the link, not block.
    assert link.pid is not None
    os.kill(link.pid, signal.SIGSTOP)
    try:
        for pid in range(1_000_000, 1_200_000):
            link.send(("kill", pid, 0))
            if link.broken:
                break
        assert link.broken
    finally:
        link.kill()
