"""A batch job: isolate each input, keep going past failures, summarise at the end.

Run with ``python examples/batch.py``. Each input is processed in its own child
process, so one bad input (here: one that needs far more memory than the others, or
one that raises) fails alone and cannot take the whole batch down with it.
"""

from isolator import MemoryLimitExceeded, WorkerError, format_size, isolated

MIB = 1024 * 1024

# Stand-ins for files or partitions: how many MiB each one needs to process.
INPUTS = {"2024-01.csv": 8, "2024-02.csv": 12, "2024-03.csv": 600, "2024-04.csv": 4,
          "2024-05.csv": -1}


@isolated(max_mem="256MB", timeout=60)
def process(name: str, mib: int) -> int:
    if mib < 0:
        raise ValueError(f"{name}: header row is missing")
    buffer = bytearray(mib * MIB)  # "load" the input
    return len(buffer) // 100  # "rows"


done: dict[str, int] = {}
failed: dict[str, str] = {}
for name, mib in INPUTS.items():
    try:
        done[name] = process(name, mib)
        print(f"ok      {name}: {done[name]} rows")
    except MemoryLimitExceeded as e:
        failed[name] = f"out of memory (peak {format_size(e.peak)}, cap {format_size(e.limit)})"
    except (ValueError, WorkerError) as e:
        # ValueError: the function's own error, re-raised here with its own type (list the
        # errors your code raises). WorkerError: TaskTimeout, WorkerLost (a crash), ...
        failed[name] = f"{type(e).__name__}: {e}"
    if name in failed:
        print(f"FAILED  {name}: {failed[name]}")

print(f"\n{len(done)} of {len(INPUTS)} inputs processed, {len(failed)} failed")
for name, why in failed.items():
    print(f"  {name}: {why}")

# The two bad inputs fail; everything else goes through.
assert set(failed) == {"2024-03.csv", "2024-05.csv"}, failed
