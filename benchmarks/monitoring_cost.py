"""What the memory sampler costs a CPU-bound task.

The same pure-Python loop (about 0.2 s) runs in a fresh child per call, in these ways:

* bare fork       os.fork() child of this process, no sampler: the reference the goal
                  names
* sampling off    @isolated(max_mem="1GiB") with isolator's WardenLink.watch patched in
                  this process so the warden is never told of the child: the same
                  zygote child, minus the monitoring
* isolator cap    @isolated(max_mem="1GiB"): usage low and flat, sampler at 10 ms
* isolator none   @isolated() without max_mem: no cap, yet the sampler still reads the
                  child every 10 ms (the diagnostic below shows it)
* isolator near   @isolated(max_mem="256MiB", soft_mem="255MiB"), the child holds 200 MiB,
                  i.e. within a fifth of the cap, where the sampler goes to 0.5 ms; its
                  references hold the same 200 MiB (bare fork +200MiB, sampling off +200MiB)

The time is measured inside the child around the loop (start-up cost, which overhead.py
covers, is left out). Each comparison is a pair of calls run back to back, reference and
variant, the order alternating from round to round and the pairs rotating, so the bursts
of a noisy machine hit both sides of a pair alike. Reported: the median over rounds of
the per-pair ratio, its IQR, and the ratio of the fastest runs of each side (the
sampler's cost is steady, so it shows in the fastest run too; a neighbour's noise
does not). An A/A pair (bare fork vs bare fork) shows the noise floor. A diagnostic run
first measures the CPU time of isolator's warden (the process that samples; from
/proc/<pid>/schedstat) per second of the call, the direct cost of monitoring: on a machine
with a spare core it runs beside the task; on a saturated one the task would lose about
that much.

    python benchmarks/monitoring_cost.py [--quick] [-r ROUNDS] [--loop N] [--cpu N]

``--cpu N`` pins everything to one CPU: the sampler then takes its time from the task
itself, which shows its cost on a saturated machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import _common

_common.setup_path()

import _bench_workloads as _workloads  # noqa: E402

from isolator import isolated  # noqa: E402

HOLD_MIB = 200
GOAL_PCT = 2.0


_SAMPLING = [True]


def _install_sampler_switch() -> None:
    """Let the benchmark turn isolator's sampling off for one call (a reference that is
    the same zygote child, minus the monitoring). Patched in this process only: the
    engine thread calls WardenLink.watch when the child says HELLO; unwatched, the
    warden never reads the child (and answers "no facts" for it)."""
    from isolator._engine import warden_link as _link

    original = _link.WardenLink.watch
    if getattr(original, "_bench_switch", False):
        return

    def watch(self, pid, limit, soft, hello_rss):
        if _SAMPLING[0]:
            return original(self, pid, limit, soft, hello_rss)
        view = _link.WatchView(pid, self)
        self.views[pid] = view
        return view

    watch._bench_switch = True
    _link.WardenLink.watch = watch


def _unsampled(fn):
    def call(*args):
        _SAMPLING[0] = False
        try:
            return fn(*args)
        finally:
            _SAMPLING[0] = True
    return call


FORK = "bare fork"
FORK_HOLD = f"bare fork, holds {HOLD_MIB}MiB"
OFF = "isolator, sampling off (patched)"
OFF_HOLD = f"isolator, sampling off, holds {HOLD_MIB}MiB"
CAP = "isolator cap=1GiB"
NONE = "isolator no cap"
NEAR = f"isolator near cap (256MiB, holds {HOLD_MIB}MiB)"
ISOLATOR = [CAP, NONE, NEAR]


def variants(loop: int):
    _install_sampler_switch()
    cap = isolated(max_mem="1GiB")(_workloads.cpu_loop)
    none = isolated(_workloads.cpu_loop)
    near = isolated(max_mem="256MiB", soft_mem="255MiB")(_workloads.cpu_loop)
    off = _unsampled(cap)
    return {
        FORK: lambda: _common.fork_call(_workloads.cpu_loop, loop, 0),
        FORK_HOLD: lambda: _common.fork_call(_workloads.cpu_loop, loop, HOLD_MIB),
        OFF: lambda: off(loop, 0),
        OFF_HOLD: lambda: off(loop, HOLD_MIB),
        CAP: lambda: cap(loop, 0),
        NONE: lambda: none(loop, 0),
        NEAR: lambda: near(loop, HOLD_MIB),
    }


# (variant, reference): each is run as an adjacent pair every round.
PAIRS = [
    (FORK, FORK),  # A/A control
    (CAP, FORK),
    (NONE, FORK),
    (NEAR, FORK_HOLD),
    (CAP, OFF),
    (NONE, OFF),
    (NEAR, OFF_HOLD),
]


def _warden_cpu() -> float:
    """The CPU seconds isolator's warden has used so far."""
    from isolator._engine.engine import get_engine

    pid = get_engine().warden_pid
    with open(f"/proc/{pid}/schedstat") as fh:  # ns on the CPU (stat's ticks are 10 ms)
        return int(fh.read().split()[0]) / 1e9


def sample_rates(loop: int) -> dict[str, dict[str, float]]:
    """Per isolator variant, one diagnostic call each: the CPU time of isolator's warden
    per second of the call, and the CPU time of this whole process per second against
    the same call with sampling off."""
    vs = variants(loop)
    vs[OFF]()  # make sure the engine and its warden exist

    def measure(fn) -> dict[str, float]:
        s0 = _warden_cpu()
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        return {"wall": wall, "process": (time.process_time() - c0) / wall,
                "sampler": (_warden_cpu() - s0) / wall}

    references = {CAP: OFF, NONE: OFF, NEAR: OFF_HOLD}
    out = {}
    for name in ISOLATOR:
        base = measure(vs[references[name]])
        m = measure(vs[name])
        m.update(base=base["process"])
        out[name] = m
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 20 s)")
    parser.add_argument("-r", "--rounds", type=int, default=None)
    parser.add_argument("--loop", type=int, default=None, help="loop iterations per call")
    parser.add_argument("--cpu", type=int, default=None,
                        help="pin this process, isolator's zygote and every child to this one "
                             "CPU: the saturated case, where the sampler competes with the task")
    args = parser.parse_args()
    if args.cpu is not None:  # before isolator starts: the zygote and children inherit it
        os.sched_setaffinity(0, {args.cpu})
    rounds = args.rounds or (3 if args.quick else 30)
    loop = args.loop or (600_000 if args.quick else 3_000_000)
    diag_loop = 2_000_000 if args.quick else 12_000_000

    _common.header("monitoring_cost: a CPU-bound pure-Python loop with and without the sampler")
    print("CPU affinity: " + (f"pinned to CPU {args.cpu} (caller, zygote and children share it)"
                              if args.cpu is not None else
                              f"not pinned ({len(os.sched_getaffinity(0))} CPUs)"))

    vs = variants(loop)
    for fn in vs.values():  # warm-up: zygote, imports, first touch of the machine
        fn()

    rates = sample_rates(diag_loop)
    print(f"\nDiagnostic: the warden's CPU per second of a call "
          f"({diag_loop:,}-iteration loop, one call each; includes start-up)")
    print(_common.table(
        ["variant", "warden CPU", "caller process CPU", "same call, sampling off"],
        [[n, f"{m['sampler'] * 100:.2f}% of a core",
          f"{m['process'] * 100:.2f}%", f"{m['base'] * 100:.2f}%"]
         for n, m in rates.items()]))

    loops: dict[str, list[float]] = {n: [] for n in vs}
    cpus: dict[str, list[float]] = {n: [] for n in vs}
    walls: dict[str, list[float]] = {n: [] for n in vs}
    ratios: dict[tuple[str, str], list[float]] = {p: [] for p in PAIRS}
    cpu_ratios: dict[tuple[str, str], list[float]] = {p: [] for p in PAIRS}
    side: dict[tuple[str, str], tuple[list[float], list[float]]] = {p: ([], []) for p in PAIRS}

    def run(name):
        t0 = time.perf_counter()
        elapsed, cpu, _, _ = vs[name]()
        walls[name].append(time.perf_counter() - t0)
        loops[name].append(elapsed)
        cpus[name].append(cpu)
        return elapsed, cpu

    for r in range(rounds):
        order = PAIRS[r % len(PAIRS):] + PAIRS[:r % len(PAIRS)]
        for j, pair in enumerate(order):
            variant, ref = pair
            if (r + j) % 2 == 0:
                b, bc = run(ref)
                a, ac = run(variant)
            else:
                a, ac = run(variant)
                b, bc = run(ref)
            ratios[pair].append(a / b)
            cpu_ratios[pair].append(ac / bc)
            side[pair][0].append(a)
            side[pair][1].append(b)

    print(f"\nLoop time measured inside the child ({rounds} rounds, {loop:,} iterations per call; "
          "a variant in several pairs has more runs)")
    print(_common.table(
        ["variant", "runs", "median loop s", "min loop s", "median loop CPU s", "median call wall s"],
        [[n, len(loops[n]), f"{_common.median(loops[n]):.4f}", f"{min(loops[n]):.4f}",
          f"{_common.median(cpus[n]):.4f}", f"{_common.median(walls[n]):.4f}"] for n in vs]))

    rows = []
    summary = {}
    for pair in PAIRS:
        variant, ref = pair
        rs = ratios[pair]
        med = (_common.median(rs) - 1) * 100
        q1 = (_common.percentile(rs, 25) - 1) * 100
        q3 = (_common.percentile(rs, 75) - 1) * 100
        mins = (min(side[pair][0]) / min(side[pair][1]) - 1) * 100
        cmed = (_common.median(cpu_ratios[pair]) - 1) * 100
        summary[pair] = (med, mins)
        label = "bare fork (A/A control)" if variant == ref else variant
        rows.append([label, ref, f"{med:+.2f}%", f"{q1:+.1f}% .. {q3:+.1f}%", f"{mins:+.2f}%",
                     f"{cmed:+.2f}%"])
    print("\nSlowdown of the loop against its reference (adjacent pairs, loop wall time)")
    print(_common.table(["variant", "vs", "median of pair ratios", "IQR of pair ratios",
                         "ratio of fastest runs", "CPU time: median ratio"], rows))

    aa = summary[FORK, FORK]
    print(f"\nNoise floor: the A/A pair (identical bare forks) reads {aa[0]:+.2f}% (median) and "
          f"{aa[1]:+.2f}% (fastest runs) in this run.")
    goal_rows = []
    for pair in PAIRS:
        if pair[0] in ISOLATOR:
            med, mins = summary[pair]
            goal_rows.append([pair[0], pair[1], f"{med:+.2f}%", f"{mins:+.2f}%",
                              _common.verdict(med <= GOAL_PCT)])
    print(f"\nGoal: slowdown <= {GOAL_PCT:g} % (verdict on the median of pair ratios)")
    print(_common.table(["variant", "vs", "median slowdown", "fastest-run slowdown", "verdict"],
                        goal_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
