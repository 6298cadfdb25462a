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
from .commands import EXIT_FAILED, EXIT_USAGE, UsageError, cap_arguments, cap_options, flag_words

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
    from .._child.calls import Script, exec_program

    command = args.program[1:] if args.program[:1] == ["--"] else args.program
    if not command:
        print("isolator exec: give the command after --, e.g. isolator exec --max-mem 1GB "
              "-- python job.py", file=sys.stderr)
        return EXIT_USAGE
    options = cap_options(args)
    script = _python_script(command)
    shown = " ".join(command)
    try:
        if script is not None:
            if not os.path.isfile(script[0]):
                raise UsageError(f"no script at {script[0]}")
            code = isolated(**options)(Script(os.path.abspath(script[0])))(script[1:])
        else:
            code = isolated(**options)(exec_program)(command)
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
        print(f"isolator exec: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return status_of(int(code))


def _python_script(command: list[str]) -> list[str] | None:
    """``[script, args...]`` when the command is ``python[3] script.py ...``."""
    if len(command) >= 2 and os.path.basename(command[0]).startswith("python") \
            and command[1].endswith(".py"):
        return command[1:]
    return None
