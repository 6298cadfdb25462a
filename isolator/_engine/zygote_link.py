"""The engine's end of its zygote: start it, send it requests, read its reports.

The zygote is a fresh interpreter (``python -c``), not a fork of the caller, so it holds
none of the caller's memory or threads. Requests and reports are pickled tuples on a
SOCK_SEQPACKET socket; the message shapes are listed in ``isolator._child.zygote``.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import sysconfig
import threading
from typing import Any

from .._errors import WorkerStartupError
from .._wire import world
from . import helpers

_CODE = (
    "import sys; sys.path.insert(0, sys.argv.pop(3)); "
    "from isolator._child.zygote import main; main()"
)
_RECV = 1 << 20
_START_WITHIN = 30.0  # seconds for the zygote's "ready"
_EXIT_WITHIN = 3.0  # seconds for it to exit once closed (it kills and reaps first)


class ZygoteLink:
    """One zygote at a time; ``start`` again after it was lost gives a new one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # requests from several threads stay whole and in order
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._sent_path: tuple[str, ...] | None = None
        self._sent_world: world.World | None = None
        self._sent_warm: set[str] = set()  # modules a fork request named to this zygote
        self.up = threading.Event()  # set while a zygote takes requests

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def sock(self) -> socket.socket | None:
        """The socket its reports arrive on, while it is connected."""
        return self._sock

    def start(self) -> socket.socket:
        """Start a zygote and wait for its "ready"; the socket to watch for its reports."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._process = helpers.start(_CODE, [theirs.fileno()])
        theirs.close()
        try:
            ours.settimeout(_START_WITHIN)
            message = ours.recv(_RECV)
            if not message or pickle.loads(message)[0] != "ready":
                raise WorkerStartupError("the zygote exited during start-up")
            ours.settimeout(None)
        except BaseException:
            # A zygote that never said "ready" (or that we stopped waiting for) must not
            # outlive the attempt.
            ours.close()
            helpers.kill(self._process)
            self._process.wait()
            raise
        with self._lock:
            # A new zygote knows nothing of the caller's sys.path, and its world is the
            # caller's as it was when it started: sent again in full with the first fork.
            self._sent_path = None
            self._sent_world = None
            self._sent_warm = set()
            self._sock = ours
        self.up.set()
        return ours

    def send(self, message: tuple[Any, ...], fds: list[int] | None = None) -> None:
        """Send a request (any thread); a fork request carries sys.path when it changed."""
        with self._lock:
            if self._sock is None:
                raise WorkerStartupError("the zygote is not running")
            if message[0] == "fork":  # under the lock, so requests and updates stay in order
                kind, child_id, spec, warm = message
                message = (kind, child_id, spec, self._unasked(warm), self._path_update(),
                           self._world_update())
            elif message[0] == "warm":
                message = ("warm", self._unasked(message[1]), message[2])
                if not message[1]:
                    return
            socket.send_fds(self._sock, [pickle.dumps(message)], fds or [])

    def receive(self) -> tuple[Any, ...] | None:
        """The next report, or None when the zygote is gone."""
        if self._sock is None:
            return None
        data = self._sock.recv(_RECV)
        return pickle.loads(data) if data else None

    def close(self) -> None:
        """Close our end: the zygote kills every child it has and exits."""
        self.up.clear()
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def wait(self) -> None:
        """Reap the zygote after ``close`` (it exits within a second of it; one that
        does not, stopped or hung, is killed: its children die with it)."""
        if self._process is not None:
            helpers.reap(self._process, _EXIT_WITHIN)

    def kill(self) -> None:
        """SIGKILL the zygote (it dies even if stopped; its children die with it)."""
        helpers.kill(self._process)

    def _unasked(self, modules: tuple[str, ...]) -> tuple[str, ...]:
        """The modules this zygote was never asked to import (it remembers the rest)."""
        fresh = tuple(m for m in modules if m not in self._sent_warm)
        self._sent_warm.update(fresh)
        return fresh

    def _world_update(self) -> dict[str, Any] | None:
        now = world.capture()
        changed = world.changes(self._sent_world, now)
        self._sent_world = now
        return changed

    def _path_update(self) -> tuple[str, ...] | None:
        path = tuple(sys.path)
        if path == self._sent_path:
            return None
        self._sent_path = path
        return safe_path(path, os.getcwd(), sys.flags.safe_path)


def safe_path(path: tuple[str, ...], cwd: str, safe: bool) -> tuple[str, ...]:
    """The caller's ``sys.path`` as the zygote gets it: the entry Python put first for the
    script's folder or the working directory (unless the caller itself ran with ``-P``),
    and every relative entry, made absolute and placed after the standard library's
    folders. Children still import the caller's own modules from there, but a file
    planted in a folder the caller merely runs from cannot stand in for a standard
    module the zygote imports later (it imports many after the caller did)."""
    # (not "platstdlib": in a virtual environment that is the venv's lib/, which holds
    # its site-packages)
    stdlib = {os.path.normpath(sysconfig.get_path("stdlib"))}
    kept: list[str] = []
    moved: list[str] = []
    for index, entry in enumerate(path):
        absolute = os.path.normpath(os.path.join(cwd, entry))
        if (index == 0 and not safe) or not os.path.isabs(entry):
            moved.append(absolute)
        else:
            kept.append(entry)
    def of_stdlib(entry: str) -> bool:  # its folder, lib-dynload in it, or the zip
        entry = os.path.normpath(entry)
        return entry.endswith(".zip") or any(
            entry == lib or entry.startswith(lib + os.sep) for lib in stdlib)

    last_stdlib = max((i for i, entry in enumerate(kept) if of_stdlib(entry)),
                      default=len(kept) - 1)
    return (*kept[:last_stdlib + 1], *moved, *kept[last_stdlib + 1:])
