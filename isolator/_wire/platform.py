"""Linux process controls that the stdlib does not expose, through ctypes.

Loaded lazily and once: the zygote and every child call these on their start-up path.
"""

from __future__ import annotations

import ctypes
import functools
import sys

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
M_ARENA_MAX = -8

IS_LINUX = sys.platform.startswith("linux")


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def set_parent_death_signal(signum: int) -> None:
    """Ask the kernel to send ``signum`` when the thread that forked us exits."""
    if _libc().prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def set_process_name(name: bytes) -> None:
    """Name this process in ``/proc/PID/comm`` (what top and ps -o comm show), 15 bytes."""
    _libc().prctl(PR_SET_NAME, ctypes.c_char_p(name[:15]), 0, 0, 0)


def set_child_subreaper() -> None:
    """Orphaned descendants are re-parented to us instead of init, so none escape."""
    if _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def limit_malloc_arenas(count: int = 2) -> None:
    """Cap glibc's per-thread arenas: each one reserves 64 MiB and fragments on its own."""
    try:
        _libc().mallopt(M_ARENA_MAX, count)
    except AttributeError:  # not glibc
        pass


def malloc_trim() -> bool:
    """Give free heap pages back to the OS; False where the C library cannot."""
    try:
        return bool(_libc().malloc_trim(0))
    except AttributeError:
        return False


def require_linux() -> None:
    """Fail with a clear message where the enforcement mechanisms do not exist."""
    if not IS_LINUX:
        from .._errors import IsolatorError

        raise IsolatorError(
            f"isolator needs Linux (it relies on /proc, prctl and process groups); "
            f"this is {sys.platform}. See docs/design.md, 'Platforms'."
        )

