"""Forensics: what the default report costs on a big heap, and what deep tracking costs.

    python benchmarks/forensics.py [--quick]

1. Time (CPU and wall) and extra peak memory of one heap walk (the child's part of a
   report) on heaps of 1 M and 3 M gc-tracked objects, most of them leaked into
   ``_forensics_workloads._LEAK``, with 32 MiB of headroom; whether the report names
   that holder; heapy's full partition of the same heap as the peer (1 M only). Goal
   for the default level at 1 M objects: <= 2 s and <= 32 MiB, holder found.
2. Slowdown of an allocating task under forensics="deep" (memray tracking the whole
   task) against the same task with forensics off, both in isolated children, in
   alternating pairs. Goal: <= 1.5x (memray alone measured 1.42x in FINDINGS).
"""

from __future__ import annotations

import argparse
import statistics

import _common

_common.setup_path()

import _forensics_workloads as wl  # noqa: E402

from isolator import isolated  # noqa: E402

MiB = 1 << 20


HEADROOM = 32 * MiB
LEAK = "_forensics_workloads._LEAK"


def walk_cost(sizes: list[int], peer: bool) -> None:
    rows = []
    found: dict[int, dict[str, object]] = {}
    for objects in sizes:
        for level in ("types", "default"):
            r = isolated(wl.time_collect)(objects, level, HEADROOM)
            named = r["holder"] == LEAK
            found[objects] = r if level == "default" else found.get(objects, r)
            rows.append([level, f"{r['tracked']:,}", f"{r['cpu']:.2f} s", f"{r['wall']:.2f} s",
                         f"{r['extra'] / MiB:.1f} MiB", f"yes (row {r['rank']})" if named else f"no: {r['holder']}",
                         f"{r['retained'] / MiB:.0f} of {r['python'] / MiB:.0f} MiB",
                         ", ".join(r["missing"]) or "-"])
        if peer and objects == sizes[0]:
            h = isolated(wl.time_heapy)(objects)
            rows.append(["heapy heap() (peer)", f"{found[objects]['tracked']:,}",
                         f"{h['cpu']:.2f} s", f"{h['wall']:.2f} s",
                         f"{h['extra'] / MiB:.1f} MiB", "-", "-", "-"])
    print(_common.table(["level", "gc-tracked objects", "CPU", "wall", "extra peak RSS",
                         f"names {LEAK}", "it retains, of the Python heap",
                         "sections missing"], rows))
    first = found[sizes[0]]
    ok = first["cpu"] <= 2.0 and first["extra"] <= HEADROOM and first["holder"] == LEAK
    print(f"goal: default level on {sizes[0]:,} objects <= 2 s and <= 32 MiB with the holder "
          f"found -> {first['cpu']:.2f} s CPU ({first['wall']:.2f} s wall), "
          f"{first['extra'] / MiB:.1f} MiB: {_common.verdict(ok)}")


def tracking_cost(n: int, rounds: int) -> None:
    plain = isolated(max_mem="4GiB", forensics="off")(wl.busy)
    deep = isolated(max_mem="4GiB", forensics="deep")(wl.busy)
    memray_alone = isolated(max_mem="4GiB", forensics="off")(wl.busy_under_memray)
    plain(1000), deep(1000), memray_alone(1000)
    deep_ratios, memray_ratios = [], []
    for _ in range(rounds):
        a, b, c = plain(n), deep(n), memray_alone(n)
        deep_ratios.append(b / a)
        memray_ratios.append(c / a)
    deep_ratio = statistics.median(deep_ratios)
    memray_ratio = statistics.median(memray_ratios)
    print(_common.table(
        ["slowdown over forensics='off' (median of rounds)", "ratio"],
        [["forensics='deep' (isolator + memray)", f"{deep_ratio:.2f}x"],
         ["memray alone on the same task (the peer)", f"{memray_ratio:.2f}x"],
         ["isolator's share: deep / memray alone", f"{deep_ratio / memray_ratio:.2f}x"]]))
    print(f"goal: <= 1.5x (FINDINGS: memray alone 1.42x on its workload) -> "
          f"{_common.verdict(deep_ratio <= 1.5)} on this allocation-heavy task; isolator adds "
          f"{deep_ratio / memray_ratio:.2f}x to what memray itself costs here")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    _common.header("forensics")
    walk_cost([100_000] if args.quick else [1_000_000, 3_000_000], peer=not args.quick)
    tracking_cost(100_000 if args.quick else 1_000_000, 3 if args.quick else 9)


if __name__ == "__main__":
    main()
