"""Starting and ending the engine's two helper interpreters, the zygote and the warden.

Each is a fresh interpreter (``python -P -c CODE``), not a fork of the caller, so it
holds none of the caller's memory or threads. ``-P``: its ``sys.path`` starts without the
caller's working directory or script folder, so a module planted there cannot stand in
for one it imports; isolator's own folder is passed last on its command line. It is
started from the engine thread, which lives as long as the engine: a helper's
parent-death signal is tied to the thread that started it.
"""

from __future__ import annotations

import os
import subprocess
import sys

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start(code: str, fds: list[int], own_group: bool = False) -> subprocess.Popen[bytes]:
    """``code`` in a fresh interpreter; its ``sys.argv[1:]`` are ``fds`` (passed to it),
    the caller's pid (to check that its parent is still the caller) and isolator's
    folder. ``own_group``: in a process group of its own (out of a terminal's Ctrl-Z)."""
    command = [sys.executable, "-P", "-c", code, *map(str, fds), str(os.getpid()),
               PACKAGE_PARENT]
    return subprocess.Popen(command, pass_fds=fds, stdin=subprocess.DEVNULL,
                            process_group=0 if own_group else None)


def kill(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL the helper (it dies even if stopped)."""
    if process is not None and process.returncode is None:
        try:
            process.kill()
        except OSError:
            pass


def reap(process: subprocess.Popen[bytes] | None, within: float) -> None:
    """Wait for the helper to exit (it was told to); one that does not within
    ``within`` seconds (stopped or hung) is killed."""
    if process is None:
        return
    try:
        process.wait(within)
    except subprocess.TimeoutExpired:
        kill(process)
        process.wait()
