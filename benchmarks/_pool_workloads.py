"""Workloads for pools.py, in an importable module so every pool sends them by reference."""

from __future__ import annotations

import re

_RSS = re.compile(rb"RssAnon:\s+(\d+) kB\n(?:.*\n)*?RssShmem:\s+(\d+) kB")


def noop(x: int) -> int:
    return x


def square(x: int) -> int:
    return x * x


def rss(_: object = None) -> int:
    """This worker's RssAnon + RssShmem in bytes (what isolator enforces)."""
    with open("/proc/self/status", "rb") as fh:
        match = _RSS.search(fh.read())
    return (int(match.group(1)) + int(match.group(2))) * 1024 if match else 0


_KEPT: list[object] = []


def fragment(_: object = None) -> int:
    """Allocate ~200 MB of small objects and keep 1 %: pymalloc cannot give the arenas
    back, so a reused worker's RSS stays high (shared/FINDINGS.md section 2)."""
    junk = [bytearray(1000) for _ in range(200_000)]
    _KEPT.extend(junk[::100])
    del junk
    return rss()
