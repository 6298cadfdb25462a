"""Forensics: what the default report costs on a big heap, and what deep tracking costs.

    python benchmarks/forensics.py [--quick]

1. Time and extra memory of one heap walk (the child's part of a report) on a heap of
   about 1 M objects, per level. Goal for the default level: <= 2 s and <= 32 MiB.
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


def walk_cost(objects: int) -> None:
    rows = []
    for level in ("types", "default"):
        r = isolated(wl.time_collect)(objects, level)
        rows.append([level, f"{objects:,}", f"{r['seconds']:.2f} s",
                     f"{r['extra'] / MiB:.1f} MiB", int(r["missing"])])
    print(_common.table(["level", "objects", "time", "extra RSS", "sections missing"], rows))
    default = rows[1]
    print(f"goal: default level <= 2 s and <= 32 MiB -> {default[2]}, {default[3]}")


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
    walk_cost(100_000 if args.quick else 1_000_000)
    tracking_cost(100_000 if args.quick else 1_000_000, 3 if args.quick else 9)


if __name__ == "__main__":
    main()
