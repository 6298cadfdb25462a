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
                       | ("zygote",)   fds: our end of the zygote's socket to us
    warden -> engine   ("ready", pid), once
    zygote -> warden   a CHILD_NOTICE (``_wire.spec``): pid, limit, soft, base_rss of a
                       capped child, as it is forked

The zygote tells of each capped child as it forks it, so that the cap holds from the
task's first instruction: the engine's own "watch" comes when the engine thread has read
the child's HELLO, and that thread shares the caller's GIL (a caller thread sorting a
big list held it up while a task grew to 992 MiB under a 256 MB cap). The engine's
watch then adopts the zygote's, with the slot and the base the child read itself. The
zygote's socket can only start watches: a watch that exists is never changed through it.

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

from .._wire import frames
from .._wire import platform as _platform
from .._wire.spec import CHILD_NOTICE
from . import slots as _slots
from .sampling import Sampler, Watch

MAX_MESSAGE = 1 << 16
NICE = -5  # ahead of the tasks it watches, where it may (root or CAP_SYS_NICE)
PROVISIONAL_FOR = 60.0  # seconds a watch the engine never adopted is kept for a dead child


class Warden:
    def __init__(self, sock: socket.socket, table: _slots.Slots) -> None:
        self.sock = sock
        self.zygote: socket.socket | None = None
        self.sampler = Sampler(self.publish_one)
        self.table = table
        self.slots: dict[int, tuple[int, int]] = {}  # pid -> (slot, generation)
        self.provisional: set[int] = set()  # watches the zygote started, not yet adopted

    def serve(self) -> None:
        """Until the engine's end closes: a round of samples whenever one is due,
        requests as they come in between."""
        due: float | None = None  # when the next round is (None: nothing to watch)
        while True:
            wait = None if due is None else max(due - time.monotonic(), 0.0)
            sockets = [self.sock] if self.zygote is None else [self.sock, self.zygote]
            readable, _, _ = select.select(sockets, [], [], wait)
            if self.zygote is not None and self.zygote in readable:
                self.hear_zygote()
            if self.sock in readable and not self.handle_requests():
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

    def hear_zygote(self) -> None:
        """The capped children the zygote has forked since we last looked."""
        assert self.zygote is not None
        while True:
            try:
                data = self.zygote.recv(MAX_MESSAGE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:  # the zygote is gone; a new one's socket comes from the engine
                self.zygote.close()
                self.zygote = None
                return
            if len(data) != CHILD_NOTICE.size:
                continue
            pid, limit, soft, base = CHILD_NOTICE.unpack(data)
            if pid > 0 and pid not in self.sampler.watches:
                self.sampler.watch(Watch(pid, limit, soft or None, hello_rss=base))
                self.provisional.add(pid)

    def take_orders(self) -> None:
        """What the engine wrote in the slots since the last round: a reused worker's
        next task (a new generation, with its limits), an outcome that has arrived."""
        now = time.monotonic()
        for pid in list(self.provisional):  # a child that died before its HELLO
            watch = self.sampler.watches[pid]
            if now - watch.started > PROVISIONAL_FOR and not _alive(pid):
                self.provisional.discard(pid)
                self.sampler.unwatch(pid)
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
                data, fds = frames.recv_fds(self.sock, MAX_MESSAGE, 1, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            if not data:
                return False
            request = pickle.loads(data)
            if request[0] == "zygote":
                if self.zygote is not None:
                    self.zygote.close()
                self.zygote = socket.socket(fileno=fds[0])
                continue
            for fd in fds:  # no other request carries one
                os.close(fd)
            answer = self.handle(request)
            if answer is not None:
                self.sock.send(pickle.dumps(answer))

    def handle(self, request: tuple[Any, ...]) -> tuple[Any, ...] | None:
        kind, *rest = request
        watches = self.sampler.watches
        if kind == "watch":
            pid, slot, generation, limit, soft, hello_rss = rest
            self.slots[pid] = (slot, generation)
            watch = watches.get(pid)
            if pid in self.provisional and watch is not None:  # the zygote's: adopted
                self.provisional.discard(pid)
                watch.limit, watch.soft, watch.hello_rss = limit, soft, hello_rss
            else:
                watch = Watch(pid, limit, soft, hello_rss=hello_rss)
                self.sampler.watch(watch)
            self.publish_one(watch)
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
            self.provisional.discard(pid)
            if pid in watches:  # what is left of the tree: setsid() escapees
                watches[pid].kill(signal.SIGKILL)
            gone = self.sampler.unwatch(pid)
            return _facts(gone, True) if answer else None
        return None

    def kill_everything(self) -> None:
        for watch in list(self.sampler.watches.values()):
            watch.kill(signal.SIGKILL)
            self.sampler.unwatch(watch.pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's: it exists
        return True
    return True


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
