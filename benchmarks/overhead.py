"""Per-call overhead of @isolated on a no-op, against forking peers.

Each method runs ``noop(x) -> x`` in a fresh child process per call, sequentially:

* floor        os.fork() from this process, result pickled through a pipe, waitpid;
               the least a fork-from-the-caller design can do (no supervision, no
               limits). isolator can beat it: it forks from a small zygote, and the
               zygote forks the next call's child ahead of time.
* isolator     @isolated(max_mem="256MiB"): fork from isolator's zygote, sampler active.
* isolator-nolimit  @isolated() without max_mem.
* pebble       pebble's @concurrent.process (fork context), .result().
* mp.Pool      multiprocessing.Pool(1, maxtasksperchild=1), fork context, .apply();
               one pool per block of calls (created and closed outside the timing).

Then all again while this process holds 1 GiB (a touched bytearray): forking from a
big caller copies its page tables, forking from the zygote does not.

Calls are interleaved in blocks (each method runs a block in turn) so that drift of a
noisy machine hits every method alike. Reports median and p90 ms/call and ratios.

    python benchmarks/overhead.py [--quick] [-n CALLS]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import sys
import time

import _common

_common.setup_path()

import _bench_workloads as _workloads  # noqa: E402

from isolator import isolated  # noqa: E402

FORK = multiprocessing.get_context("fork")


def floor_call(x):
    """fork + pipe + pickle + waitpid, straight from this process.

    The result is length-prefixed and read exactly: waiting for EOF would hang whenever
    another thread (mp.Pool's worker handler) forks while the write end is open.
    """
    return _common.fork_call(_workloads.noop, x)


class Method:
    """One way of running the no-op; ``open``/``close`` run untimed around each block."""

    def __init__(self, name, call, open_=None, close=None):
        self.name, self.call, self._open, self._close = name, call, open_, close

    def open(self):
        if self._open:
            self._open()

    def close(self):
        if self._close:
            self._close()


def make_methods() -> list[Method]:
    from pebble import concurrent

    iso = isolated(max_mem="256MiB")(_workloads.noop)
    iso_nolimit = isolated(_workloads.noop)
    peb = concurrent.process(context=FORK)(_workloads.noop)

    # The pool lives for one block only: an idle pool's handler thread would fork
    # replacement workers in the middle of the other methods' blocks.
    holder = {}

    def pool_open():
        holder["pool"] = FORK.Pool(1, maxtasksperchild=1)

    def pool_close():
        pool = holder.pop("pool")
        pool.terminate()
        pool.join()

    return [
        Method("floor (fork+pipe)", floor_call),
        Method("isolator max_mem=256MiB", iso),
        Method("isolator no max_mem", iso_nolimit),
        Method("pebble concurrent.process", lambda x: peb(x).result()),
        Method("mp.Pool(1, maxtasksperchild=1)",
               lambda x: holder["pool"].apply(_workloads.noop, (x,)), pool_open, pool_close),
    ]


def measure(methods: list[Method], calls: int, blocks: int, warmup: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {m.name: [] for m in methods}
    payload = 12345
    for m in methods:
        m.open()
        try:
            for _ in range(warmup):
                if m.call(payload) != payload:
                    raise RuntimeError(f"{m.name} returned a wrong result")
        finally:
            m.close()
    per_block = max(1, calls // blocks)
    for b in range(blocks):
        order = methods[b % len(methods):] + methods[:b % len(methods)]
        for m in order:
            sink = times[m.name]
            call = m.call
            m.open()
            try:
                for _ in range(per_block):
                    t0 = time.perf_counter()
                    result = call(payload)
                    sink.append(time.perf_counter() - t0)
                    if result != payload:
                        raise RuntimeError(f"{m.name} returned {result!r}")
            finally:
                m.close()
    return times


def summarise(times: dict[str, list[float]]) -> dict[str, tuple[float, float]]:
    return {name: (_common.median(v) * 1e3, _common.percentile(v, 90) * 1e3)
            for name, v in times.items()}


def print_phase(title: str, stats: dict[str, tuple[float, float]], calls: int) -> None:
    floor = stats["floor (fork+pipe)"][0]
    peb = stats["pebble concurrent.process"][0]
    rows = []
    for name, (med, p90) in stats.items():
        rows.append([name, f"{med:.3f}", f"{p90:.3f}", f"{med / floor:.2f}x", f"{med / peb:.2f}x"])
    print(f"\n{title} ({calls} calls per method)")
    print(_common.table(["method", "median ms/call", "p90 ms/call", "vs floor", "vs pebble"], rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 20 s)")
    parser.add_argument("-n", "--calls", type=int, default=None, help="calls per method and phase")
    args = parser.parse_args()
    calls = args.calls or (50 if args.quick else 300)
    blocks = 5 if args.quick else 10
    warmup = 5 if args.quick else 20

    _common.header("overhead: per-call cost of a fresh child per call, no-op function")

    gc.collect()
    methods = make_methods()
    small = summarise(measure(methods, calls, blocks, warmup))
    print_phase("Caller holds little memory", small, calls)

    big = bytearray(b"\x01") * (1 << 30)  # 1 GiB, every page touched
    gc.collect()
    large = summarise(measure(methods, calls, blocks, warmup))
    print_phase("Caller holds 1 GiB (touched bytearray)", large, calls)
    del big

    rows = []
    for name in small:
        rows.append([name, f"{small[name][0]:.3f}", f"{large[name][0]:.3f}",
                     f"{large[name][0] / small[name][0]:.2f}x"])
    print("\nEffect of a 1 GiB caller (median ms/call)")
    print(_common.table(["method", "small caller", "1 GiB caller", "1 GiB / small"], rows))

    iso = "isolator max_mem=256MiB"
    floor = "floor (fork+pipe)"
    peb = "pebble concurrent.process"
    vs_floor = small[iso][0] / small[floor][0]
    vs_floor_big = large[iso][0] / large[floor][0]
    speedup = small[peb][0] / small[iso][0]
    speedup_big = large[peb][0] / large[iso][0]
    flat = large[iso][0] / small[iso][0]
    print("\nGoals (isolator max_mem=256MiB, medians)")
    print(_common.table(["goal", "measured", "verdict"], [
        ["<= 1.5x floor (small caller)", f"{vs_floor:.2f}x", _common.verdict(vs_floor <= 1.5)],
        ["<= 1.5x floor (1 GiB caller)", f"{vs_floor_big:.2f}x", _common.verdict(vs_floor_big <= 1.5)],
        [">= 3x faster than pebble (small caller)", f"{speedup:.2f}x", _common.verdict(speedup >= 3)],
        [">= 3x faster than pebble (1 GiB caller)", f"{speedup_big:.2f}x", _common.verdict(speedup_big >= 3)],
        ["flat with 1 GiB caller (<= 1.10x)", f"{flat:.2f}x", _common.verdict(flat <= 1.10)],
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
