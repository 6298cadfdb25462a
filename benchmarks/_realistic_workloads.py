"""The realistic batch's worker, imported from a module (as a project would have it).

realistic.py defines the same function in its own ``__main__`` too: that is how users
write scripts, and it is the harder case (the function travels by value).
"""

from __future__ import annotations

import os


def summarise(path: str) -> float:
    """Load one CSV file and return a number from its spectrum."""
    import numpy as np

    data = np.loadtxt(path, delimiter=",")
    spectrum = np.fft.rfft(data[:, 0])
    return float(np.abs(spectrum[1:50]).sum())


def file_paths(folder: str, count: int = 200) -> list[str]:
    """The batch's inputs (made by ``make_files``); importing nothing."""
    return [os.path.join(folder, f"part-{i:04d}.csv") for i in range(count)]


def make_files(folder: str, count: int = 200, rows: int = 3000) -> list[str]:
    """``count`` CSV files of ``rows`` x 4 numbers, the same on every run."""
    import numpy as np

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = file_paths(folder, count)
    for path in paths:
        data = rng.normal(size=(rows, 4))
        if not os.path.exists(path):
            np.savetxt(path, data, delimiter=",", fmt="%.6f")
    return paths


def square(x: int) -> int:
    return x * x


def noop(x: int) -> int:
    """A task that does nothing: what is left is the cost of running a task at all."""
    return x
