"""The forensics' parts, in-process: retained sizes, reprs that cannot explode, budgets,
garbage, heapy's sample mode and the objgraph drawing (the corpus in test_corpus.py
runs them in real children)."""

from __future__ import annotations

import asyncio
import gc
import io
import itertools
import sys
import time
from collections.abc import Iterator
from typing import Any

import _leaks
import pytest
from leakcorpus._data import footprint, records

from isolator import forensics
from isolator.forensics import _backrefs, _budget, _common, _heapy, _holders, _retained

MiB = 1 << 20


@pytest.fixture(autouse=True)
def _free_the_leaks() -> Iterator[None]:
    yield
    _leaks.reset()
    _HELD.clear()
    gc.collect()


_HELD: dict[str, Any] = {}


def _walker() -> _retained.Walker:
    return _retained.Walker(set(_holders.module_namespaces()), _common.Budget(30), 10**6)


def _rows(n: int) -> tuple[list[dict[str, Any]], int]:
    rows = list(itertools.islice(records(), n))
    return rows, sum(map(footprint, rows)) + sys.getsizeof(rows)


@pytest.mark.parametrize("n", [1000, 300_000])  # read in full; sampled, levels and items
def test_retained_size_of_rows(n: int) -> None:
    rows, truth = _rows(n)
    found = _walker().walk(rows, fresh=True)
    assert found.bytes == pytest.approx(truth, rel=0.05)
    assert found.estimated == (n > _retained.PIECE_CAP)


def test_a_cache_whose_values_hold_their_keys_is_counted_once() -> None:
    cache = {}
    for row in itertools.islice(records(), 200_000):
        key = f"{row['id']}-{row['email']}"
        cache[key] = {"raw": key, "city": row["city"] + "!"}
    truth = sys.getsizeof(cache) + sum(sys.getsizeof(k) + sys.getsizeof(v)
                                       + sys.getsizeof(v["city"]) for k, v in cache.items())
    assert _walker().walk(cache, fresh=True).bytes == pytest.approx(truth, rel=0.1)


def test_what_c_objects_hold_is_counted() -> None:
    text = io.StringIO()
    for _ in range(10_000):
        text.write("x" * 100)
    found = _walker().walk([text], fresh=True)
    assert found.text == 1_000_000
    assert found.bytes >= 1_000_000


def test_a_linked_structure_deeper_than_the_walk_is_extrapolated() -> None:
    rows, copy = itertools.tee(records())
    truth = sum(footprint(row) for row in itertools.islice(rows, 150_000))
    found = _walker().walk(copy, fresh=True)
    assert found.bytes == pytest.approx(truth, rel=0.25)
    assert found.cut is not None and "chain" in found.cut


def test_a_repr_as_big_as_the_data_is_not_called() -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(10_000):
        queue.put_nowait(i)
    assert _common.safe_repr(queue, 80).endswith("too big to repr>")
    queue.__dict__  # 3.11 makes the dict exist now: its values must be read
    assert _common.safe_repr(queue, 80).endswith("too big to repr>")
    small: asyncio.Queue[int] = asyncio.Queue()
    assert _common.safe_repr(small, 80).startswith("<Queue at 0x")  # its own repr


def test_the_budget_counts_cpu_seconds() -> None:
    budget = _common.Budget(0.5)
    time.sleep(0.6)  # the machine was busy elsewhere: no CPU spent here
    assert not budget.expired()
    busy = _common.Budget(0.05)
    end = time.process_time() + 0.1
    while time.process_time() < end:
        pass
    assert busy.expired()


def test_the_auto_budget_scales_with_heap_and_headroom() -> None:
    assert _budget.auto_seconds(10_000) == _budget.BASE_SECONDS
    assert _budget.auto_seconds(5_000_000) == 10.0
    assert _budget.auto_seconds(10**9) == _budget.MAX_SECONDS
    assert _budget.auto_memory(24 * MiB) == 12 * MiB
    plan = _budget.Plan(None, 24 * MiB)
    assert plan.section()["memory"] == 12 * MiB and plan.max_seen >= _budget.MIN_SEEN
    report = forensics.collect(level="types", frame=None, baseline=None, headroom=24 * MiB)
    assert report["budget"]["memory"] == 12 * MiB
    assert report["time_budget"] == report["budget"]["seconds"] >= _budget.BASE_SECONDS


class _Node:
    def __init__(self, parent: _Node | None, payload: str) -> None:
        self.parent, self.payload = parent, payload
        self.children: list[_Node] = []
        if parent is not None:
            parent.children.append(self)


def test_garbage_is_counted_and_freed() -> None:
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        made = 0
        for i in range(200):
            root = _Node(None, "")
            for j in range(100):
                node = _Node(root, f"row {i} {j} " + "x" * 200)
                made += sys.getsizeof(node) + 24 + sys.getsizeof(node.payload) \
                    + sys.getsizeof(node.children)
            del root, node
        report = forensics.collect(level="types", frame=None, baseline=None)
    finally:
        if enabled:
            gc.enable()
    garbage = report["garbage"]
    assert garbage["gc_enabled"] is False and garbage["collected"]
    assert garbage["bytes"] == pytest.approx(made, rel=0.25)
    assert "test_forensics_parts._Node" in {row["type"] for row in garbage["types"]}
    assert gc.collect() < 100  # this report's collection freed them already


def test_heapy_runs_on_a_sample_when_the_headroom_is_small() -> None:
    pytest.importorskip("guppy")
    _HELD["rows"] = _rows(100_000)[0]
    section = _heapy.partition(_common.Budget(30), len(gc.get_objects()), memory=24 * MiB,
                               objects=2_000_000)
    assert section["mode"] == "sample" and section["by"] == "type"
    assert section["sample"] > 1 and "full partition" in section["why"]
    assert {"kind", "count", "bytes"} == set(section["rows"][0])
    assert "dict" in {row["kind"] for row in section["rows"]}


def test_heapy_says_why_it_could_not_run() -> None:
    pytest.importorskip("guppy")
    with pytest.raises(_common.Skipped, match="too little even for a sample"):
        _heapy.partition(_common.Budget(30), 1_000_000, memory=1 * MiB, objects=3_000_000)


def test_objgraph_draws_the_holders_back_references() -> None:
    pytest.importorskip("objgraph")
    report = _leaks.module_dict_cache(
        lambda: forensics.collect(level="default", frame=sys._getframe(1), baseline=None))
    graph = report["backrefs"]
    assert graph["dot"].startswith("digraph ObjectGraph")
    assert "_leaks._CACHE" in graph["dot"]  # the node is labelled as the report names it
    assert graph["holders"][0] == "_leaks._CACHE"
    assert "isolator" not in graph["dot"].replace("isolator/", "")
    assert graph["nodes"] <= _backrefs.MAX_NODES


def test_objgraph_is_not_asked_at_level_types() -> None:
    report = _leaks.module_dict_cache(
        lambda: forensics.collect(level="types", frame=sys._getframe(1), baseline=None))
    assert "backrefs" not in report and "backrefs" not in report["missing"]


def test_a_walk_out_of_time_keeps_what_it_found_and_says_what_it_did_not_walk() -> None:
    from isolator.forensics import _edges, _named, _roots, _stack

    _HELD["rows"] = _rows(20_000)[0]
    modules = _holders.module_namespaces()
    roots = _roots.collect_roots(modules, _stack.Stack())
    walker = _retained.Walker(set(modules), _common.Budget(30), 10**6)
    found, coverage = _named.walk_roots(roots, walker, _common.Budget(30))
    assert found[0].root.label == "test_forensics_parts._HELD"
    assert coverage["walked"] == coverage["roots"] and "not_walked" not in coverage
    spent = _common.Budget(0.0)
    rows, _ = _named.holder_rows(found, walker, _edges.Namer(True, 80, True), spent)
    assert rows[0]["path"] == "test_forensics_parts._HELD"  # not explained further, kept
    late = _retained.Walker(set(modules), spent, 10**6)
    nothing, coverage = _named.walk_roots(roots, late, spent)
    assert nothing == [] and coverage["walked"] == 0
    assert coverage["not_walked"].startswith(f"{len(roots)} of {len(roots)} named roots")
