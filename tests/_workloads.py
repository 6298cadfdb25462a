"""Functions the tests run in isolated children (importable, so they go by reference)."""

from __future__ import annotations

import ctypes
import mmap
import os
import signal
import time
from typing import Any

MiB = 1024 * 1024


def echo(value: Any) -> Any:
    return value


def raise_value_error(message: str) -> None:
    raise ValueError(message)


def grow_python_objects(limit_mib: int) -> int:
    """Grow to 4x the cap in 1 MiB bytearrays (touched, so really resident)."""
    hold = []
    for _ in range(4 * limit_mib):
        hold.append(bytearray(b"\x01") * MiB)
    return len(hold)


def grow_numpy(limit_mib: int) -> float:
    import numpy as np

    array = np.ones(4 * limit_mib * MiB // 8)  # one allocation, every page written
    return float(array.sum())


def grow_in_c_holding_gil(limit_mib: int) -> None:
    """malloc + memset from C with the GIL held: no Python code runs until it is over."""
    libc = ctypes.PyDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    for _ in range(4 * limit_mib // 16):
        block = libc.malloc(16 * MiB)
        libc.memset(block, 1, 16 * MiB)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def segfault() -> None:
    ctypes.string_at(0)


def abort() -> None:
    os.abort()


def exit_three() -> None:
    os._exit(3)


def sleep_for(seconds: float) -> None:
    time.sleep(seconds)


def return_unpicklable() -> Any:
    return (x for x in range(3))  # generators pickle neither with pickle nor with dill


class UnpicklableError(Exception):
    def __init__(self) -> None:
        super().__init__("carries a generator")
        self.payload = (x for x in range(3))


def raise_unpicklable() -> None:
    raise UnpicklableError


def setsid_grandchild_grows(limit_mib: int) -> None:
    """A grandchild leaves the process group (setsid) and grows past the cap."""
    pid = os.fork()
    if pid == 0:
        os.setsid()
        hold = [bytearray(b"\x01") * MiB for _ in range(4 * limit_mib)]
        time.sleep(30)
        os._exit(len(hold) and 0)
    os.waitpid(pid, 0)


def read_file_through_mmap(path: str) -> int:
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
        total = 0
        for offset in range(0, len(view), mmap.PAGESIZE):
            total += view[offset]
        return total


def use_a_little(mib: int) -> int:
    data = bytearray(b"\x01") * (mib * MiB)
    return len(data)


def pid_and_sleep(seconds: float) -> None:
    os.write(1, f"{os.getpid()}\n".encode())  # one write: lines of two children never mix
    time.sleep(seconds)


def print_and_return(text: str) -> str:
    print(text, flush=True)
    return text


def fill_tmpfs(limit_mib: int) -> None:
    """Write 4x the cap into an unlinked tmpfs file: charged to the memory cgroup, but in
    no process's RSS, so only the kernel layer can see it."""
    fd = os.open("/dev/shm", os.O_TMPFILE | os.O_RDWR, 0o600)
    try:
        chunk = b"\x01" * MiB
        for _ in range(4 * limit_mib):
            os.write(fd, chunk)
    finally:
        os.close(fd)


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"bad input {x}")
    return x


def die_on(x: int, bad: int, how: str) -> int:
    """Return x, except for ``bad``, which dies the way ``how`` says."""
    if x == bad:
        {"sigkill": kill_self, "segfault": segfault, "exit": exit_three,
         "memory": lambda: grow_python_objects(64), "timeout": lambda: sleep_for(30),
         "abort": abort}[how]()
    return x


_initialized: list[str] = []


def remember(tag: str) -> None:
    _initialized.append(tag)


def initialized(_: object = None) -> list[str]:
    return list(_initialized)


def need_mib(mib: int) -> int:
    """Hold ``mib`` MiB at once, touched."""
    return len(bytearray(b"\x01") * (mib * MiB)) // MiB


def die_once(marker: str) -> str:
    """SIGKILL itself the first time (leaving a marker), succeed the next."""
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        kill_self()
    return "second time lucky"


def record_span(path: str, seconds: float) -> None:
    start = time.monotonic()
    time.sleep(seconds)
    with open(path, "a") as fh:
        fh.write(f"{start} {time.monotonic()}\n")


_HOARD: list[bytearray] = []


def hoard(mib: int) -> int:
    """Keep ``mib`` MiB in a module-level list: a leak that outlives the task."""
    _HOARD.append(bytearray(b"\x01") * (mib * MiB))
    return os.getpid()


def my_pid(_: object = None) -> int:
    return os.getpid()


_CACHE: dict[str, bytearray] = {}


def leak_into_module_cache(limit_mib: int, secret: str) -> None:
    """Fill a module-level dict, keyed by data, until the cap stops it."""
    for i in range(4 * limit_mib):
        _CACHE[f"{secret}-{i}"] = bytearray(b"\x01") * MiB


def one_big_c_call(mib: int) -> None:
    """One memset of ``mib`` MiB with the GIL held: no Python runs until it is done."""
    libc = ctypes.PyDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    block = libc.malloc(mib * MiB)
    libc.memset(block, 1, mib * MiB)


def logged_echo(item: dict[str, Any]) -> Any:
    """Append the item's index to its log (to see what ran), sleep a little, echo."""
    with open(item["log"], "a") as fh:
        fh.write(f"{item['i']}\n")
    time.sleep(item.get("sleep", 0.0))
    return item["i"]


def own_rss(_: object = None) -> int:
    """This worker's RssAnon + RssShmem, what isolator measures."""
    from isolator._wire.procfs import self_rss

    return self_rss()


def note_then_die_on(path: str, x: int, bad: int, how: str) -> int:
    """Append ``x`` to ``path`` (one line per run), then behave as ``die_on``."""
    with open(path, "a") as fh:
        fh.write(f"{x}\n")
    return die_on(x, bad, how)


def stamp_then_die(path: str) -> None:
    """Write the wall-clock time to ``path``, then SIGKILL this process."""
    with open(path, "w") as fh:
        fh.write(repr(time.time()))
    os.kill(os.getpid(), signal.SIGKILL)


class _ExitsWhenLoaded:
    """A value whose pickle calls sys.exit when it is loaded (by the caller)."""

    def __reduce__(self) -> tuple[Any, ...]:
        import sys

        return (sys.exit, ("raised while unpickling a result",))


def exits_when_loaded() -> Any:
    """Return a result whose unpickling raises SystemExit in whoever loads it."""
    return _ExitsWhenLoaded()
