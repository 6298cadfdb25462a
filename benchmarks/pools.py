"""Pools: fresh process per task, reuse throughput, and memory after fragmenting tasks.

Every peer is measured in the same run; the ratios are what to compare.

    python benchmarks/pools.py [--quick]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable

import _common

_common.setup_path()

import _pool_workloads as wl  # noqa: E402
import pebble  # noqa: E402

from isolator import IsolatedExecutor, IsolatedPool, recycle_on_growth  # noqa: E402

FORK = multiprocessing.get_context("fork")
FORKSERVER = multiprocessing.get_context("forkserver")


def per_second(n: int, run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return n / (time.perf_counter() - start)


def fresh_per_task(n: int) -> dict[str, float]:
    """Tasks per second, 2 workers, a new process for every no-op task."""
    items = list(range(n))
    rates = {}
    with IsolatedExecutor(2) as ex:
        list(ex.map(wl.noop, range(4)))
        rates["IsolatedExecutor(2)"] = per_second(n, lambda: list(ex.map(wl.noop, items)))
    with FORK.Pool(2, maxtasksperchild=1) as pool:
        rates["Pool(fork, maxtasksperchild=1)"] = per_second(
            n, lambda: pool.map(wl.noop, items, chunksize=1))
    with cf.ProcessPoolExecutor(2, mp_context=FORKSERVER, max_tasks_per_child=1) as ex:
        list(ex.map(wl.noop, range(2)))
        rates["ProcessPoolExecutor(forkserver, max_tasks_per_child=1)"] = per_second(
            n, lambda: list(ex.map(wl.noop, items)))
    with pebble.ProcessPool(2, max_tasks=1, context=FORK) as pool:
        rates["pebble ProcessPool(max_tasks=1)"] = per_second(
            n, lambda: list(pool.map(wl.noop, items).result()))
    return rates


def big_caller(n: int) -> dict[str, float]:
    """The same with the caller holding 1 GiB: forking from it is what gets slow."""
    ballast = bytearray(b"\x01") * (1 << 30)
    items = list(range(n))
    rates = {}
    with IsolatedExecutor(2) as ex:
        rates["IsolatedExecutor(2)"] = per_second(n, lambda: list(ex.map(wl.noop, items)))
    with FORK.Pool(2, maxtasksperchild=1) as pool:
        rates["Pool(fork, maxtasksperchild=1)"] = per_second(
            n, lambda: pool.map(wl.noop, items, chunksize=1))
    del ballast
    return rates


def reuse_throughput(n_map: int, rounds: int = 7) -> dict[str, float]:
    """Reused workers: a big map at automatic chunksize, the median of ``rounds`` maps
    (one takes well under a second: a single one is at the mercy of the machine)."""
    items = list(range(n_map))
    rates: dict[str, list[float]] = {"IsolatedPool.map (reuse)": [], "Pool.map": []}
    # Both pools get their workers started first: Pool starts them in its constructor,
    # IsolatedPool on first use. Their rounds alternate, so drifts hit both alike.
    with IsolatedPool(2, maxtasksperchild=10**9) as ours, FORK.Pool(2) as theirs:
        ours.map(wl.square, range(4), 1)
        theirs.map(wl.square, range(4), 1)
        for _ in range(rounds):
            for name, pool in (("IsolatedPool.map (reuse)", ours), ("Pool.map", theirs)):
                rates[name].append(per_second(n_map, lambda: pool.map(wl.square, items)))
    return {name: statistics.median(values) for name, values in rates.items()}


def per_task(n: int, rounds: int = 5) -> dict[str, float]:
    """One task per unit of work, reused workers: ``submit`` each, and ``map`` with the
    executors' default chunksize of 1. Every executor runs a few tasks first, so its
    workers are up (and isolator has seen how long its tasks take). All of them stay open
    and their rounds alternate, so a drift of the machine hits them alike; the median of
    ``rounds`` is kept."""
    small = range(n)
    executors: dict[str, cf.Executor] = {
        "IsolatedExecutor (reuse)": IsolatedExecutor(2, max_tasks_per_child=10**9),
        "ProcessPoolExecutor": cf.ProcessPoolExecutor(2, mp_context=FORK),
    }
    try:
        from loky import get_reusable_executor

        executors["loky"] = get_reusable_executor(2)
    except ImportError:
        pass
    rates: dict[str, list[float]] = {}
    for ex in executors.values():
        list(ex.map(wl.square, range(50)))
    for _ in range(rounds):
        for label, ex in executors.items():
            rates.setdefault(f"{label}.submit per task", []).append(per_second(
                n, lambda: [f.result() for f in [ex.submit(wl.square, x) for x in small]]))
            rates.setdefault(f"{label}.map per task", []).append(
                per_second(n, lambda: list(ex.map(wl.square, small))))
    for ex in executors.values():
        ex.shutdown(wait=True)
    return {label: statistics.median(values) for label, values in rates.items()}


def memory_after_fragmenting(tasks: int) -> dict[str, float]:
    """A worker's RSS after ``tasks`` fragmenting tasks, over a fresh worker's RSS."""
    ratios = {}
    with IsolatedExecutor(1, max_tasks_per_child=10**9,
                          recycle=recycle_on_growth("20MiB")) as ex:
        fresh = ex.submit(wl.rss).result()
        for _ in range(tasks):
            ex.submit(wl.fragment).result()
        ratios["IsolatedExecutor, reuse + recycle_on_growth('20MiB')"] = \
            ex.submit(wl.rss).result() / fresh
    with FORK.Pool(1) as fresh_pool:
        fresh = fresh_pool.apply(wl.rss)
    with FORK.Pool(1) as pool:
        for _ in range(tasks):
            pool.apply(wl.fragment)
        ratios["multiprocessing.Pool(1)"] = pool.apply(wl.rss) / fresh
    with cf.ProcessPoolExecutor(1, mp_context=FORK) as fresh_ex:
        fresh = fresh_ex.submit(wl.rss).result()
    with cf.ProcessPoolExecutor(1, mp_context=FORK) as ex:
        for _ in range(tasks):
            ex.submit(wl.fragment).result()
        ratios["ProcessPoolExecutor(1)"] = ex.submit(wl.rss).result() / fresh
    return ratios


def show(title: str, rates: dict[str, float], unit: str, ours: str) -> None:
    print(f"\n{title}")
    base = rates[ours]
    print(_common.table([title.split(":")[0], unit, f"{ours} / this"],
                        [[k, f"{v:,.1f}", f"{base / v:.2f}x"] for k, v in rates.items()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    _common.header("pools")
    n = 100 if args.quick else 600
    show("fresh process per task, 2 workers: tasks/s", fresh_per_task(n), "tasks/s",
         "IsolatedExecutor(2)")
    show("caller holding 1 GiB: tasks/s", big_caller(n // 2), "tasks/s", "IsolatedExecutor(2)")
    show("reuse mode, map: tasks/s", reuse_throughput(20_000 if args.quick else 200_000),
         "tasks/s", "IsolatedPool.map (reuse)")
    rates = per_task(2_000 if args.quick else 20_000, 1 if args.quick else 5)
    show("reuse mode, one task per unit: tasks/s", rates, "tasks/s",
         "IsolatedExecutor (reuse).submit per task")
    for how in ("submit", "map"):
        ours = rates[f"IsolatedExecutor (reuse).{how} per task"]
        peers = {k: v for k, v in rates.items() if k.endswith(f".{how} per task")
                 and not k.startswith("Isolated")}
        best = max(peers, key=peers.__getitem__)
        print(f"{how} per task: {ours / peers[best]:.2f}x the fastest peer ({best})")
    ratios = memory_after_fragmenting(5 if args.quick else 50)
    print("\nworker RSS after fragmenting tasks, over a fresh worker's")
    print(_common.table(["pool", "RSS / fresh"], [[k, f"{v:.2f}x"] for k, v in ratios.items()]))
    sys.stdout.flush()
    os._exit(0)  # loky keeps its executor's workers alive until exit otherwise


if __name__ == "__main__":
    main()
