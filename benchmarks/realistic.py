"""Real work against the pools it replaces: a numpy batch, per-call cost, a big tiny map.

    python benchmarks/realistic.py [--quick] [--rounds N]

1. The batch: 200 CSV files of 3,000 x 4 numbers, a worker that loads each with
   ``np.loadtxt`` and takes an ``np.fft.rfft`` of a column, defined in this script
   (``__main__``, as users write scripts) and imported from a module. Each pool runs the
   whole batch in a fresh interpreter, from making the pool to its last result, as a
   user's batch does: ``Pool(2)``, ``ProcessPoolExecutor(2)``, loky and pebble against
   ``IsolatedPool(2, max_mem="300MB")`` and ``IsolatedExecutor(2, max_mem="300MB")``,
   at their defaults (a fresh process per unit) and reusing workers.
2. ``@isolated`` per call of the numpy worker defined in ``__main__``, warm, against the
   floor: ``os.fork()`` from a caller that has numpy, the result back through a pipe.
3. ``map`` of 200,000 ``x * x`` at default settings, the function in ``__main__`` and
   in a module, against ``Pool(2).map``, warm, alternating rounds.

Ratios are against ``Pool(2)`` measured in the same run; rounds alternate, medians are
kept (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time

import _common

_common.setup_path()

import _realistic_workloads as wl  # noqa: E402

FILES = os.path.join(tempfile.gettempdir(), "isolator-realistic-batch")


def summarise(path: str) -> float:
    """The batch's worker, as a script defines it (``__main__``)."""
    import numpy as np

    data = np.loadtxt(path, delimiter=",")
    spectrum = np.fft.rfft(data[:, 0])
    return float(np.abs(spectrum[1:50]).sum())


def square(x: int) -> int:
    return x * x


# -- 1. the batch, one pool per fresh interpreter --------------------------------------

def _batch(pool_name: str, kind: str, paths: list[str]) -> list[float]:
    fn = summarise if kind == "main" else wl.summarise
    if pool_name == "Pool(2)":
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(2) as pool:
            return pool.map(fn, paths)
    if pool_name == "ProcessPoolExecutor(2)":
        import concurrent.futures as cf

        with cf.ProcessPoolExecutor(2) as ex:
            return list(ex.map(fn, paths))
    if pool_name == "loky(2)":
        from loky import get_reusable_executor

        return list(get_reusable_executor(2).map(fn, paths))
    if pool_name == "pebble ProcessPool(2)":
        from pebble import ProcessPool

        with ProcessPool(2) as pp:
            return list(pp.map(fn, paths).result())
    from isolator import IsolatedExecutor, IsolatedPool

    if pool_name == "IsolatedPool(2)":
        with IsolatedPool(2, max_mem="300MB") as ip:
            return ip.map(fn, paths)
    if pool_name == "IsolatedExecutor(2)":
        with IsolatedExecutor(2, max_mem="300MB") as ie:
            return list(ie.map(fn, paths))
    if pool_name == "IsolatedPool(2), reused":
        with IsolatedPool(2, None, (), None, max_mem="300MB") as ip:
            return ip.map(fn, paths)
    if pool_name == "IsolatedExecutor(2), reused":
        with IsolatedExecutor(2, max_mem="300MB", max_tasks_per_child=None) as ie:
            return list(ie.map(fn, paths))
    raise ValueError(pool_name)


BATCH_POOLS = ["Pool(2)", "ProcessPoolExecutor(2)", "loky(2)", "pebble ProcessPool(2)",
               "IsolatedPool(2)", "IsolatedExecutor(2)", "IsolatedPool(2), reused",
               "IsolatedExecutor(2), reused"]


def _run_one(pool_name: str, kind: str, count: int) -> float:
    """In a fresh interpreter: the seconds of the whole batch."""
    command = [sys.executable, os.path.abspath(__file__), "--one", pool_name, kind,
               str(count)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def batch(rounds: int, count: int) -> list[list[object]]:
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for kind in ("main", "module"):
            for pool_name in BATCH_POOLS:
                times.setdefault((pool_name, kind), []).append(_run_one(pool_name, kind, count))
    rows = []
    for kind in ("main", "module"):
        floor = statistics.median(times[("Pool(2)", kind)])
        for pool_name in BATCH_POOLS:
            seconds = statistics.median(times[(pool_name, kind)])
            rows.append([f"{pool_name}", "__main__" if kind == "main" else "module",
                         f"{seconds:.2f}", f"{seconds / floor:.2f}x"])
    return rows


# -- 2. per call, warm ---------------------------------------------------------------------

def _fork_floor(path: str) -> float:
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        os.write(writer, pickle.dumps(summarise(path)))
        os._exit(0)
    os.close(writer)
    chunks = []
    while chunk := os.read(reader, 65536):
        chunks.append(chunk)
    os.close(reader)
    os.waitpid(pid, 0)
    return float(pickle.loads(b"".join(chunks)))


def per_call(calls: int, path: str) -> list[list[object]]:
    import numpy  # noqa: F401 - the floor's caller has numpy, as a warm zygote has

    from isolator import isolated

    run = isolated(max_mem="300MB")(summarise)
    for _ in range(5):  # warm: the zygote has learned numpy from the first children
        run(path)
        _fork_floor(path)
    ours: list[float] = []
    floor: list[float] = []
    for _ in range(calls):
        for fn, into in ((run, ours), (_fork_floor, floor)):
            started = time.perf_counter()
            fn(path)
            into.append(time.perf_counter() - started)
    f, o = statistics.median(floor), statistics.median(ours)
    return [["fork + pipe floor", f"{f * 1000:.1f}", "1.00x"],
            ["@isolated(max_mem='300MB'), __main__ function", f"{o * 1000:.1f}",
             f"{o / f:.2f}x"]]


# -- 3. a big map of tiny items ------------------------------------------------------------

def tiny_map(rounds: int, n: int) -> list[list[object]]:
    import multiprocessing

    from isolator import IsolatedPool

    items = list(range(n))
    rates: dict[str, list[float]] = {}
    with IsolatedPool(2) as ours, multiprocessing.get_context("fork").Pool(2) as theirs:
        for pool, fn in ((ours, square), (ours, wl.square), (theirs, square)):
            pool.map(fn, items[:1000])
        for _ in range(rounds):
            for label, pool, fn in (("IsolatedPool(2), __main__ function", ours, square),
                                    ("IsolatedPool(2), module function", ours, wl.square),
                                    ("Pool(2)", theirs, square)):
                started = time.perf_counter()
                assert pool.map(fn, items)[-1] == (n - 1) ** 2
                rates.setdefault(label, []).append(time.perf_counter() - started)
    base = statistics.median(rates["Pool(2)"])
    return [[label, f"{statistics.median(t) * 1000:.0f}", f"{base / statistics.median(t):.2f}x"]
            for label, t in rates.items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer files and rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", nargs=3, metavar=("POOL", "KIND", "COUNT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        pool_name, kind, count = args.one
        paths = wl.file_paths(FILES, int(count))  # made already: the caller imports nothing
        started = time.perf_counter()
        results = _batch(pool_name, kind, paths)
        assert len(results) == len(paths)
        print(f"{time.perf_counter() - started:.4f}")
        return 0
    count, rounds = (40, 1) if args.quick else (200, args.rounds)
    subprocess.run([sys.executable, "-c", "import sys; sys.path[:0] = sys.argv[1:2]; "
                    "import _realistic_workloads as w; w.make_files(sys.argv[2])",
                    os.path.dirname(os.path.abspath(__file__)), FILES], check=True)
    paths = wl.file_paths(FILES)
    print("realistic")
    print(_common.machine())
    print(f"isolator sources {_common.isolator_digest()}  at {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"\nthe batch: {count} CSV files (3,000 x 4), np.loadtxt + np.fft.rfft, 2 workers, "
          f"each pool in a fresh interpreter, median of {rounds}")
    print(_common.table(["pool", "worker", "seconds", "vs Pool(2)"], batch(rounds, count)))
    print("\n@isolated per call, warm: ms a call, median of alternating calls")
    print(_common.table(["method", "ms/call", "vs floor"], per_call(20 if args.quick else 60,
                                                                      paths[0])))
    n = 50_000 if args.quick else 200_000
    print(f"\nmap of {n:,} x*x at default settings: ms a map, median of alternating rounds")
    print(_common.table(["pool", "ms/map", "Pool(2) / this"], tiny_map(3 if args.quick else 7, n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
