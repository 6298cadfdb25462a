"""The ``exec`` command: any program under the cap, with the exit status workflow
engines understand.

Nextflow, Snakemake and Kubernetes read a kernel OOM kill as status 137 (128 + SIGKILL)
and have retry-with-more-memory rules keyed on it; coreutils' ``timeout`` exits 124. So
``isolator exec`` exits:

- 137 when the program was stopped for its memory cap (any layer), or ``--breach-exit N``;
- 124 when it ran past ``--timeout``;
- otherwise the program's own status; 128 + N when a signal N ended it, as shells say.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from .._errors import ConfigurationError, MemoryLimitExceeded, TaskTimeout, WorkerLost
from .commands import (
    EXIT_FAILED,
    EXIT_USAGE,
    UsageError,
    cap_arguments,
    cap_options,
    child_traceback,
    flag_words,
)

EXIT_BREACH = 137  # 128 + SIGKILL: what a kernel OOM kill looks like
EXIT_TIMEOUT = 124  # as coreutils' timeout


def _exit_status(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"{text!r} is not an exit status (0 to 255)")
    return value


def exec_arguments(parser: argparse.ArgumentParser) -> None:
    cap_arguments(parser, required=True)
    parser.add_argument("--breach-exit", metavar="N", type=_exit_status, default=EXIT_BREACH,
                        help=f"exit status when the program is stopped for its memory cap "
                             f"(default {EXIT_BREACH}, as a kernel OOM kill looks to workflow "
                             "engines)")
    parser.add_argument("program", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")


def status_of(returncode: int) -> int:
    """A child's return code as a shell's exit status: a signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def _lost_status(exc: WorkerLost) -> int:
    if exc.signal is not None:
        number = getattr(signal, exc.signal, None)
        return 128 + int(number) if number is not None else EXIT_FAILED
    return exc.exitcode if exc.exitcode is not None else EXIT_FAILED


def exec_(args: argparse.Namespace) -> int:
    """Any program under the cap; a Python script runs inside the child itself."""
    from .._api.decorator import isolated
    from .._child.calls import Program

    command = args.program[1:] if args.program[:1] == ["--"] else args.program
    if not command:
        print("isolator exec: give the command after --, e.g. isolator exec --max-mem 1GB "
              "-- python job.py", file=sys.stderr)
        return EXIT_USAGE
    options = cap_options(args)
    shown = " ".join(command)
    try:
        python = _in_process(command)
        if python is not None:
            code = isolated(**options)(python[0])(python[1])
        else:
            # Not Python: its heap is not ours to walk, and a walk of the child that
            # waits for it would describe the wrapper. The report keeps the timeline.
            options.setdefault("forensics", "off")
            code = isolated(**options)(Program(command[0]))(command)
    except (UsageError, ConfigurationError) as exc:
        print(f"isolator exec: {flag_words(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryLimitExceeded as exc:
        saved: Any = exc.report
        print(f"isolator exec: {shown} exceeded its memory cap ({exc.kind}); exit status "
              f"{args.breach_exit}", file=sys.stderr)
        print(saved, file=sys.stderr)
        return int(args.breach_exit)
    except TaskTimeout as exc:
        print(f"isolator exec: {shown} ran past its timeout ({exc.timeout:g} s) and was "
              f"killed; exit status {EXIT_TIMEOUT}", file=sys.stderr)
        return EXIT_TIMEOUT
    except WorkerLost as exc:
        print(f"isolator exec: {exc}", file=sys.stderr)
        return _lost_status(exc)
    except Exception as exc:  # noqa: BLE001 - say how the program ended
        text = child_traceback(exc)
        if text is not None:  # a Python program that raised: as python would show it
            print(text.rstrip("\n"), file=sys.stderr)
        print(f"isolator exec: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return status_of(int(code))


def _in_process(command: list[str]) -> tuple[Any, list[str]] | None:
    """What runs inside the isolated child itself, and its arguments, when the command
    is ``python script.py ...``, ``python -c CODE ...`` or ``python -m MODULE ...`` and
    that python is this one (other interpreter flags, or another interpreter: run as
    any program)."""
    from .._child.calls import PythonCommand, Script

    if len(command) < 2 or not _this_python(command[0]):
        return None
    if command[1].endswith(".py"):
        if not os.path.isfile(command[1]):
            raise UsageError(f"no script at {command[1]}")
        return Script(os.path.abspath(command[1])), command[2:]
    if command[1] in ("-c", "-m") and len(command) >= 3:
        return PythonCommand(command[1], command[2]), command[3:]
    return None


def _this_python(name: str) -> bool:
    """Whether ``name`` is this interpreter: ``python``, ``python3`` or ``python3.N`` of
    this version by name, or a path to this very file (another one has its own
    packages, or is another version: it runs as a program of its own)."""
    if os.sep in name:
        try:
            return os.path.samefile(name, sys.executable)
        except OSError:
            return False
    major, minor = sys.version_info[:2]
    return name in ("python", f"python{major}", f"python{major}.{minor}")
