"""The leak corpus's cases: what each report must name, and the checks on a report.

A case runs one scenario of ``leakcorpus`` in an isolated child under ``CAP`` until its
soft limit stops it, then checks the report: the holder is named by a name the user
wrote, its retained size is within ``TOLERANCE`` of what the scenario says it held,
and no object of isolator's own is named anywhere.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import leakcorpus

from isolator import MemoryLimitExceeded, isolated
from isolator.reports import Report, load

CAP = "192MiB"
TOLERANCE = 0.25
SCRIPT = os.path.join(os.path.dirname(leakcorpus.__file__), "sessions_script.py")


@dataclass(frozen=True)
class Case:
    """One scenario and what its report must say."""

    scenario: str  # "module.function" in leakcorpus, or "script" for the __main__ one
    names: tuple[str, ...]  # a holder's path must contain one of these
    kind: str = "holder"  # "holder", "garbage" (unreachable cycles) or "native"
    level: str = "default"
    weakrefs: bool = False  # the scenario itself makes weak references


_C = "leakcorpus.stdlib_containers."
_K = "leakcorpus.caches."
_B = "leakcorpus.buffers."
_R = "leakcorpus.registries."

CASES = [
    Case("stdlib_containers.queue_never_drained", (f"{_C}_PENDING",)),
    Case("stdlib_containers.logging_buffer", (f"{_C}log", "logging.getLogger('etl.load')"),
         weakrefs=True),
    Case("stdlib_containers.asyncio_queue",
         ("local 'queue' in produce()", "local 'queue' in _pipeline()"), weakrefs=True),
    Case("stdlib_containers.weakref_backref", (f"{_C}_META",), weakrefs=True),
    Case("stdlib_containers.partial_callbacks", (f"{_C}_ON_COMMIT",)),
    Case("stdlib_containers.tee_buffer", (f"{_C}_AUDIT_COPY",)),
    Case("stdlib_containers.futures_results", (f"{_C}_UPLOADS",), weakrefs=True),
    Case("stdlib_containers.deque_history", (f"{_C}_RECENT",)),
    Case("caches.function_default", (f"{_K}normalize",)),
    Case("caches.lru_cache_method", (f"{_K}Geocoder.lookup", "Geocoder.lookup")),
    Case("caches.closure_memo", (f"{_K}parse_address",)),
    Case("caches.class_registry", ("Record._instances",)),
    Case("caches.dict_of_dicts", (f"{_K}_PARTITIONS",)),
    Case("caches.staged_rows", (f"{_K}_STAGED",)),
    Case("caches.kept_tracebacks", (f"{_K}_ERRORS_BY_FILE",)),
    Case("caches.suspended_generators", (f"{_K}_READERS",)),
    Case("buffers.stringio_audit", (f"{_B}_AUDIT",)),
    Case("buffers.bytesio_upload", (f"{_B}_UPLOAD",)),
    Case("buffers.array_samples", (f"{_B}_SAMPLES",)),
    Case("buffers.bytearray_spool", (f"{_B}_SPOOL",)),
    Case("buffers.mmap_segments", (f"{_B}_SEGMENTS",)),
    Case("buffers.numpy_views", (f"{_B}_TAILS",)),
    Case("registries.atexit_sinks", ("open_sink.<locals>.flush",)),
    Case("registries.excepthook_breadcrumbs", ("sys.excepthook",)),
    Case("registries.contextvar_batch", (f"{_R}_BATCH",)),
    Case("registries.thread_local_rows", (f"{_R}_LOCAL",)),
    Case("registries.worker_thread_frame", ("local 'samples' in collect_stats()",),
         weakrefs=True),
    Case("garbage.gc_disabled_cycles", ("leakcorpus.garbage.Node",), kind="garbage"),
    Case("native.ctypes_malloc", ("ctypes",), kind="native", level="deep"),
    Case("script", ("__main__._SESSIONS",)),
]
BY_NAME = {case.scenario: case for case in CASES}


def run_case(case: Case, report_dir: str) -> Report:
    """Run the case's scenario in an isolated child; its report."""
    if case.scenario == "script":
        done = subprocess.run([sys.executable, SCRIPT, report_dir, CAP], capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return load(done.stdout.strip().splitlines()[-1])
    task = isolated(max_mem=CAP, report_dir=report_dir, forensics=case.level)(leakcorpus.run)
    try:
        task(case.scenario)
    except MemoryLimitExceeded as exc:
        report: Report = exc.report
        return report
    raise AssertionError("the scenario ended without a memory breach")


def held_bytes(report: Report) -> int | None:
    """What the scenario said it held when the breach stopped it (its note)."""
    found = re.search(re.escape(leakcorpus.NOTE) + r"(\d+)", report.traceback or "")
    return int(found.group(1)) if found else None


def within(found: object, truth: int) -> bool:
    return isinstance(found, int) and abs(found - truth) <= TOLERANCE * truth


def named_holder(case: Case, heap: dict[str, Any]) -> dict[str, Any] | None:
    """The first holder row whose path contains one of the case's names."""
    for row in (heap.get("holders") or {}).get("holders", []):
        if any(name in str(row.get("path", "")) for name in case.names):
            return dict(row)
    return None


def isolator_mentions(case: Case, heap: dict[str, Any]) -> list[str]:
    """Places where the report names an object of isolator's own."""
    found = []
    for row in (heap.get("holders") or {}).get("holders", []):
        text = " ".join(map(str, (row.get("root_name"), row.get("path"),
                                  row.get("container"), row.get("objects"))))
        if "isolator" in text:
            found.append(f"holder {row.get('path')!r}")
    for row in (heap.get("growth") or {}).get("top", []):
        name = str(row.get("type"))
        if name.startswith("isolator") or name == "socket.socket" or (
                name.startswith("weakref.") and not case.weakrefs):
            found.append(f"growth row {name} +{row.get('delta')}")
    return found


def problems(case: Case, report: Report) -> list[str]:
    """Everything the report gets wrong for this case (empty: it is right)."""
    heap = report.sections.get("heap")
    if report.kind != "soft":
        return [f"the breach was {report.kind!r}, not a soft one: no heap walk to check"]
    if not isinstance(heap, dict):
        return [f"no heap section: {report.missing.get('heap')}"]
    truth = held_bytes(report)
    if truth is None:
        return ["the scenario's note (what it held) is not in the traceback"]
    text = str(report)
    found = [*(f"names isolator's own: {m}" for m in isolator_mentions(case, heap))]
    if case.kind == "holder":
        row = named_holder(case, heap)
        if row is None:
            paths = [r.get("path") for r in (heap.get("holders") or {}).get("holders", [])]
            found.append(f"no holder named {case.names}: {paths}")
        else:
            if not within(row.get("bytes"), truth):
                found.append(f"holder {row['path']!r} retains {row.get('bytes')} bytes, the "
                             f"scenario held {truth}")
            if row["path"] not in text:
                found.append("the named holder is not in the text report")
    elif case.kind == "garbage":
        garbage = heap.get("garbage") or {}
        if not within(garbage.get("bytes"), truth):
            found.append(f"garbage {garbage.get('bytes')} bytes, the scenario made {truth}")
        if case.names[0] not in str(garbage.get("types")) or case.names[0] not in text:
            found.append(f"the garbage's types do not name {case.names[0]}")
        if garbage.get("gc_enabled") is not False or "gc.disable()" not in text:
            found.append("the report does not say that gc was disabled")
    else:
        found.extend(native_problems(report, heap, truth, text))
    return found


def native_problems(report: Report, heap: dict[str, Any], truth: int, text: str) -> list[str]:
    found = []
    python = heap.get("python_heap") or {}
    if python.get("held_by") != "native allocations":
        found.append(f"held by {python.get('held_by')!r}, not native allocations")
    grew = (python.get("since_baseline") or {}).get("native_bytes")
    if not within(grew, truth):
        found.append(f"native growth {grew} bytes, the scenario malloc-ed {truth}")
    if heap.get("level") != "deep":
        found.append(f"the heap section says level {heap.get('level')!r}")
    native = report.sections.get("native") or {}
    if "untracked" not in native and "untracked" not in str(report.to_dict()):
        found.append("the report does not say how much memray could not see")
    if "ctypes" not in text or "memray" not in text:
        found.append("the text does not say what memray cannot track")
    return found
