"""Quickstart: run a function in a child process with a memory cap.

Run it with ``python examples/quickstart.py``. Each call of an ``@isolated`` function
runs in a fresh child process; if the child's memory passes ``max_mem`` the call fails
with ``MemoryLimitExceeded`` and your program carries on.
"""

from isolator import MemoryLimitExceeded, format_size, isolated


@isolated(max_mem="256MB")
def summarise(n: int) -> dict[str, int]:
    # Runs in a child process: the list below lives and dies there.
    squares = [i * i for i in range(n)]
    return {"count": len(squares), "largest": squares[-1]}


@isolated(max_mem="256MB")
def load_everything() -> int:
    # A job that keeps growing: 16 MiB at a time, forever. The cap stops it.
    chunks: list[bytearray] = []
    while True:
        chunks.append(bytearray(16 * 1024 * 1024))


# A normal call: the result comes back from the child like a return value.
print("summary:", summarise(100_000))

# A call that exceeds its cap: catch MemoryLimitExceeded (it is also a MemoryError).
try:
    load_everything()
except MemoryLimitExceeded as e:
    # kind says which layer stopped it: "soft" means the child was interrupted just
    # below the cap and could still raise; "hard" means its processes were killed.
    print(f"stopped: kind={e.kind} peak={format_size(e.peak)} limit={format_size(e.limit)}")
else:
    raise SystemExit("expected MemoryLimitExceeded")  # exit 1: the cap did not hold

print("done: the parent process is still fine")
