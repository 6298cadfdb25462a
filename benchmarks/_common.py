"""Helpers shared by the benchmark scripts: import paths, statistics, tables."""

from __future__ import annotations

import os
import pickle
import platform
import statistics
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def setup_path() -> None:
    """Make ``import isolator`` (the repo's copy) and ``import _bench_workloads`` work.

    ``python benchmarks/NAME.py`` already puts benchmarks/ first on sys.path; the repo
    root goes right after it so the checkout is used even without PYTHONPATH. isolator
    hands sys.path to its zygote, so children import ``_bench_workloads`` the same way.
    """
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    if ROOT not in sys.path:
        sys.path.insert(1, ROOT)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    data = sorted(values)
    if not data:
        return float("nan")
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain, aligned text table (markdown-compatible pipes)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"

    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(r) for r in cells[1:])
    return "\n".join(out)


def machine() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((l.split(":", 1)[1].strip() for l in fh if l.startswith("model name")), "?")
    except OSError:
        model = "?"
    return (f"Python {platform.python_version()} on {platform.system()} {platform.release()}, "
            f"{os.cpu_count()} CPUs ({model})")


def isolator_digest() -> str:
    """A short hash of isolator's sources: the code under test changes often, and a
    result is only meaningful next to the version it was measured on."""
    import hashlib

    package = os.path.join(ROOT, "isolator")
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(package)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, package).encode())
                with open(path, "rb") as fh:
                    digest.update(fh.read())
    return digest.hexdigest()[:12]


def header(title: str) -> None:
    import time

    print(title)
    print(machine())
    print(f"isolator sources sha256:{isolator_digest()}  at {time.strftime('%Y-%m-%d %H:%M:%S')}")


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


MiB = 1024 * 1024


def fork_call(fn, *args):
    """Run fn(*args) in a bare fork of this process; length-prefixed result on a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            data = pickle.dumps(fn(*args), 5)
            view = memoryview(struct.pack("<Q", len(data)) + data)
            while view:
                view = view[os.write(w, view):]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    try:
        head = _read(r, 8)
        data = _read(r, struct.unpack("<Q", head)[0])
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    if status:
        raise RuntimeError(f"fork child failed: {status}")
    return pickle.loads(data)


def _read(fd: int, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = os.read(fd, size - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)
