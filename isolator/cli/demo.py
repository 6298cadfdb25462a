"""``python -m isolator demo``: a small batch where one input leaks, and the cap holds.

Six fake partitions are processed, each call in its own child process capped at
128 MB. One partition is malformed: its parser never finds the end of a record and
keeps buffering 1 MiB chunks in a module-level cache, a leak that would take down a
long-lived worker. Here only that one call fails, with ``MemoryLimitExceeded``, the
others complete, and a report of the failure is written.

The job functions live in this importable module, not in ``__main__``: the children
then import them by name, as they would in a real project.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any, TextIO

from .._api.decorator import isolated
from .._errors import MemoryLimitExceeded
from .._units import format_size
from ..reports import Report

MIB = 1024 * 1024
CAP = "128MB"
# (partition, size in MiB, malformed?): exactly one is malformed, and it must fail.
PARTITIONS: list[tuple[str, int, bool]] = [
    ("part-0001", 4, False),
    ("part-0002", 8, False),
    ("part-0003", 2, False),
    ("part-0004", 6, True),
    ("part-0005", 12, False),
    ("part-0006", 3, False),
]
# If the cap ever failed to stop the leak, give up here rather than eat the machine.
LEAK_GIVE_UP_MIB = 512

# The leak: state that outlives one record. In a long-lived worker it would grow
# across tasks; in an isolated child it dies with the child.
_CACHE: list[bytearray] = []


def _fake_partition(name: str, size_mib: int) -> bytes:
    # Deterministic bytes standing in for a partition's file, ``size_mib`` MiB of them.
    return hashlib.shake_128(name.encode()).digest(size_mib * MIB)


def process_partition(name: str, size_mib: int, malformed: bool = False) -> dict[str, Any]:
    """Load one partition and summarise it; a malformed one leaks until the cap stops it."""
    data = _fake_partition(name, size_mib)
    if malformed:
        # The record never ends, so the parser keeps "buffering the rest of it".
        while len(_CACHE) < LEAK_GIVE_UP_MIB:
            _CACHE.append(bytearray(MIB))  # zero-filled, so every page is really used
        return {"partition": name, "leaked_mib": len(_CACHE)}
    return {
        "partition": name,
        "mib": size_mib,
        "records": data.count(b"\n"),
        "checksum": hashlib.sha256(data).hexdigest()[:12],
    }


def _describe(result: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in result.items() if key != "partition")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def run(report_dir: str, out: TextIO = sys.stdout) -> int:
    """Run the batch; 0 when exactly the malformed partition failed at its cap, else 1."""
    process = isolated(max_mem=CAP, report_dir=report_dir)(process_partition)
    cap = process.options.max_mem or 0
    print(f"isolator demo: {len(PARTITIONS)} partitions, each in its own child process "
          f"capped at {format_size(cap)}", file=out)
    ok: list[str] = []
    failed: dict[str, BaseException] = {}
    report: Report | None = None
    for name, size_mib, malformed in PARTITIONS:
        try:
            result = process(name, size_mib, malformed)
        except MemoryLimitExceeded as exc:
            failed[name] = exc
            print(f"  {name}  FAILED  MemoryLimitExceeded kind={exc.kind}: peak "
                  f"{format_size(exc.peak)} vs cap {format_size(exc.limit)}", file=out)
            report = exc.report if isinstance(exc.report, Report) else None
        except Exception as exc:  # noqa: BLE001 - a batch reports every failure and goes on
            failed[name] = exc
            print(f"  {name}  FAILED  {_first_line(exc)}", file=out)
        else:
            ok.append(name)
            print(f"  {name}  ok      {_describe(result)}", file=out)
    html = _show(report, out)
    planned = [name for name, _, malformed in PARTITIONS if malformed]
    as_planned = (list(failed) == planned and html is not None
                  and all(isinstance(failed[name], MemoryLimitExceeded) for name in planned))
    causes = ", ".join(f"{name} ({type(exc).__name__})" for name, exc in failed.items())
    print(f"summary: {len(ok)} of {len(PARTITIONS)} partitions ok, {len(failed)} failed"
          f"{': ' + causes if causes else ''}", file=out)
    print(f"report:  {html or 'none written'}", file=out)
    print("verdict: as planned: the cap stopped the leaking partition and the others ran"
          if as_planned else
          f"verdict: NOT as planned: expected exactly {', '.join(planned)} to fail "
          "with MemoryLimitExceeded and a report to be written", file=out)
    return 0 if as_planned else 1


def _show(report: Report | None, out: TextIO) -> str | None:
    """Print where the supervisor wrote the report and what it says; report.html or None."""
    if report is None:
        return None
    if report.path is None:
        print(f"\nthe report could not be written: {report.missing.get('files')}\n", file=out)
        print(report, file=out)
        return None
    html = f"{report.path}/report.html"
    print(f"\nreport written: {html}\n", file=out)
    print(report, file=out)
    return html
