"""How often a report names the holder: tests/'s leak corpus, run in real children.

    python benchmarks/forensics_corpus.py [--rounds N] [--level default|deep] [NAME ...]

Runs every case of ``tests/_corpus.py`` (thirty leaks written as ETL code leaks, each
in an isolated child under a 192 MiB cap, two at a time) ``--rounds`` times and prints,
per case and in all: how often the report named the holder the user wrote, and how
often every check of the corpus passed (the name, the retained size within 25 %, no
object of isolator's named). With ``PYTHONPATH=<another checkout>`` it measures that
checkout's isolator against the same corpus (the "before" of a change).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import _common

_common.setup_path()
sys.path.insert(0, os.path.join(_common.ROOT, "tests"))

import _corpus  # noqa: E402


def one(case: Any) -> tuple[str, bool | None, list[str], float]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        try:
            report = _corpus.run_case(case, folder)
        except BaseException as exc:  # a crash of the run is a miss, with its reason
            return case.scenario, False, [f"{type(exc).__name__}: {exc}"[:200]], 0.0
        heap = report.sections.get("heap") or {}
        named = _corpus.named_holder(case, heap) is not None if case.kind == "holder" else None
        return case.scenario, named, _corpus.problems(case, report), \
            time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--level", choices=["default", "deep"], default=None,
                        help="run every case at this level (default: each case's own)")
    parser.add_argument("names", nargs="*", help="only the cases whose name contains one")
    args = parser.parse_args()
    _common.header("forensics corpus")
    cases = [case for case in _corpus.CASES
             if not args.names or any(name in case.scenario for name in args.names)]
    if args.level:
        cases = [dataclasses.replace(case, level=args.level) if case.kind != "native"
                 else case for case in cases]
    results: dict[str, list[tuple[bool | None, list[str]]]] = {}
    with ThreadPoolExecutor(2) as pool:
        for _ in range(args.rounds):
            for name, named, problems, seconds in pool.map(one, cases):
                results.setdefault(name, []).append((named, problems))
                mark = "ok" if not problems else "; ".join(problems)[:160]
                print(f"  {seconds:5.1f} s  {name}: {mark}", flush=True)
    rows = [[name, sum(1 for named, _ in runs if named) if runs[0][0] is not None else "-",
             sum(1 for _, problems in runs if not problems), len(runs)]
            for name, runs in results.items()]
    print(_common.table(["case", "holder named", "every check passed", "runs"], rows))
    holder_runs = [run for runs in results.values() for run in runs if run[0] is not None]
    all_runs = [run for runs in results.values() for run in runs]
    print(f"holder named: {sum(1 for named, _ in holder_runs if named)} of {len(holder_runs)}; "
          f"every check passed: {sum(1 for _, p in all_runs if not p)} of {len(all_runs)}")


if __name__ == "__main__":
    main()
