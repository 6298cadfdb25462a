"""Heap forensics, run inside the child when it crosses its memory cap.

What holds the memory, and who keeps it alive? :func:`collect` answers with a
JSON-compatible dict that the child sends to the supervisor for the report;
:func:`take_baseline` is called at task start so that growth can be told apart.

Levels: ``"types"`` records no values from the user's data (no reprs; dict keys shown
as ``[<str>]``; only type names, sizes, counts and the names of modules, classes,
functions, variables and attributes, which are code). ``"default"`` adds reprs cut to
``max_repr`` characters (80 unless told). ``"deep"`` adds heapy's partition (guppy3;
seconds and ~200 MiB on a big heap: give it a time budget and headroom).

The document (``version`` 1). Each section has ``elapsed`` (seconds); any section may
be absent, with the reason under ``missing`` (time budget spent, no baseline, no frame,
a collector's exception: its type, and its message except at level "types");
``partial`` in a section says what was cut short::

    schema, version, level, max_repr, time_budget, elapsed, missing: {section: why}
    cost: {rss_before, rss_after}          bytes, RssAnon + RssShmem of this process
    python_heap: {python_bytes, rss_bytes, native_bytes, python_share, objects,
                  gc_tracked, held_by: "python objects" | "native allocations",
                  since_baseline?: {rss_bytes, python_bytes, native_bytes}}
    types: {top: [{type, count, bytes}] (15 biggest), types, objects, bytes}
    growth: {top: [{type, before, after, delta}] (15), since_seconds, counted}
    locals: {frames, top: [{frame, name, type, bytes, repr?}] (10), snapshots_kept?}
    holders: {holders: [{root: "module" | "class" | "frame" | "unknown", root_name,
                         chain: [edge names, root to container], path (joined),
                         container: {type, bytes, len?},
                         example: [edge names, container to one big object],
                         objects: {count, bytes, types}, bytes}] (5),
              targets, objects_searched}
    heapy: {rows: [{kind, count, bytes}] (15), objects, bytes}       (level "deep")

``python_bytes`` is ``sys.getsizeof`` of every gc-tracked object and of every object
reachable from those only through untracked ones (str, bytes, numbers, atom-only dicts
and tuples, numpy arrays with their buffers and bases), each counted once. The rest of
the RSS is native: C libraries, interpreter structures, allocator slack and freed
memory not given back yet. ``held_by`` compares the two, as growth since the baseline
when there is one. Type sizes are shallow (``getsizeof``); locals and containers are
sized one level deep. Holders are found for the 64 biggest objects (16 KiB or more);
chains sharing a shape (keys and indices aside) make one holder, whose container is
where they part.
"""

from __future__ import annotations

import gc
import time
from types import FrameType
from typing import Any

from ._common import (
    DEFAULT_MAX_REPR,
    Budget,
    Skipped,
    clear_caches,
    error_text,
    own_caches,
    rss_bytes,
    safe_repr,
)
from ._edges import Namer
from ._heap import HeapScan, scan
from ._heapy import partition
from ._holders import Graph, holders, module_namespaces
from ._stack import Stack, locals_section, read_stack
from ._summary import Baseline, growth_section, python_heap, take_baseline, types_section

__all__ = ["DEFAULT_MAX_REPR", "LEVELS", "SCHEMA", "Baseline", "collect", "take_baseline"]

LEVELS = ("types", "default", "deep")
SCHEMA = "isolator.forensics"
VERSION = 1
SCAN_SHARE = 0.75  # of the time budget, at most, for the heap scan; holders need the rest


class _Sections:
    """Runs one collector per section; failures become reasons under ``missing``."""

    def __init__(self, result: dict[str, Any], budget: Budget, values: bool) -> None:
        self.result, self.budget, self.values = result, budget, values
        self.missing: dict[str, str] = result["missing"]

    def run(self, name: str, collector: Any, *args: Any, cheap: bool = False) -> Any:
        """Run ``collector(*args)`` as section ``name`` (``cheap`` ones run even when
        the budget is spent: they only format what was already gathered)."""
        if self.budget.expired() and not cheap:
            self.missing[name] = f"time budget of {self.budget.seconds:g} s exhausted before it"
            return None
        started = time.monotonic()
        try:
            value = collector(*args)
        except Skipped as exc:
            self.missing[name] = str(exc)
            return None
        except Exception as exc:  # noqa: BLE001 - a report without one section beats none
            self.missing[name] = error_text(exc, self.values)
            return None
        if type(value) is dict:
            value["elapsed"] = round(time.monotonic() - started, 4)
            self.result[name] = value
        return value

    def absent(self, names: tuple[str, ...], why: str) -> None:
        for name in names:
            self.missing.setdefault(name, why)


def collect(
    *, level: str, frame: FrameType | None, baseline: Baseline | None,
    time_budget: float = 2.0, max_repr: int = DEFAULT_MAX_REPR,
) -> dict[str, Any]:
    """What holds the memory and who keeps it alive; never raises (see the module doc).

    ``frame`` is the frame that was running (the signal handler's ``frame``); its
    locals and its callers' are read, isolator's own frames skipped, and nothing is
    kept once this returns.
    """
    started = time.monotonic()
    result: dict[str, Any] = {
        "schema": SCHEMA, "version": VERSION, "level": level, "max_repr": max_repr,
        "time_budget": time_budget, "missing": {}, "cost": {"rss_before": rss_bytes()},
    }
    if type(level) is not str or level not in LEVELS:
        result["level"] = safe_repr(level, 40)
        result["missing"]["*"] = f"unknown level; expected one of {', '.join(LEVELS)}"
        return result
    sections = _Sections(result, Budget(time_budget), values=level != "types")
    enabled = gc.isenabled()
    gc.disable()  # a collection mid-scan would cost seconds on a big heap
    held: dict[str, Any] = {}  # what refers to the user's objects, dropped in the end
    try:
        _collect(sections, level, frame, baseline, max_repr, held)
    except Exception as exc:  # noqa: BLE001 - never raise into the failing task
        result["missing"]["*"] = error_text(exc, sections.values)
    finally:
        for name in ("stack", "heap"):
            if name in held:
                held[name].release()
        for name in ("graph", "targets"):
            if name in held:
                held[name].clear()
        held.clear()
        clear_caches()
        if enabled:
            gc.enable()
    result["cost"]["rss_after"] = rss_bytes()
    result["elapsed"] = round(time.monotonic() - started, 4)
    return result


def _collect(sections: _Sections, level: str, frame: FrameType | None,
             baseline: Baseline | None, max_repr: int, held: dict[str, Any]) -> None:
    budget, values, result = sections.budget, sections.values, sections.result
    modules = module_namespaces()
    skip = set(modules)
    held["stack"] = stack = Stack()
    if frame is None:
        sections.absent(("locals",), "no frame was given")
    else:
        sections.run("locals", _locals, stack, frame, skip, budget, values, max_repr)
    share = Budget(min(budget.left(), budget.seconds * SCAN_SHARE))
    ours = {id(stack.values), *own_caches()}
    heap: HeapScan | None = sections.run("heap scan", scan, share, ours)
    if baseline is None:
        sections.absent(("growth",), "no baseline was taken at task start")
    if heap is None:
        why = f"no heap scan: {result['missing'].pop('heap scan', '?')}"
        sections.absent(("python_heap", "types", "growth", "holders"), why)
        return
    held["heap"] = heap
    sections.run("python_heap", python_heap, heap, baseline, result["cost"]["rss_before"],
                 cheap=True)
    sections.run("types", types_section, heap, cheap=True)
    if heap.partial:
        sections.absent(("growth",), f"the heap scan was cut short: {heap.partial}")
        for name in ("python_heap", "types"):
            if name in result:
                result[name]["partial"] = heap.partial
    elif baseline is not None:
        sections.run("growth", growth_section, heap, baseline, cheap=True)
    sizes, targets = heap.biggest()
    held["targets"] = targets
    graph = Graph(stack, modules, heap.parents)
    held["graph"] = graph.nodes
    namer = Namer(values, max_repr, drop=stack.kept is None)
    ignore = {id(stack.values), id(targets), id(sizes), id(held)}
    sections.run("holders", holders, targets, sizes, graph, ignore, budget, namer, skip)
    graph.nodes.clear()
    targets.clear()
    heap.release()
    if level == "deep":
        sections.run("heapy", partition, budget, heap.total)


def _locals(stack: Stack, frame: FrameType, *args: Any) -> dict[str, Any]:
    read_stack(frame, stack)
    return locals_section(stack, *args)
