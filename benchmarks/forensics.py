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
    plain(1000), deep(1000)
    ratios = []
    for _ in range(rounds):
        a, b = plain(n), deep(n)
        ratios.append(b / a)
    ratio = statistics.median(ratios)
    print(_common.table(["forensics='deep' over 'off' (median of pairs)", "rounds", "verdict"],
                        [[f"{ratio:.2f}x", rounds, _common.verdict(ratio <= 1.5)]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    _common.header("forensics")
    walk_cost(100_000 if args.quick else 1_000_000)
    tracking_cost(100_000 if args.quick else 1_000_000, 3 if args.quick else 9)


if __name__ == "__main__":
    main()
