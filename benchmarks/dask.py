"""isolated tasks on a Dask cluster against plain Dask, on the same cluster, in one run.

    python benchmarks/dask.py [--quick] [--rounds N]

A ``LocalCluster`` on 127.0.0.1 (2 workers x 1 thread, processes, MEM 1 GiB each, no
dashboard) runs, in alternating rounds:

1. 1,000 no-op tasks: ``client.submit`` of each, then ``client.gather``, against
   ``DaskExecutor(client, max_mem="100MB").map``: the per-task overhead of a fresh
   capped child on the worker, its MEM request and isolator's outcome envelope.
2. The realistic batch (benchmarks/_realistic_workloads.py: 200 CSV files of 3,000 x 4
   numbers, ``np.loadtxt`` + ``np.fft.rfft`` each, the worker imported from a module)
   the same two ways, ``max_mem="300MB"``, a task per file. Goal: at most 1.5x plain
   Dask's wall time. Then with ``map(chunksize=10)`` (a child per ten files) against
   plain Dask's task per file; and, for scale, what one call of the worker and one
   ``@isolated`` call of it cost here without Dask.

Medians of the rounds are printed with the ratios and the per-task overhead (the
difference of the two medians, per task). The first round of each warms up (workers
import numpy, the zygotes learn it) and is not counted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

# This file's name is dask.py: keep its folder behind site-packages, so that
# ``import dask`` (distributed does it) finds the real package, not this script.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE] + [HERE]
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import _common  # noqa: E402
import _realistic_workloads as wl  # noqa: E402

FILES = os.path.join(tempfile.gettempdir(), "isolator-realistic-batch")
GOAL = 1.5


def plain(client, fn, items) -> float:
    start = time.perf_counter()
    futures = [client.submit(fn, item, pure=False) for item in items]
    client.gather(futures)
    return time.perf_counter() - start


def isolated_run(executor, fn, items, chunksize: int = 1) -> float:
    start = time.perf_counter()
    list(executor.map(fn, items, chunksize=chunksize))
    return time.perf_counter() - start


def measure(client, executor, fn, items, rounds: int, chunksize: int = 1
            ) -> tuple[float, float]:
    plain(client, fn, items[:20])  # warm: imports on the workers, zygotes learn them
    isolated_run(executor, fn, items[:20], chunksize)
    ours, theirs = [], []
    for i in range(rounds):
        if i % 2:
            ours.append(isolated_run(executor, fn, items, chunksize))
            theirs.append(plain(client, fn, items))
        else:
            theirs.append(plain(client, fn, items))
            ours.append(isolated_run(executor, fn, items, chunksize))
    return _common.median(theirs), _common.median(ours)


def floor(paths: list[str]) -> tuple[float, float]:
    """Here, without Dask: one call of the worker, and one ``@isolated`` call of it
    (a fresh child of a zygote holding numpy), in ms."""
    from isolator import isolated

    capped = isolated(max_mem="300MB", preload=["numpy"])(wl.summarise)
    for path in paths[:10]:
        wl.summarise(path)
        capped(path)
    start = time.perf_counter()
    for path in paths[:100]:
        wl.summarise(path)
    direct = (time.perf_counter() - start) * 10
    start = time.perf_counter()
    for path in paths[:100]:
        capped(path)
    return direct, (time.perf_counter() - start) * 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer tasks and rounds")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    from isolator.dask import DaskExecutor

    rounds = 1 if args.quick else args.rounds
    noops = list(range(200 if args.quick else 1000))
    paths = wl.make_files(FILES)[: 50 if args.quick else 200]
    print(_common.machine())
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, resources={"MEM": 1 << 30},
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                      silence_logs=40) as cluster, Client(cluster) as client:
        rows = []
        with DaskExecutor(client, max_mem="100MB") as ex:
            base, ours = measure(client, ex, wl.noop, noops, rounds)
        rows.append(["no-op", len(noops), base, ours])
        with DaskExecutor(client, max_mem="300MB", preload=["numpy"]) as ex:
            base, ours = measure(client, ex, wl.summarise, paths, rounds)
            rows.append(["realistic batch", len(paths), base, ours])
            base, ours = measure(client, ex, wl.summarise, paths, rounds, chunksize=10)
            rows.append(["realistic batch, chunksize=10", len(paths), base, ours])
    table = [[name, n, f"{b:.2f} s", f"{o:.2f} s", f"{o / b:.2f}x",
              f"{(o - b) / n * 1000:.1f} ms"] for name, n, b, o in rows]
    print(_common.table(["workload", "items", "plain Dask", "DaskExecutor", "ratio",
                         "overhead per item"], table))
    direct, capped = floor(paths)
    print(f"without Dask, here: one call of the worker {direct:.1f} ms, one @isolated call "
          f"of it {capped:.1f} ms (a fresh child of a zygote holding numpy)")
    ratio = rows[1][3] / rows[1][2]
    verdict = "MET" if ratio <= GOAL else "NOT MET"
    print(f"goal: the realistic batch (a task per file) at most {GOAL}x plain Dask: "
          f"{ratio:.2f}x, {verdict}")


if __name__ == "__main__":
    main()
