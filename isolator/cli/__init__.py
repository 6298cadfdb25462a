"""The ``isolator`` command line: ``python -m isolator <command>``.

Each command is one entry in ``COMMANDS``: a help line, a function that adds its
options, and a function that runs it and returns the exit status. Adding a command is
adding an entry.

Exit status: 0 ok, 1 some inputs failed, 2 usage error, 130 interrupted (Ctrl-C);
``exec`` passes on the program's own, and 137 for a breach, 124 for a timeout
(``program``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from .. import __version__
from . import commands as _cli_commands
from . import map as _cli_map
from . import program as _cli_program

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


class Command(NamedTuple):
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--report-dir", metavar="DIR", default=None,
        help="where to write the report of the failing job "
             "(default: $ISOLATOR_REPORT_DIR, else ./isolator-reports)",
    )


def _demo(args: argparse.Namespace) -> int:
    # Imported here so that `isolator --help` does not start anything.
    from ..reports import default_report_dir
    from .demo import run

    return run(args.report_dir or default_report_dir())


COMMANDS: dict[str, Command] = {
    "demo": Command(
        help="process six fake partitions, one of which leaks until its 128 MB cap stops it",
        add_arguments=_demo_arguments,
        run=_demo,
    ),
    "run": Command(
        help="call MODULE:FUNC once in an isolated child; print its result as JSON",
        add_arguments=_cli_commands.run_arguments,
        run=_cli_commands.run,
    ),
    "map": Command(
        help="MODULE:FUNC over every line of a JSON-lines file, resumable from its journal",
        add_arguments=_cli_map.map_arguments,
        run=_cli_map.map_,
    ),
    "exec": Command(
        help="run any program under the cap (a Python script runs inside the child)",
        add_arguments=_cli_program.exec_arguments,
        run=_cli_program.exec_,
    ),
    "report": Command(
        help="render a saved post-mortem report as text, JSON or HTML",
        add_arguments=_cli_commands.report_arguments,
        run=_cli_commands.report,
    ),
    "reports": Command(
        help="list saved reports, newest first: time, kind, peak, function, path",
        add_arguments=_cli_commands.reports_arguments,
        run=_cli_commands.reports,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isolator",
        description="Run memory-hungry Python work in child processes with a memory cap.",
    )
    parser.add_argument("--version", action="version", version=f"isolator {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, return its exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 after --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
