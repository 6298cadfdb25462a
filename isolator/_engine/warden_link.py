"""The engine's end of its warden: start it, hand it watches, read and ask for facts.

The warden (``isolator._warden``) is the process that samples every child's tree and
enforces its cap; the engine thread alone talks to it (see ``isolator._warden.main``
for the messages). A ``WatchView`` is what the engine knows of one child's watch. At a
task's outcome its facts (peak, soft signal sent) are read from the watch's slot in a
page both processes map, without a round trip; a breach's timeline and a dead child's
final facts are asked for, so a child's end is judged (killed at the cap or not) on
everything the warden had seen before the child died.
"""

from __future__ import annotations

import array
import itertools
import os
import pickle
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from .._errors import WorkerStartupError
from .._warden import slots as _slots
from . import helpers

_CODE = (
    "import sys; sys.path.insert(0, sys.argv.pop(4)); "
    "from isolator._warden.main import main; main()"
)
_ANSWER_WITHIN = 10.0  # seconds; a warden slower than that is taken for lost
_START_WITHIN = 30.0  # seconds for its "ready", as for the zygote's
_EXIT_WITHIN = 5.0  # seconds for it to exit once closed
# Seconds without a round of samples, while it watches children, after which the warden
# is taken for lost. Its rounds come every 10 ms (50 ms without a cap); a round of a
# tree of many big processes can take a few hundred ms.
STALE = 1.0
_RECV = 1 << 20
_SEND_BUFFER = 4 << 20


def _killpg(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except OSError:  # gone already
        pass


class WardenLost(Exception):
    """The warden is gone or stopped answering: no child's cap is enforced."""


@dataclass
class WatchView:
    """One child's watch as the engine sees it."""

    pid: int
    link: WardenLink
    slot: int = -1  # its slot in the shared page (-1: none was free; it is asked instead)
    generation: int = 0  # of the task whose facts the slot must carry
    peak: int = 0
    killed: bool = False  # the warden killed its tree at the cap
    soft_sent: bool = False
    settled: bool = False  # the current task's facts were asked for
    closed: bool = False
    timeline: list[tuple[float, int]] = field(default_factory=list)
    _last: int = 0

    @property
    def last(self) -> int:
        """The tree's memory at the warden's latest round (read from its slot)."""
        if not self.closed:
            self.link.read(self)
        return self._last

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Signal the child's group now, and through the warden every process it has
        seen in the tree (``setsid()`` escapees too)."""
        _killpg(self.pid, signum)
        if not self.closed:
            self.link.send(("kill", self.pid, signum))


class WardenLink:
    """One warden at a time; ``spawn`` again after it was lost gives a new one."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.views: dict[int, WatchView] = {}
        self.broken = False  # gone, or did not answer: the engine starts another
        self._table: _slots.Slots | None = None
        self._free: list[int] = []
        self._generations = itertools.count(1)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def spawn(self) -> None:
        """Start a warden; ``ready`` waits for it (start the zygote in between)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Room for thousands of requests: only a warden that stopped reading fills it.
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
        table = _slots.create()
        try:
            # Its own process group: a terminal's Ctrl-Z (SIGTSTP to the caller's group)
            # stops the caller, not the children's caps.
            self._process = helpers.start(_CODE, [theirs.fileno(), table], own_group=True)
        finally:
            theirs.close()
            self._table = _slots.Slots(table)  # it closes the fd: the mapping is enough
        self.sock = ours
        self.broken = False
        self._free = list(range(_slots.COUNT - 2, -1, -1))  # the last is the heartbeat
        self._watched_at = 0.0

    def ready(self) -> socket.socket:
        """Wait for the warden's "ready"; the socket to watch for its loss."""
        try:
            if self._receive(_START_WITHIN)[0] != "ready":
                raise WardenLost("the warden did not say it was ready")
        except (WardenLost, pickle.UnpicklingError) as exc:
            self.close()
            self.kill()
            self.wait()
            raise WorkerStartupError(f"isolator's warden did not start: {exc}") from exc
        assert self.sock is not None
        return self.sock

    # -- watches (engine thread) -----------------------------------------------------------

    def watch(self, pid: int, limit: int | None, soft: int | None, hello_rss: int) -> WatchView:
        self._watched_at = time.monotonic()  # its first round is due now
        slot = self._free.pop() if self._free else -1
        view = self.views[pid] = WatchView(pid, self, slot, next(self._generations))
        if slot >= 0 and self._table is not None:
            self._table.start(slot, view.generation, limit, soft)
        self.send(("watch", pid, slot, view.generation, limit, soft, hello_rss))
        return view

    def reset(self, view: WatchView, limit: int | None, soft: int | None) -> None:
        """A reused worker starts its next task: a fresh peak, timeline and soft signal."""
        view.peak, view.killed, view.soft_sent, view.settled = 0, False, False, False
        view.timeline = []
        view.generation = next(self._generations)
        if view.closed:
            return
        if view.slot >= 0 and self._table is not None:
            # Taken at the warden's next round (within 10 ms, sooner near a cap): until
            # then the previous task's limits hold, and its samples count for it.
            self._table.start(view.slot, view.generation, limit, soft)
        else:
            self.send(("reset", view.pid, view.generation, limit, soft))

    def settle(self, view: WatchView, timeline: bool = False) -> None:
        """The current task's outcome is known: its peak, whether its soft signal was
        sent (and its timeline, for a breach report), and no second soft signal."""
        if view.closed or (view.settled and not timeline):
            return
        view.settled = True
        if view.slot >= 0 and self._table is not None:
            self._table.settle(view.slot, view.generation)
            if not timeline:
                # Not yet this task's in the slot: the task ended before the warden's
                # next round took it, so no sample of it was taken (peak 0, as a task
                # shorter than one interval had with a sampler in the caller's process).
                self.read(view)
                return
        self._facts(view, self.ask(("settle", view.pid, timeline)))

    def unwatch(self, view: WatchView, ask: bool) -> None:
        """The child is gone (or is to go): what is left of its tree is killed, and the
        warden forgets it. ``ask``: its task had not ended, so its end is judged on the
        facts, which the warden then gives in full (its slot says a kill at the cap
        already, written before the kill; the timeline too)."""
        if view.closed:
            return
        _killpg(view.pid, signal.SIGKILL)  # the warden kills the escapees it has seen
        self.views.pop(view.pid, None)
        try:
            if ask:
                self._facts(view, self.ask(("unwatch", view.pid, True)))
            else:
                self.read(view)
                self.send(("unwatch", view.pid, False))
        finally:
            view.closed = True
            if view.slot >= 0 and not self.broken:
                self._free.append(view.slot)

    def read(self, view: WatchView) -> bool:
        """The view's facts from its slot; False if the slot is not this task's yet."""
        if view.slot < 0 or self._table is None:
            return False
        facts = self._table.read(view.slot, view.generation)
        if facts is None:
            return False
        view.peak, view._last, view.soft_sent, view.killed = facts
        return True

    def stale(self, now: float) -> bool:
        """The warden watches children but has taken no round for ``STALE`` seconds:
        it is stopped (a task running as the same user can send it SIGSTOP) or hung."""
        if self._table is None or not self.views or self.broken:
            return False
        return now - max(self._table.last_beat(), self._watched_at) > STALE

    def kill(self) -> None:
        """SIGKILL the warden (it dies even if stopped); ``close`` and ``wait`` then."""
        helpers.kill(self._process)

    # -- the socket -----------------------------------------------------------------------

    def send(self, message: tuple[Any, ...]) -> None:
        """Send a request; a warden found gone makes the link ``broken``, not an error
        here: the engine checks ``broken`` once per round and deals with it there.
        Never blocks: a warden that has not read thousands of requests is stopped or
        hung, and the engine thread must not wait for it."""
        if self.sock is None or self.broken:
            return
        try:
            self.sock.send(pickle.dumps(message), socket.MSG_DONTWAIT)
        except OSError:  # BlockingIOError too: see above
            self._lose()

    def send_fd(self, message: tuple[Any, ...], fd: int) -> None:
        """Send a request with a file descriptor (the warden's end of the zygote's
        socket to it)."""
        if self.sock is None or self.broken:
            return
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
        try:  # (the stdlib's send_fds drops its flags on this Python)
            self.sock.sendmsg([pickle.dumps(message)], rights, socket.MSG_DONTWAIT)
        except OSError:
            self._lose()

    def ask(self, message: tuple[Any, ...]) -> Any:
        """The answer to a request, or None once the link is broken."""
        self.send(message)
        if self.broken:
            return None
        try:
            return self._receive()
        except WardenLost:
            self._lose()
            return None

    def _lose(self) -> None:
        self.broken = True
        for view in self.views.values():  # they keep the facts they had
            view.closed = True
        self.views.clear()

    def _receive(self, within: float = _ANSWER_WITHIN) -> Any:
        if self.sock is None:
            raise WardenLost("the warden is not running")
        self.sock.settimeout(within)
        try:
            data = self.sock.recv(_RECV)
        except OSError as exc:  # the timeout too: a warden that does not answer is lost
            raise WardenLost(f"the warden did not answer ({exc or type(exc).__name__})") from exc
        finally:
            self.sock.settimeout(None)
        if not data:
            raise WardenLost("the warden exited")
        return pickle.loads(data)

    @staticmethod
    def _facts(view: WatchView, answer: tuple[Any, ...] | None) -> None:
        facts = answer[1] if answer is not None else None
        if facts is None:
            return
        peak, last, soft_sent, killed, timeline = facts
        view.peak, view._last = peak, last
        view.soft_sent, view.killed = soft_sent, killed
        if timeline is not None:
            view.timeline = timeline

    def close(self) -> None:
        """Close our end: the warden kills what it still watches and exits."""
        sock, self.sock = self.sock, None
        for view in self.views.values():
            view.closed = True
        self.views.clear()
        if sock is not None:
            sock.close()
        if self._table is not None:
            self._table.close()
            self._table = None

    def wait(self) -> None:
        """Reap the warden after ``close``."""
        helpers.reap(self._process, _EXIT_WITHIN)
