"""Heap forensics, run inside the child when it crosses its memory cap.

What holds the memory, and who keeps it alive? :func:`collect` answers with a
JSON-compatible dict that the child sends to the supervisor for the report;
:func:`take_baseline` is called before the task so that growth can be told apart, and
:func:`watch_registries` (in the zygote) lets the report name ``atexit`` callbacks and
audit hooks, which the interpreter keeps where no code can list them.

Levels: ``"types"`` records no values from the user's data (no reprs; dict keys shown
as ``[<str>]``; only type names, sizes, counts and the names of modules, classes,
functions, variables and attributes, which are code). ``"default"`` adds reprs cut to
``max_repr`` characters (80 unless told) and the back-reference graph (objgraph).
``"deep"`` adds heapy's partition (guppy3: of the whole heap when the headroom allows,
else of a sample).

The order of the work is the order of what matters: the locals of the running frames;
garbage (unreachable cycles, counted and then freed); the holders, walked from the
roots a user can name, best names first (``_named``), so that the budget is spent
where leaks live and what was found stays found; then the flat scan of the heap
(``types``, ``python_heap``, ``growth``); a search up from the biggest objects that
no named root explains (``_holders``); the graph; heapy. Budgets: ``_budget``.

The document (``version`` 2; docs/reports.md has the whole schema). Each section has
``elapsed`` (seconds); any section may be absent, with the reason under ``missing``;
``partial`` in a section says what was cut short::

    schema, version, level, max_repr, time_budget, elapsed, missing: {section: why}
    budget: {seconds, memory, headroom, gc_tracked, time_rule, memory_rule}
    cost: {rss_before, rss_after}
    python_heap: {python_bytes, rss_bytes, native_bytes, python_share, objects,
                  gc_tracked, held_by, since_baseline?, estimated?, garbage_bytes?}
    garbage: {gc_enabled, threshold, objects, bytes, types: [{type, count, bytes}]}
    types: {top: [{type, count, bytes}] (15), types, objects, bytes}
    growth: {top: [{type, before, after, delta, bytes_before, bytes_after,
                    bytes_delta}] (15), bytes, floor, since_seconds, counted}
    locals: {frames, threads, top: [{frame, name, type, bytes, repr?}] (10)}
    holders: {holders: [{root, root_name, chain, path, container: {type, bytes, len?},
                         example, objects: {count, bytes, types}, bytes,
                         retained: {bytes, objects, estimated}, count?, notes?}],
              explained: {bytes, python_bytes, share}, roots: {roots, walked,
              other_bytes, not_walked?}, targets, objects_searched}
    backrefs: {dot, nodes, holders}                                    (not "types")
    heapy: {mode, by, rows: [{kind, count, bytes}], objects, bytes, sample?}  (deep)
"""

from __future__ import annotations

import gc
import sys
import time
from types import FrameType, FunctionType, MethodType, TracebackType
from typing import Any

from ._budget import Plan
from ._common import (
    DEFAULT_MAX_REPR,
    OURS,
    Budget,
    clear_caches,
    error_text,
    ours,
    own_caches,
    rss_bytes,
)
from ._common import Skipped as Skipped
from ._common import safe_repr as safe_repr
from ._edges import Namer
from ._garbage import garbage_section
from ._heap import HeapScan, scan
from ._heapy import partition
from ._holders import Graph, holders, module_namespaces
from ._registries import watch as watch_registries
from ._sections import Sections, absent
from ._stack import Stack, locals_section, read_stack, read_threads
from ._summary import Baseline, growth_section, python_heap, take_baseline, types_section
from ._top import named_section, unexplained_targets

__all__ = ["DEFAULT_MAX_REPR", "LEVELS", "SCHEMA", "Baseline", "collect", "take_baseline",
           "watch_registries"]

LEVELS = ("types", "default", "deep")
SCHEMA = "isolator.forensics"
VERSION = 2
WALK_SHARE = 0.4  # of the time budget, at most, for the walk from named roots
SCAN_SHARE = 0.6  # ... for the flat heap scan, of what the walk left
RESERVE = 0.15  # ... kept for the search up from the biggest objects and the graph
SCAN_OBJECTS = 500_000  # gc-tracked objects the flat scan reads; a bigger heap is sampled
SWITCH_INTERVAL = 30.0  # other threads stay paused while the heap is read
TOP_HOLDERS = 8
NOISE = 100  # holders 100 times smaller than the biggest are left out


def collect(
    *, level: str, frame: FrameType | None, baseline: Baseline | None,
    time_budget: float | None = None, max_repr: int = DEFAULT_MAX_REPR,
    headroom: int | None = None, traceback: TracebackType | None = None,
) -> dict[str, Any]:
    """What holds the memory and who keeps it alive; never raises (see the module doc).

    ``frame`` is the frame that was running (the signal handler's ``frame``); its
    locals and its callers' are read, isolator's own frames skipped, and nothing is
    kept once this returns. ``time_budget`` None scales it with the heap; ``headroom``
    is the memory left below the cap (None: no cap); ``traceback``, the failure's, gives
    the frames that were running when ``f_back`` cannot (a generator that raised).
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
    enabled = gc.isenabled()
    gc.disable()  # a collection mid-scan would cost seconds on a big heap
    interval, profiler = sys.getswitchinterval(), sys.getprofile()
    sys.setswitchinterval(SWITCH_INTERVAL)
    if type(profiler) in (FunctionType, MethodType):  # a Python profile function: paused
        sys.setprofile(None)
    plan = Plan(time_budget, headroom)
    result["time_budget"] = plan.seconds
    result["budget"] = plan.section()
    sections = Sections(result, Budget(plan.seconds), values=level != "types")
    held: dict[str, Any] = {}  # what refers to the user's objects, dropped in the end
    try:
        _collect(sections, level, frame, baseline, max_repr, held, plan, enabled, traceback)
    except Exception as exc:  # noqa: BLE001 - never raise into the failing task
        result["missing"]["*"] = error_text(exc, sections.values)
    finally:
        for value in held.values():
            if hasattr(value, "release"):
                value.release()
            elif hasattr(value, "clear"):
                value.clear()
        held.clear()
        clear_caches()
        sys.setswitchinterval(interval)
        if type(profiler) in (FunctionType, MethodType):
            sys.setprofile(profiler)
        if enabled:
            gc.enable()
    result["cost"]["rss_after"] = rss_bytes()
    result["elapsed"] = round(time.monotonic() - started, 4)
    return result


def _collect(sections: Sections, level: str, frame: FrameType | None,
             baseline: Baseline | None, max_repr: int, held: dict[str, Any], plan: Plan,
             enabled: bool, traceback: TracebackType | None) -> None:
    budget, values, result = sections.budget, sections.values, sections.result
    modules = module_namespaces()
    skip = ours(set(modules))
    OURS.update(own_caches())
    held["stack"] = stack = Stack()
    OURS.update((id(stack.values), id(stack.names), id(stack.by_id), id(held)))
    if frame is None and traceback is None:
        absent(sections, ("locals",), "no frame was given")
    else:
        sections.run("locals", _locals, stack, (frame, traceback), modules, skip, budget,
                     values, max_repr)
    sections.run("garbage", garbage_section, budget.share(0.15), enabled)
    garbage = (result.get("garbage") or {}).get("bytes", 0)
    namer = Namer(values, max_repr, drop=stack.kept is None)
    named = sections.run("holders", named_section, modules, stack, namer,
                         budget.share(WALK_SHARE), plan, held)
    share = Budget(max(min(budget.left() - budget.seconds * RESERVE,
                           budget.seconds * SCAN_SHARE), 0.0))
    heap: HeapScan | None = sections.run("heap scan", scan, share, OURS | skip, 64,
                                         1, plan.max_seen, SCAN_OBJECTS)
    if baseline is None:
        absent(sections, ("growth",), "no baseline was taken at task start")
    if heap is None:
        why = f"no heap scan: {result['missing'].pop('heap scan', '?')}"
        absent(sections, ("python_heap", "types", "growth"), why)
        return
    held["heap"] = heap
    explained = (named or {}).get("explained", {}).get("bytes", 0)
    sections.run("python_heap", python_heap, heap, baseline, result["cost"]["rss_before"],
                 explained, garbage, cheap=True)
    if named is not None and "python_heap" in result:
        _explained(named, result["python_heap"])
    sections.run("types", types_section, heap, cheap=True)
    if heap.partial:
        absent(sections, ("growth",), f"the heap scan was cut short: {heap.partial}")
        for name in ("python_heap", "types"):
            if name in result:
                result[name]["partial"] = heap.partial
    elif baseline is not None:
        sections.run("growth", growth_section, heap, baseline, cheap=True)
    if named is not None:
        _search_up(sections, heap, stack, modules, namer, skip, held)
        _keep_the_biggest(named)
    heap.release()
    if level != "types" and held.get("containers"):
        from ._backrefs import backrefs_section

        sections.run("backrefs", backrefs_section, held["containers"], named, budget)
    if level == "deep":
        sections.run("heapy", partition, budget, heap.total, plan.memory, heap.objects)


def _keep_the_biggest(section: dict[str, Any], top: int = TOP_HOLDERS) -> None:
    """The few biggest rows; rows a hundred times smaller than the first are noise."""
    rows = sorted(section["holders"], key=lambda row: row["bytes"], reverse=True)
    biggest = rows[0]["bytes"] if rows else 0
    section["holders"] = [row for row in rows[:top] if row["bytes"] * NOISE >= biggest]


def _explained(named: dict[str, Any], python: dict[str, Any]) -> None:
    """How much of the Python heap (and of its growth) the named holders explain."""
    explained = named["explained"]
    explained["python_bytes"] = python.get("python_bytes")
    if python.get("python_bytes"):
        explained["share"] = round(explained["bytes"] / python["python_bytes"], 3)
    grew = (python.get("since_baseline") or {}).get("python_bytes")
    if grew and grew > 0:
        explained["growth_bytes"] = grew
        explained["growth_share"] = round(min(explained["bytes"] / grew, 9.99), 3)


def _search_up(sections: Sections, heap: HeapScan, stack: Stack, modules: dict[int, str],
               namer: Namer, skip: set[int], held: dict[str, Any]) -> None:
    """Holders of the biggest objects no named root explains: chains found upwards."""
    sizes, targets = heap.biggest()
    targets, sizes = unexplained_targets(targets, sizes, held.get("explained_ids", set()))
    held["targets"] = ours(targets)
    if not targets:
        return
    names = {**modules, **{i: name for i, (name, _) in stack.namespaces.items()}}
    graph = Graph(stack, names, ours(heap.parents))
    held["graph"] = ours(graph.nodes)
    ignore = {id(stack.values), id(targets), id(sizes), id(held)}
    found = holders(targets, sizes, graph, ignore, sections.budget, namer, skip)
    graph.nodes.clear()
    section = sections.result.get("holders")
    if section is not None:
        section["holders"].extend(found["holders"])
        section["holders"].sort(key=lambda row: row["bytes"], reverse=True)
        section["targets"] = found["targets"]
        section["objects_searched"] = found["objects_searched"]
        if "partial" in found:
            section["partial"] = found["partial"]


def _locals(stack: Stack, where: tuple[FrameType | None, TracebackType | None],
            modules: dict[int, str], *args: Any) -> dict[str, Any]:
    read_stack(where[0], stack, modules=modules, traceback=where[1])
    threads = read_threads(stack, modules)
    section = locals_section(stack, *args)
    section["threads"] = threads + 1
    return section
