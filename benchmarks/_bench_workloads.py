"""Workload functions for the benchmarks.

They live in an importable module (not ``__main__``) so that isolator sends them by
reference and its zygote imports this module once: children start with it loaded. The
module imports nothing heavy at the top; numpy is imported inside the one function that
needs it (overshoot.py asks the zygote to preload it).
"""

from __future__ import annotations

import mmap
import os
import re
import struct
import time

MiB = 1024 * 1024
_RSS = re.compile(rb"RssAnon:\s+(\d+) kB\n(?:.*\n)*?RssShmem:\s+(\d+) kB")


# -- overhead.py ------------------------------------------------------------------------

def noop(x):
    return x


# -- helpers for the children ---------------------------------------------------------------

class _SelfRss:
    """This process's RssAnon + RssShmem (the metric isolator enforces), cheaply."""

    def __init__(self) -> None:
        self.fd = os.open("/proc/self/status", os.O_RDONLY)

    def __call__(self) -> int:
        m = _RSS.search(os.pread(self.fd, 4096, 0))
        return (int(m.group(1)) + int(m.group(2))) * 1024 if m else 0


class _Board:
    """A 4 KiB file page shared with the benchmark process, which reads it after the child
    is gone (killed or not): the child's own view of its memory, independent of isolator.

    Layout: baseline RSS, highest RSS the child saw itself, bytes it had allocated and
    touched, all int64. The page is file-backed (RssFile), so it does not count itself.
    """

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR)
        try:
            self.map = mmap.mmap(fd, 4096)
        finally:
            os.close(fd)
        self.rss = _SelfRss()
        self.baseline = self.rss()
        self.seen = self.baseline
        self.allocated = 0
        self.flush()

    def flush(self) -> None:
        struct.pack_into("<qqq", self.map, 0, self.baseline, self.seen, self.allocated)

    def observe(self, allocated: int) -> None:
        self.allocated = allocated
        self.seen = max(self.seen, self.rss())
        self.flush()


def read_board(path: str) -> tuple[int, int, int]:
    with open(path, "rb") as fh:
        return struct.unpack("<qqq", fh.read(24))


# -- overshoot.py -------------------------------------------------------------------------

def grow_chunks(board_path: str, total: int, chunk: int = 64 * 1024):
    """Python objects: a list of bytearray(64 KiB) chunks (each zero-filled, so touched)."""
    board = _Board(board_path)
    held = []
    n = 0
    while n < total:
        held.append(bytearray(chunk))
        n += chunk
        if len(held) % 16 == 0:  # every MiB: what the child itself sees
            board.observe(n)
    board.observe(n)
    return n


def grow_small_objects(board_path: str, total: int):
    """Python objects: many small ones (tuples of a float and a str), list growing."""
    board = _Board(board_path)
    held = []
    i = 0
    while True:
        for _ in range(8192):
            held.append((float(i), str(i)))
            i += 1
        rss = board.rss()
        board.observe(rss - board.baseline)
        if rss - board.baseline >= total:
            return i


def numpy_ones(board_path: str, total: int):
    """One numpy allocation touching every page: the fill runs in C, no bytecode between."""
    import numpy as np

    board = _Board(board_path)
    a = np.ones(total // 8, dtype=np.float64)
    board.observe(a.nbytes)
    return a.nbytes


def ctypes_malloc(board_path: str, total: int, block: int = 64 * MiB):
    """A loop of libc malloc + memset through ctypes.PyDLL, which keeps the GIL held
    during each call: a 64 MiB memset is one uninterruptible stretch of C."""
    import ctypes

    board = _Board(board_path)
    libc = ctypes.PyDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.memset.restype = ctypes.c_void_p
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    blocks = []
    n = 0
    while n < total:
        p = libc.malloc(block)
        if not p:
            raise MemoryError("malloc returned NULL")
        libc.memset(ctypes.c_void_p(p), 1, block)
        blocks.append(p)
        n += block
        board.observe(n)
    return n


# -- monitoring_cost.py -------------------------------------------------------------------

def cpu_loop(n: int, hold_mib: int = 0):
    """Pure-Python CPU work; optionally holds ``hold_mib`` MiB (touched) while it runs.

    Returns (wall seconds of the loop, CPU seconds of the loop, the child's
    RssAnon+RssShmem, checksum).
    """
    hold = bytearray(b"\x01") * (hold_mib * MiB) if hold_mib else None
    rss = _SelfRss()()
    c0 = time.process_time()
    t0 = time.perf_counter()
    s = 0
    for i in range(n):
        s += i * i % 7
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    del hold
    return elapsed, cpu, rss, s
