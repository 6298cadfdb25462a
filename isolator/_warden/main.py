"""The warden's loop: sample when due, answer the engine in between.

Requests and answers are pickled tuples on a SOCK_SEQPACKET socket, one per packet.
Only the requests marked ``->`` are answered, in the order they came; the engine waits
for each answer, so at most one is outstanding::

    engine -> warden   ("watch", pid, slot, generation, limit, soft, hello_rss)
                       | ("reset", pid, generation, limit, soft)  (a child without a slot)
                       | ("kill", pid, signum)             (the tree, setsid escapees too)
                       | ("settle", pid, timeline?)   ->   ("facts", (peak, last, soft_sent,
                                                            killed, timeline or None) or None)
                       | ("unwatch", pid, answer?)       (and kill what is left of the tree)
                                       -> if answer?: ("facts", ..., timeline)
    warden -> engine   ("ready", pid), once

A reused worker's next task and each task's outcome go through the watch's slot in a
page both processes map (``slots``), not through messages: a message each way per task
cost a reused worker about half its tasks per second. The engine asks only for a
breach's timeline and for the final facts of a child that died with its task unfinished
(the warden writes a kill at the cap into the slot before it kills, so what the slot says
when the child's death is seen is final).

When the engine's end closes (the caller exited or stopped its engine), the warden
kills every tree it still watches and exits; the parent-death signal covers a caller
that is killed outright.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import sys
import time
from typing import Any

from .._wire import platform as _platform
from . import slots as _slots
from .sampling import Sampler, Watch

MAX_MESSAGE = 1 << 16
NICE = -5  # ahead of the tasks it watches, where it may (root or CAP_SYS_NICE)


class Warden:
    def __init__(self, sock: socket.socket, table: _slots.Slots) -> None:
        self.sock = sock
        self.sampler = Sampler(self.publish_one)
        self.table = table
        self.slots: dict[int, tuple[int, int]] = {}  # pid -> (slot, generation)

    def serve(self) -> None:
        """Until the engine's end closes: a round of samples whenever one is due,
        requests as they come in between."""
        due: float | None = None  # when the next round is (None: nothing to watch)
        while True:
            wait = None if due is None else max(due - time.monotonic(), 0.0)
            readable, _, _ = select.select([self.sock], [], [], wait)
            if readable and not self.handle_requests():
                return
            now = time.monotonic()
            if self.sampler.watches and (due is None or now >= due):
                self.take_orders()
                interval = self.sampler.round()
                self.publish()
                self.table.beat()
                due = None if interval is None else now + interval
            elif not self.sampler.watches:
                due = None

    def take_orders(self) -> None:
        """What the engine wrote in the slots since the last round: a reused worker's
        next task (a new generation, with its limits), an outcome that has arrived."""
        for pid, watch in self.sampler.watches.items():
            slot, generation = self.slots.get(pid, (-1, 0))
            if slot < 0:
                continue
            ordered, settled, limit, soft = self.table.orders(slot)
            if ordered != generation & 0xFFFFFFFF:
                watch.reset(limit, soft)
                self.slots[pid] = (slot, generation := ordered)
            if settled == generation & 0xFFFFFFFF:
                watch.settled = True  # no second soft signal for a task that has ended

    def publish(self) -> None:
        for watch in self.sampler.watches.values():
            self.publish_one(watch)

    def publish_one(self, watch: Watch) -> None:
        slot, generation = self.slots.get(watch.pid, (-1, 0))
        if slot >= 0:
            self.table.write(slot, generation, watch.peak, watch.last, watch.soft_sent,
                             watch.killed)

    def handle_requests(self) -> bool:
        """Every request that has arrived; False at EOF."""
        while True:
            try:
                data = self.sock.recv(MAX_MESSAGE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            if not data:
                return False
            answer = self.handle(pickle.loads(data))
            if answer is not None:
                self.sock.send(pickle.dumps(answer))

    def handle(self, request: tuple[Any, ...]) -> tuple[Any, ...] | None:
        kind, *rest = request
        watches = self.sampler.watches
        if kind == "watch":
            pid, slot, generation, limit, soft, hello_rss = rest
            self.slots[pid] = (slot, generation)
            watch = Watch(pid, limit, soft, hello_rss=hello_rss)
            self.sampler.watch(watch)
            if slot >= 0:
                self.table.write(slot, generation, watch.peak, watch.last, watch.soft_sent,
                                 watch.killed)
        elif kind == "reset":  # a child without a slot; the others' resets are in theirs
            pid, generation, limit, soft = rest
            if pid in watches:
                watches[pid].reset(limit, soft)
                self.slots[pid] = (-1, generation)
        elif kind == "kill":
            pid, signum = rest
            if pid in watches:
                watches[pid].kill(signum)
        elif kind == "settle":
            pid, with_timeline = rest
            settled = watches.get(pid)
            if settled is not None:
                settled.settled = True  # no second soft signal for a task that has ended
            return _facts(settled, with_timeline)
        elif kind == "unwatch":
            pid, answer = rest
            self.slots.pop(pid, None)
            if pid in watches:  # what is left of the tree: setsid() escapees
                watches[pid].kill(signal.SIGKILL)
            gone = self.sampler.unwatch(pid)
            return _facts(gone, True) if answer else None
        return None

    def kill_everything(self) -> None:
        for watch in list(self.sampler.watches.values()):
            watch.kill(signal.SIGKILL)
            self.sampler.unwatch(watch.pid)


def _facts(watch: Watch | None, with_timeline: bool) -> tuple[Any, ...]:
    if watch is None:  # never watched, or already unwatched: the engine keeps what it had
        return ("facts", None)
    return ("facts", (watch.peak, watch.last, watch.soft_sent, watch.killed,
                      list(watch.timeline) if with_timeline else None))


def main() -> None:
    """``python -c '...main()' SOCK_FD SLOTS_FD PARENT_PID``."""
    fd, slots_fd, parent = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    os.set_inheritable(fd, False)
    table = _slots.Slots(slots_fd)
    _platform.set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:
        return
    _platform.set_process_name(b"isolator-warden")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    with contextlib.suppress(OSError):
        os.nice(NICE)
    warden = Warden(socket.socket(fileno=fd), table)
    try:
        warden.sock.send(pickle.dumps(("ready", os.getpid())))
        warden.serve()
    except (SystemExit, OSError):
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the kill below must not be cut short
        warden.kill_everything()
