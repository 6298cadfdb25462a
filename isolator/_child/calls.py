"""Small wrappers that travel to children by reference: they run there, so this module
imports nothing heavy."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

_initialized_for: str | None = None  # the pool whose initializer this process has run


def with_initializer(pool: str, initializer: Callable[..., Any], initargs: tuple[Any, ...],
                     fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run the ``initializer`` of ``pool`` (a token) once in this process, then the task.

    A fresh child runs it before its one unit; a reused worker before its first (again
    after one that raised in it), as ``multiprocessing.Pool`` runs it once per worker.
    """
    global _initialized_for
    if _initialized_for != pool:
        initializer(*initargs)
        _initialized_for = pool
    return fn(*args, **kwargs)


def run_chunk(fn: Callable[..., Any], chunk: Iterable[tuple[Any, ...]]) -> list[Any]:
    """One unit of work of a ``starmap`` (or a many-iterable ``map``): ``fn`` over a chunk
    of argument tuples."""
    return [fn(*args) for args in chunk]


def run_items(fn: Callable[..., Any], chunk: Iterable[Any]) -> list[Any]:
    """One unit of work of a one-iterable ``map``: no argument tuple per item to build,
    pickle and unpack."""
    return [fn(item) for item in chunk]


def timed(fn: Callable[..., Any], /, *args: Any) -> tuple[Any, float]:
    """``(fn(*args), seconds it ran)``, measured where it runs: ``isolator map``'s
    slowest inputs are their run time, not their time waiting for a child."""
    import time

    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


def leak_probe(level: str) -> dict[str, Any]:
    """Run in a reused worker suspected of leaking: what it holds, grown since it started
    (against the zygote's baseline, the worker's own start), and who keeps it alive."""
    import gc

    from .. import forensics
    from . import forensics_hook as _child_forensics

    gc.unfreeze()  # the zygote's module-level containers are where leaks hang
    try:
        return forensics.collect(level=level, frame=None, baseline=_child_forensics.baseline)
    finally:
        gc.freeze()


def exec_program(argv: list[str]) -> int:
    """Run a program as this child's own child: the cap covers the whole tree."""
    import subprocess

    return subprocess.run(argv, check=False).returncode


class Script:
    """A Python script run in this very process, as ``python script.py`` would, so a
    breach gets the full forensics. Reports name it by its file, not by this class."""

    def __init__(self, path: str) -> None:
        import os

        self.path = path
        self.__module__ = "script"
        self.__qualname__ = os.path.basename(path)

    def __call__(self, argv: list[str]) -> int:
        """Run the script with ``argv``; its exit status."""
        import runpy
        import sys

        sys.argv = [self.path, *argv]
        try:
            runpy.run_path(self.path, run_name="__main__")
        except SystemExit as exc:
            code = exc.code
            return code if isinstance(code, int) else (0 if code is None else 1)
        return 0
