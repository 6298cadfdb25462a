"""How far past a 256 MiB cap a runaway task gets before isolator stops it.

Four workloads each try to allocate 1 GiB (4x the cap) in a child under
``@isolated(max_mem="256MiB")`` (soft limit at the default 224 MiB):

* py-chunks    Python objects: a list of bytearray(64 KiB) chunks
* py-small     Python objects: many small tuples (float, str) in a list
* numpy-ones   one np.ones(1 GiB / 8) call: the fill runs in C without a bytecode boundary
* ctypes-C     libc malloc + memset of 64 MiB blocks through ctypes.PyDLL (GIL held)

For every run the benchmark records ``MemoryLimitExceeded.kind`` and ``peak - limit``
(the overshoot isolator itself reports; ``peak`` is the highest RssAnon+RssShmem its
sampler saw, or the child's own reading at the soft limit, whichever is higher). As an
independent cross-check each child also writes, to a file page this process reads after
the child is gone, the highest RSS it saw itself (read at its own bytecode boundaries,
so it cannot see inside one long C call) -- a lower bound of the true peak.

``--busy-caller`` runs the same while a thread of this process sorts a 3-million-item
list over and over (one C call holding the GIL for about 0.3 s at a time), as a caller
that merges results while its tasks run does: the cap must hold just the same.

    python benchmarks/overshoot.py [--quick] [-r REPEATS] [--busy-caller]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

import _common

_common.setup_path()

import _bench_workloads as _workloads  # noqa: E402

from isolator import MemoryLimitExceeded, isolated  # noqa: E402

MiB = _common.MiB
CAP = "256MiB"
CAP_BYTES = 256 * MiB
TARGET = 1024 * MiB  # 4x the cap
GOAL_MIB = 16

WORKLOADS = {
    "py-chunks (bytearray 64 KiB)": _workloads.grow_chunks,
    "py-small (tuples)": _workloads.grow_small_objects,
    "numpy-ones (1 call)": _workloads.numpy_ones,
    "ctypes-C (PyDLL malloc+memset 64 MiB)": _workloads.ctypes_malloc,
}


def _hold_the_gil(stop: threading.Event) -> None:
    data = list(range(3_000_000, 0, -1))
    while not stop.is_set():
        sorted(data)


def run_once(fn, board: str) -> dict:
    with open(board, "wb") as fh:
        fh.write(b"\0" * 4096)
    t0 = time.perf_counter()
    try:
        result = fn(board, TARGET)
    except MemoryLimitExceeded as e:
        elapsed = time.perf_counter() - t0
        baseline, seen, allocated = _workloads.read_board(board)
        return {"kind": e.kind, "over": (e.peak - e.limit) / MiB, "peak": e.peak / MiB,
                "limit": e.limit, "signal": e.signal, "seen": seen / MiB,
                "seen_over": (seen - CAP_BYTES) / MiB, "baseline": baseline / MiB,
                "elapsed": elapsed}
    elapsed = time.perf_counter() - t0
    baseline, seen, allocated = _workloads.read_board(board)
    return {"kind": f"NOT CAUGHT (returned {result!r})", "over": (seen - CAP_BYTES) / MiB,
            "peak": seen / MiB, "limit": CAP_BYTES, "signal": None, "seen": seen / MiB,
            "seen_over": (seen - CAP_BYTES) / MiB, "baseline": baseline / MiB,
            "elapsed": elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 20 s)")
    parser.add_argument("-r", "--repeats", type=int, default=None, help="runs per workload")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every run")
    parser.add_argument("--busy-caller", action="store_true",
                        help="a thread of this process holds the GIL in long sorts meanwhile")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 20)

    _common.header(f"overshoot: tasks allocating {TARGET // MiB} MiB under max_mem={CAP} "
                   f"(soft limit {(CAP_BYTES - CAP_BYTES // 8) // MiB} MiB)")

    # isolator writes a post-mortem report for every breach, by default under
    # ./isolator-reports: send them to a temporary directory and remove it afterwards.
    reports = tempfile.mkdtemp(prefix="isolator-bench-reports-")
    os.environ["ISOLATOR_REPORT_DIR"] = reports

    # numpy is preloaded in the zygote for every workload, so all children start alike.
    funcs = {name: isolated(max_mem=CAP, preload=("numpy",))(fn) for name, fn in WORKLOADS.items()}
    warm = isolated(max_mem=CAP, preload=("numpy",))(_workloads.noop)
    warm(0)

    fd, board = tempfile.mkstemp(prefix="isolator-bench-", suffix=".board")
    os.close(fd)
    runs: dict[str, list[dict]] = {name: [] for name in funcs}
    stop = threading.Event()
    hog = threading.Thread(target=_hold_the_gil, args=(stop,), daemon=True)
    if args.busy_caller:
        print("caller: a thread holds the GIL in back-to-back sorts of 3,000,000 items")
        hog.start()
    try:
        for i in range(repeats):  # interleaved: one run of each workload per round
            for name, fn in funcs.items():
                r = run_once(fn, board)
                runs[name].append(r)
                if args.verbose:
                    print(f"  {i:2d} {name:40s} kind={r['kind']:5s} peak={r['peak']:7.1f} "
                          f"over={r['over']:+6.1f} seen={r['seen']:7.1f} t={r['elapsed']*1e3:6.1f} ms")
    finally:
        stop.set()
        if hog.is_alive():
            hog.join()
        os.unlink(board)
        written = len(os.listdir(reports)) if os.path.isdir(reports) else 0
        shutil.rmtree(reports, ignore_errors=True)
    print(f"(isolator wrote {written} post-mortem reports; they went to a temporary "
          "directory, now removed)")

    rows = []
    goal_rows = []
    for name, rs in runs.items():
        kinds: dict[str, int] = {}
        for r in rs:
            kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
        overs = [r["over"] for r in rs]
        seen_overs = [r["seen_over"] for r in rs]
        # The most the task can have held: isolator's peak or the child's own reading.
        true_lb = [max(r["over"], r["seen_over"]) for r in rs]
        rows.append([
            name,
            ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items())),
            f"{_common.median(overs):+.1f}",
            f"{max(overs):+.1f}",
            f"{_common.median(seen_overs):+.1f}",
            f"{max(seen_overs):+.1f}",
            f"{max(true_lb) / (CAP_BYTES / MiB) * 100:+.1f}%",
            f"{_common.median([r['elapsed'] for r in rs]) * 1e3:.0f}",
        ])
        caught = all(not r["kind"].startswith("NOT") for r in rs)
        worst = max(true_lb)
        goal_rows.append([name, f"{worst:+.1f} MiB",
                          _common.verdict(caught and worst <= GOAL_MIB)])

    print(f"\nOvershoot past the {CAP} cap, MiB ({repeats} runs per workload; "
          "negative = stopped below the cap)")
    print(_common.table(
        ["workload", "kind (count)", "e.peak-limit median", "e.peak-limit max",
         "child-seen-limit median", "child-seen-limit max", "worst vs cap", "median ms/run"],
        rows))
    print(f"\nGoal: overshoot <= {GOAL_MIB} MiB for every run "
          "(worst of e.peak and the child's own reading)")
    print(_common.table(["workload", "worst overshoot", "verdict"], goal_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
