"""Leaks inside C containers: text and byte buffers, arrays, mappings, numpy views."""

from __future__ import annotations

import array
import io
import itertools
import mmap
import sys
from typing import Any

from ._data import Tally, line, records

TALLY = Tally()

# -- an audit trail accumulated in a module-level StringIO -----------------------------

_AUDIT = io.StringIO()


def stringio_audit() -> None:
    for row in records():
        _AUDIT.write(line(row))


# -- an upload body spooled into a BytesIO that is never sent ---------------------------

_UPLOAD = io.BytesIO()


def bytesio_upload() -> None:
    for row in records():
        _UPLOAD.write(line(row).encode())


# -- sensor readings accumulated in an array.array -------------------------------------

_SAMPLES = array.array("d")


def array_samples() -> None:
    for row in records():
        _SAMPLES.extend((row["amount"], row["id"] * 0.5, row["amount"] / 3, 1.0) * 16)


# -- a bytearray spool of encoded rows, "flushed at the end" ---------------------------

_SPOOL = bytearray()


def bytearray_spool() -> None:
    for row in records():
        _SPOOL.extend(line(row).encode())


# -- scratch segments: an anonymous mmap per batch, kept in a list ---------------------

_SEGMENTS: list[mmap.mmap] = []
SEGMENT = 1 << 20


def mmap_segments() -> None:
    source = records()
    while True:
        segment = mmap.mmap(-1, SEGMENT)
        for row in itertools.islice(source, 1000):
            text = line(row).encode()
            if segment.tell() + len(text) > SEGMENT:
                break
            segment.write(text)
        segment.write(b"\x00" * (SEGMENT - segment.tell()))  # padded: every page touched
        _SEGMENTS.append(segment)


# -- numpy: the last rows of every frame kept as views, each keeping its whole frame ----

_TAILS: dict[str, Any] = {}


def numpy_views() -> None:
    import numpy as np

    for n in itertools.count():
        frame = np.full((4096, 128), float(n))  # one input file, 4 MiB
        _TAILS[f"part-{n:05d}"] = frame[-5:]  # "just the last five rows"
        TALLY.add("numpy_views", frame.nbytes + sys.getsizeof(_TAILS[f"part-{n:05d}"]))


def held(name: str) -> int:
    """What the scenario ``name`` holds now, in bytes."""
    if name == "stringio_audit":
        return _AUDIT.tell()  # ASCII text: a byte a character while it is only written
    if name == "bytesio_upload":
        return sys.getsizeof(_UPLOAD)
    if name == "array_samples":
        return sys.getsizeof(_SAMPLES)
    if name == "bytearray_spool":
        return sys.getsizeof(_SPOOL)
    if name == "mmap_segments":
        return len(_SEGMENTS) * SEGMENT
    if name == "numpy_views":
        return TALLY.get(name)
    raise KeyError(name)
