"""Run every benchmark, one after another, each in its own interpreter.

    python benchmarks/run_all.py [--quick]

Each script runs as a separate process (so each gets its own isolator supervisor and
zygote, and no benchmark's memory or threads leak into the next). ``--quick`` is passed
through: the whole quick run takes about a minute; the full run about 5-8 minutes on a
2-core machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = ["overhead.py", "overshoot.py", "monitoring_cost.py"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run of each")
    args = parser.parse_args()
    failed = []
    timings = []
    for name in SCRIPTS:
        command = [sys.executable, os.path.join(HERE, name)] + (["--quick"] if args.quick else [])
        print(f"\n{'=' * 20} {name}{' --quick' if args.quick else ''} {'=' * 20}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call(command)
        timings.append((name, time.perf_counter() - t0, code))
        if code != 0:
            failed.append(name)
    print(f"\n{'=' * 20} summary {'=' * 20}")
    for name, seconds, code in timings:
        print(f"{name:20s} {seconds:7.1f} s  {'ok' if code == 0 else f'FAILED (exit {code})'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
