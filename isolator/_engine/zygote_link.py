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
import threading
from typing import Any

from .._errors import WorkerStartupError

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_CODE = (
    "import sys; sys.path.insert(0, sys.argv.pop(3)); "
    "from isolator._child.zygote import main; main()"
)
_RECV = 1 << 20
_START_WITHIN = 30.0  # seconds for the zygote's "ready"


class ZygoteLink:
    """One zygote at a time; ``start`` again after it was lost gives a new one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # requests from several threads stay whole and in order
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._sent_path: tuple[str, ...] | None = None
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
        command = [sys.executable, "-c", _CODE, str(theirs.fileno()), str(os.getpid()),
                   _PACKAGE_PARENT]
        self._process = subprocess.Popen(command, pass_fds=[theirs.fileno()],
                                         stdin=subprocess.DEVNULL)
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
            self._process.kill()
            self._process.wait()
            raise
        with self._lock:
            self._sent_path = None  # a new zygote knows nothing of the caller's sys.path
            self._sock = ours
        self.up.set()
        return ours

    def send(self, message: tuple[Any, ...], fds: list[int] | None = None) -> None:
        """Send a request (any thread); a fork request carries sys.path when it changed."""
        with self._lock:
            if self._sock is None:
                raise WorkerStartupError("the zygote is not running")
            if message[0] == "fork":  # under the lock, so requests and paths stay in order
                message = (*message, self._path_update())
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
        """Reap the zygote after ``close`` (it exits within a second of it)."""
        if self._process is not None:
            self._process.wait()

    def _path_update(self) -> tuple[str, ...] | None:
        path = tuple(sys.path)
        if path == self._sent_path:
            return None
        self._sent_path = path
        return path
