"""The zygote: a small, clean, single-threaded process that forks every task child.

It is a fresh interpreter started by the engine, not a fork of the caller, so a child forked
from it costs about a millisecond whatever the caller holds, and no copy-on-write page of
a big caller counts against the child's cap. It imports modules on request
(``warm``) so that children start with them loaded.

It keeps one spare child forked ahead of time, waiting for its task's file descriptors,
so the fork (the largest part of a call's cost) happens while the previous task runs.
A spare that predates a module import or a sys.path change is dropped, not used.

It is a subreaper: descendants whose parent died come back to it instead of init. It
dies with the engine (PDEATHSIG, and EOF on its control socket as the fallback), and
on its way out it kills every descendant it has, ``setsid()`` escapees included.

Control messages are pickled tuples on a SOCK_SEQPACKET socket (one message per packet,
file descriptors passed alongside with SCM_RIGHTS)::

    engine -> zygote       ("fork", task_id, ChildSpec, warm, sys_path, world)
                           fds: sock, out, err (sys_path, world: None unless changed)
                           | ("kill", task_id)   (a child that never said HELLO)
                           | ("warm", modules, cap)   (import them for the next children)
                           | ("ping",)   (a child did not start in time: do we serve?)
                           | ("warden",)   fds: our socket to the warden
    zygote -> engine       ("ready", pid) | ("exited", task_id, pid, wait_status)
                           | ("failed", task_id, message)
                           | ("preloaded", [module, ...], {refused module: why})
                           | ("pong",)

The child's pid reaches the engine in the child's own HELLO, not from here: the
engine starts watching a child when its HELLO arrives, within a fraction of the
sampler's first interval.
"""

from __future__ import annotations

import gc
import os
import pickle
import select
import signal
import socket
import sys
import time
from typing import Any

from .._wire import frames, world
from .._wire import platform as _platform
from .._wire.procfs import StatusReader, descendants
from .._wire.spec import CHILD_NOTICE
from . import child as _child
from . import forensics_hook as _child_forensics
from .preload import Preloader

MAX_MESSAGE = 1 << 20
REAP_WITHIN = 1.0  # seconds the exiting zygote waits for the children it has just killed


class _Zygote:
    def __init__(self, ctrl: socket.socket, wake_r: int, wake_w: int) -> None:
        self.ctrl = ctrl
        self.wake = (wake_r, wake_w)
        self.tasks: dict[int, int] = {}  # child pid -> task id
        self.preloader = Preloader()
        self._children_fd = -1
        self.spare: tuple[int, socket.socket] | None = None
        self.baseline_stale = True
        # To the warden: each capped child, as it is forked (see tell_warden).
        self.warden: socket.socket | None = None
        self.own = StatusReader(os.getpid())

    def send(self, *message: Any) -> None:
        self.ctrl.send(pickle.dumps(message))

    def serve(self) -> None:
        global _serving
        poller = select.poll()
        poller.register(self.ctrl, select.POLLIN)
        poller.register(self.wake[0], select.POLLIN)
        while True:
            for fd, _ in poller.poll():
                if fd == self.wake[0]:
                    os.read(fd, 4096)
                    self.reap()
                elif not self.handle_request():
                    _serving = False  # EOF: the caller is gone; see _exit_on_term
                    return

    def handle_request(self) -> bool:
        # Close-on-exec from the moment they exist: a program a task execs must not
        # inherit its socket (or anything else of ours) and speak our protocol.
        data, fds = frames.recv_fds(self.ctrl, MAX_MESSAGE, 3)
        if not data:
            return False
        request = pickle.loads(data)
        if request[0] == "ping":  # the engine asks whether we still serve
            self.send("pong")
            return True
        if request[0] == "warden":  # our socket to a (new) warden
            if self.warden is not None:
                self.warden.close()
            self.warden = socket.socket(fileno=fds[0])
            return True
        if request[0] == "kill":
            for pid, task_id in self.tasks.items():
                if task_id == request[1]:
                    _killpg(pid)
            return True
        if request[0] == "warm":  # what the children of a function imported: for the next
            if self.warm_up(request[1], request[2]):
                self.drop_spare()  # forked without it
                self.baseline_stale = True
            self.make_spare()
            return True
        _, task_id, spec, warm, sys_path, changed = request
        try:
            if changed is not None:  # the caller's environment, umask, argv or limits
                world.apply(changed)
                self.drop_spare()  # it was forked into the world as it was
            if sys_path is not None:
                sys.path[:] = sys_path
            if self.warm_up(warm, spec.limit) or sys_path is not None:
                self.drop_spare()  # it was forked without what this task needs
                self.baseline_stale = True
            if spec.forensics != "off" and self.baseline_stale:
                self.drop_spare()
                _child_forensics.take_baseline()
                self.baseline_stale = False
                # The count's scratch (a list of every object, counters) is freed but its
                # pages stay with malloc: given back, they are not in every child forked next.
                _platform.malloc_trim()
            pid = self.hand_to_spare(spec, fds) or self.fork_child(spec, fds)
            self.tell_warden(pid, spec)
            try:
                os.setpgid(pid, pid)
            except OSError:  # the child did it first, or is gone already
                pass
            self.tasks[pid] = task_id
        except Exception as exc:  # noqa: BLE001 - a failed fork fails one task, not the zygote
            self.send("failed", task_id, f"{type(exc).__name__}: {exc}")
        finally:
            for fd in fds:
                os.close(fd)
        self.make_spare()  # forks while the task runs, off the next call's path
        return True

    def tell_warden(self, pid: int, spec: Any) -> None:
        """A capped child is starting its task: the warden watches it from now, not
        from when the engine has read its HELLO (the engine's thread shares the
        caller's GIL). Its base is our RSS, which it shares; the engine's watch then
        brings the one the child read itself."""
        if self.warden is None or spec.limit is None:
            return
        notice = CHILD_NOTICE.pack(pid, spec.limit, spec.soft or 0, self.own.rss())
        try:
            self.warden.send(notice, socket.MSG_DONTWAIT)
        except OSError:  # gone or full: the engine's watch comes with the HELLO anyway
            pass

    def fork_child(self, spec: Any, fds: list[int]) -> int:
        me = os.getpid()
        _child.note_modules()
        gc.freeze()  # the child's collector then never touches (and copies) our objects
        pid = os.fork()
        if pid == 0:
            _child.main(spec, fds, self.inherited(), me)
        return pid

    def inherited(self) -> list[int]:
        """Our fds a child must close first: none of them is the task's."""
        extra = [self.spare[1].fileno()] if self.spare is not None else []
        if self._children_fd >= 0:
            extra.append(self._children_fd)
        if self.warden is not None:  # a task must not speak to the warden
            extra.append(self.warden.fileno())
        extra.append(self.own.fileno())
        return [self.ctrl.fileno(), *self.wake, *extra]

    def make_spare(self) -> None:
        """Fork the next task's child ahead of time; it waits for its task's fds."""
        if self.spare is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        me = os.getpid()
        _child.note_modules()
        gc.freeze()
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            return
        if pid == 0:
            ours.close()
            _child.spare_main(theirs, self.inherited(), me)
        theirs.close()
        self.spare = (pid, ours)

    def hand_to_spare(self, spec: Any, fds: list[int]) -> int | None:
        if self.spare is None:
            return None
        pid, channel = self.spare
        self.spare = None
        try:
            socket.send_fds(channel, [pickle.dumps(spec)], fds)
        except OSError:  # the spare died: fork a fresh child instead
            return None
        finally:
            channel.close()
        return pid

    def drop_spare(self) -> None:
        if self.spare is not None:
            self.spare[1].close()  # EOF: the spare exits by itself; reap() collects it
            self.spare = None

    def warm_up(self, modules: tuple[str, ...], cap: int | None) -> bool:
        """Import what children will need (what is safe to); True when anything new was
        imported. The engine hears what was loaded and refused, and why."""
        if not modules:
            return False
        loaded, refused = self.preloader.warm(modules, cap)
        if loaded or refused:
            self.send("preloaded", loaded, refused)
        return bool(loaded)

    def reap(self) -> None:
        reaped = False
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                break
            if info is None:
                break
            pid = info.si_pid
            if pid in self.tasks:
                # While the child is an unreaped zombie its pid (= its group id) cannot be
                # reused, so killing the group here cannot hit a stranger.
                _killpg(pid)
            _, status = os.waitpid(pid, 0)
            reaped = True
            task_id = self.tasks.pop(pid, None)
            if task_id is not None:
                self.send("exited", task_id, pid, status)
        if reaped:
            self.kill_orphans()  # what a dead task (or a dead orphan) left, handed to us

    def kill_orphans(self) -> None:
        """Kill any child of ours that is neither a task nor the spare: an orphan whose
        task child died before it could end it (a task child is its descendants'
        subreaper, so orphans reach us only from a dead task). Its death wakes us, and
        the next rescan takes what it leaves."""
        spare = self.spare[0] if self.spare is not None else None
        for pid in self.children():
            if pid not in self.tasks and pid != spare:
                _kill(pid)

    def children(self) -> list[int]:
        """Our children now: one pread of our (only) thread's list, kept open."""
        if self._children_fd < 0:
            me = os.getpid()
            self._children_fd = os.open(f"/proc/{me}/task/{me}/children",
                                        os.O_RDONLY | os.O_CLOEXEC)
        return [int(pid) for pid in os.pread(self._children_fd, 1 << 16, 0).split()]

    def kill_everything(self) -> None:
        """Kill, reap and rescan until no process of ours is left (up to REAP_WITHIN):
        a descendant being handed to us as its parent dies is found by the next round,
        and what we leave unreaped would be init's zombie for seconds."""
        self.drop_spare()
        end = time.monotonic() + REAP_WITHIN
        poller = select.poll()
        poller.register(self.wake[0], select.POLLIN)  # SIGCHLD writes here
        while True:
            for pid in self.tasks:
                _killpg(pid)
            for pid in descendants(os.getpid()):
                _kill(pid)
            try:
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            except ChildProcessError:  # none left
                return
            left = end - time.monotonic()
            if left <= 0:
                return
            if poller.poll(min(left, 0.01) * 1000):
                try:
                    os.read(self.wake[0], 4096)
                except BlockingIOError:
                    pass


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


_serving = True  # until the caller is gone: from then on, SIGTERM changes nothing


def _exit_on_term(signum: int, frame: object) -> None:
    # When the caller dies, the EOF on our socket and the parent-death SIGTERM come
    # together. Whichever comes first ends the serving; the second must not cut the
    # killing short halfway (a SystemExit raised in it once let a setsid grandchild run on).
    global _serving
    if _serving:
        _serving = False
        raise SystemExit(0)


def main() -> None:
    """``python -c 'from isolator._child.zygote import main; main()' CTRL_FD PARENT_PID``."""
    ctrl_fd, parent = int(sys.argv[1]), int(sys.argv[2])
    os.set_inheritable(ctrl_fd, False)  # it was passed to us; no program of ours gets it
    _platform.set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:
        return
    _platform.set_child_subreaper()
    _platform.set_process_name(b"isolator-zygote")
    _platform.limit_malloc_arenas()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    signal.signal(signal.SIGTERM, _exit_on_term)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    zygote = _Zygote(socket.socket(fileno=ctrl_fd), wake_r, wake_w)
    try:
        zygote.send("ready", os.getpid())
        zygote.serve()
    except (SystemExit, OSError):
        pass
    finally:
        global _serving
        _serving = False
        zygote.kill_everything()
