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


class Program:
    """Any program, run as this child's own child: the cap covers the whole tree.
    Reports name it by its command, not by this class."""

    def __init__(self, command: str) -> None:
        import os

        self.__module__ = "program"
        self.__qualname__ = os.path.basename(command)

    def __call__(self, argv: list[str]) -> int:
        """Run ``argv``; its return code (minus N for a signal N)."""
        import subprocess

        return subprocess.run(argv, check=False).returncode


def _as_main(code: Any, **attributes: Any) -> int:
    """Run ``code`` as the interpreter runs a program: in a fresh ``__main__`` module,
    which stays in ``sys.modules`` afterwards, so a breach's heap walk finds the
    program's globals under ``__main__``. Its exit status."""
    import sys
    import types

    main = types.ModuleType("__main__")
    main.__dict__.update(attributes)
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)  # noqa: S102 - what the user asked to run
    except SystemExit as exc:
        status = exc.code
        if status is None or isinstance(status, int):
            return status or 0
        print(status, file=sys.stderr)  # sys.exit("message"): python prints it, exits 1
        return 1
    return 0


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
        import os
        import sys

        sys.argv = [self.path, *argv]
        sys.path.insert(0, os.path.dirname(self.path))  # as python puts the script's folder
        with open(self.path, "rb") as fh:
            code = compile(fh.read(), self.path, "exec")
        return _as_main(code, __file__=self.path)


class PythonCommand:
    """``python -c CODE`` or ``python -m MODULE`` run in this very process, as the
    interpreter would run it (``__main__``, ``sys.argv``, the current folder first on
    ``sys.path``), so a breach walks the program's heap, not a wrapper's. Reports name it
    by its command."""

    def __init__(self, flag: str, target: str) -> None:
        if flag not in ("-c", "-m"):
            raise ValueError(f"flag={flag!r}: expected '-c' or '-m'")
        self.flag, self.target = flag, target
        self.__module__ = "python"
        self.__qualname__ = f"-m {target}" if flag == "-m" else "-c"

    def __call__(self, argv: list[str]) -> int:
        """Run the code or module with ``argv``; its exit status."""
        import importlib.util
        import os
        import sys

        sys.path.insert(0, os.getcwd())
        if self.flag == "-c":
            sys.argv = ["-c", *argv]
            return _as_main(compile(self.target, "<string>", "exec"))
        name = self.target
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None:
            name = f"{name}.__main__"  # a package runs its __main__, as with python -m
            spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "get_code"):
            print(f"No module named {self.target}", file=sys.stderr)  # as python says
            return 1
        sys.argv = [spec.origin or self.target, *argv]
        code = spec.loader.get_code(name)
        return _as_main(code, __file__=spec.origin, __spec__=spec)
