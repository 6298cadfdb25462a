"""The engine's look at its two helper processes while children live.

A task runs as the caller's user, so it can stop the zygote (its parent) or the warden
with SIGSTOP, and either can hang (the zygote in an import that never returns). Left
alone, a stopped zygote hung every later call for good, and a stopped warden left every
child uncapped. Four times a second while children live:

- a helper that is stopped is resumed (SIGCONT): the warden then kills whatever passed
  its cap meanwhile, and the zygote forks what was asked of it;
- a warden that runs but has taken no round of samples for ``warden_link.STALE``
  seconds is hung: its link is marked broken, and the engine replaces it.

A zygote is asked whether it still serves (a ping) when a child it was to fork did not
say HELLO in time; one that has not answered within ``ZYGOTE_ANSWER`` seconds is hung,
and ``on_hung_zygote`` replaces it. All of it runs on the engine thread, by its timers.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable

from .._errors import WorkerStartupError
from .._wire import procfs as _procfs
from . import warden_link as _warden_link
from .timers import Timer, Timers
from .warden_link import WardenLink
from .zygote_link import ZygoteLink

_log = logging.getLogger("isolator")
EVERY = 0.25  # seconds between looks, while children live
ZYGOTE_ANSWER = 30.0  # seconds the zygote has to answer a ping before it is replaced


class Vigil:
    """Timers that look at the zygote and the warden (engine thread only)."""

    def __init__(self, timers: Timers, zygote: ZygoteLink, warden: WardenLink,
                 children_live: Callable[[], bool],
                 on_hung_zygote: Callable[[], None]) -> None:
        self._timers = timers
        self._zygote = zygote
        self._warden = warden
        self._children_live = children_live
        self._on_hung_zygote = on_hung_zygote
        self._look: Timer | None = None
        self._ping: Timer | None = None

    def child_started(self) -> None:
        """A child is on its way: look at the helpers until none is left."""
        if self._look is None:
            self._look = self._timers.at(time.monotonic() + EVERY, self._look_now)

    def _look_now(self) -> None:
        self._look = None
        for name, pid in (("zygote", self._zygote.pid), ("warden", self._warden.pid)):
            if pid is not None and _procfs.stopped(pid):
                _log.warning("isolator: the %s (pid %s) was stopped; it is resumed", name, pid)
                try:
                    os.kill(pid, signal.SIGCONT)
                except OSError:  # gone: its loss is on the way
                    pass
        now = time.monotonic()
        if self._warden.stale(now):
            _log.error("isolator: the warden took no sample for %.1f s", _warden_link.STALE)
            self._warden.broken = True  # the engine replaces it at the end of its round
        if self._children_live():
            self._look = self._timers.at(now + EVERY, self._look_now)

    def ping_zygote(self) -> None:
        """A child did not start in time: does the zygote still serve?"""
        if self._ping is not None:
            return
        try:
            self._zygote.send(("ping",))
        except (OSError, WorkerStartupError):  # it is gone: its loss is on the way
            return
        self._ping = self._timers.at(time.monotonic() + ZYGOTE_ANSWER, self._silent)

    def pong(self) -> None:
        """The zygote answered."""
        self._timers.cancel(self._ping)
        self._ping = None

    def zygote_replaced(self) -> None:
        """A ping to the zygote that is gone will not be answered."""
        self.pong()

    def _silent(self) -> None:
        self._ping = None
        _log.error("isolator: the zygote did not answer for %.0f s (hung in an import?); "
                   "it is replaced and its children are killed", ZYGOTE_ANSWER)
        self._zygote.kill()
        self._on_hung_zygote()
