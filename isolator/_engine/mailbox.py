"""The engine's mailbox: commands from any thread, for the engine thread to run.

Caller threads only enqueue (``post``); the engine thread takes what came when the wake
pipe it watches is readable (``take``). One byte is written for a burst of commands:
the engine clears the flag before it takes the queue, so a command posted later finds
it clear, or finds it set by a caller whose byte is still to be read; either way the
engine runs it. Once closed, nothing more is accepted, and what was left is handed
back so that each command's ``fail`` can still be called.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator

Command = tuple[Callable[[], object], Callable[[BaseException], object] | None]


class Mailbox:
    """A queue of commands and the pipe that wakes the engine for them."""

    def __init__(self) -> None:
        self._commands: deque[Command] = deque()
        self._accepting = True
        self._lock = threading.Lock()  # posting against closing, nothing else
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_pending = False  # a byte is in the wake pipe, or about to be

    @property
    def fd(self) -> int:
        """What the engine's selector watches."""
        return self._wake_r

    def post(self, run: Callable[[], object],
             fail: Callable[[BaseException], object] | None) -> bool:
        """Queue a command (any thread); False once the mailbox is closed."""
        with self._lock:
            if not self._accepting:
                return False
            self._commands.append((run, fail))
        if not self._wake_pending:
            self._wake_pending = True
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:  # the pipe is full: the engine is awake anyway
                pass
        return True

    def take(self) -> Iterator[Command]:
        """Every command queued so far, and those queued while they are taken (the
        engine thread)."""
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass
        self._wake_pending = False
        commands = self._commands
        while commands:
            yield commands.popleft()

    def close(self) -> list[Command]:
        """Accept nothing more; what was never taken."""
        with self._lock:
            self._accepting = False
            leftovers = list(self._commands)
            self._commands.clear()
        return leftovers

    def release(self) -> None:
        """The pipe's fds, once the engine's selector no longer watches them."""
        os.close(self._wake_r)
        os.close(self._wake_w)
