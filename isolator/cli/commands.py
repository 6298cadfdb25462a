"""The ``run``, ``report`` and ``reports`` commands of the ``isolator`` program (``map`` is
in ``map``, ``exec`` in ``program``), and what the commands share.

Bad input (a module or function that does not exist, a malformed size or JSON argument,
a missing report) is one line on stderr that says what is wrong, and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import time
from typing import Any

from .._errors import ConfigurationError, MemoryLimitExceeded
from .._model.options import LimitOptions, ReportingOptions, declared
from . import files

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A one-line message for the user; the program exits 2."""


def resolve_function(spec: str) -> Any:
    """``package.module:function`` (or ``:Class.method``) to the callable it names."""
    module_name, _, qualname = spec.partition(":")
    if not module_name or not qualname:
        raise UsageError(f"{spec!r} is not MODULE:FUNCTION (for example etl.jobs:transform)")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: the current folder imports
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import module {module_name!r}: {exc}") from exc
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"module {module_name!r} has no {qualname!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"{spec} is not callable")
    return getattr(obj, "__wrapped__", obj) if hasattr(obj, "__isolated_options__") else obj


def cap_arguments(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """The options every command that runs something shares: each option that declares a
    command-line flag (``isolator._model.options``), with its meaning as the help."""
    for group in (LimitOptions, ReportingOptions):
        for name, (_, option) in declared(group).items():
            flag = option.flag
            if flag is None:
                continue
            text = option.doc.replace("`", "").replace("**", "")
            if flag.metavar is None:
                parser.add_argument(flag.name, dest=name, action="store_true", help=text)
                continue
            parser.add_argument(flag.name, dest=name, metavar=flag.metavar, type=flag.parse,
                                choices=flag.choices, help=text,
                                required=required and name == "max_mem")


def cap_options(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given, as ``isolated``'s keyword options (the ones left out keep their
    defaults)."""
    options: dict[str, Any] = {}
    for group in (LimitOptions, ReportingOptions):
        for name, (_, option) in declared(group).items():
            value = getattr(args, name, None) if option.flag is not None else None
            if value is not None and value is not False:
                options[name] = value
    return options


def flag_words(message: str) -> str:
    """An option check's message in the command line's words: ``--max-mem 'lots' is not
    a size`` where the library says ``max_mem='lots' is not a size``."""
    for group in (LimitOptions, ReportingOptions):
        for name, (_, option) in declared(group).items():
            if option.flag is not None:
                message = re.sub(rf"(?<![\w-]){name}=", f"{option.flag.name} ", message)
                message = re.sub(rf"(?<![\w-]){name}\b", option.flag.name, message)
    return message


def run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("function", metavar="MODULE:FUNC")
    parser.add_argument("args", metavar="JSON_ARG", nargs="*",
                        help="each argument as one JSON value, e.g. '\"a.csv\"' or 42")
    cap_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """One isolated call; prints the result as JSON, or the failure and its report."""
    from .._api.decorator import isolated

    try:
        values = [_json_argument(text) for text in args.args]
        fn = resolve_function(args.function)
        call = isolated(**cap_options(args))(fn)
    except (UsageError, ConfigurationError) as exc:
        print(f"isolator run: {flag_words(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = call(*values)
    except MemoryLimitExceeded as exc:
        print(f"isolator run: {args.function} exceeded its memory cap ({exc.kind})",
              file=sys.stderr)
        saved: Any = exc.report
        print(saved, file=sys.stderr)
        if saved is not None and saved.path:
            print(f"report: {saved.path}/report.html", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - the program's job is to say how the call ended
        text = child_traceback(exc)
        if text is not None:  # where it failed, as python would have shown it
            print(text.rstrip("\n"), file=sys.stderr)
        print(f"isolator run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(result, default=repr))
    return EXIT_OK


def _json_argument(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"argument {text!r} is not JSON ({exc.msg}); quote strings: "
                         f"'\"{text}\"'") from exc


def report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="a report directory or its report.json")
    parser.add_argument("--format", choices=("text", "json", "html"), default="text")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="write here instead of stdout: a new file (0600), never one "
                             "that exists or a link")
    parser.add_argument("--allow-shared-dir", action="store_true",
                        help="write OUT even in a folder other users can write to")


def report(args: argparse.Namespace) -> int:
    """Render a saved report."""
    from ..reports import load

    try:
        loaded = load(args.path)
    except (OSError, ValueError) as exc:
        print(f"isolator report: cannot read a report at {args.path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.format == "html":
        text = loaded.to_html()
    elif args.format == "json":
        text = json.dumps(loaded.to_dict(), indent=2) + "\n"
    else:
        text = str(loaded)
    if not args.output:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        files.check_folder(args.output, args.allow_shared_dir)
        files.refuse_link(args.output)
        files.write_new(args.output, text)
    except (files.UnsafePath, OSError) as exc:
        print(f"isolator report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def reports_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR", nargs="?",
                        help="default: $ISOLATOR_REPORT_DIR, else ./isolator-reports")
    parser.add_argument("--prune", action="store_true",
                        help="remove the reports --keep does not keep (never one still being "
                             "written), then list the rest")
    parser.add_argument("--keep", metavar="KEEP", default=None,
                        help="with --prune: a count (1000), an age (30d; s, m, h, d, w), "
                             "both (1000,30d) or all; default: report_keep's, 1000,30d")


def reports(args: argparse.Namespace) -> int:
    """List the reports under a directory, newest first."""
    from .._units import format_size
    from ..reports import default_report_dir, load

    directory = args.directory or default_report_dir()
    if not os.path.isdir(directory):
        print(f"isolator reports: no report directory at {directory}", file=sys.stderr)
        return EXIT_USAGE
    if args.prune:
        status = _prune(directory, args.keep)
        if status != EXIT_OK:
            return status
    elif args.keep is not None:
        print("isolator reports: --keep goes with --prune", file=sys.stderr)
        return EXIT_USAGE
    rows = []
    for name in os.listdir(directory):
        try:
            loaded = load(os.path.join(directory, name))
        except (OSError, ValueError):
            continue  # not a report (or one still being written)
        rows.append((loaded.started_at, loaded, name))
    for started, loaded, name in sorted(rows, key=lambda row: -row[0]):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
        print(f"{when}  {loaded.kind:<14}  {format_size(loaded.peak):>10}  "
              f"{loaded.function}  {os.path.join(directory, name)}")
    if not rows:
        print(f"no reports in {directory}")
    return EXIT_OK


def _prune(directory: str, keep: str | None) -> int:
    from .._model.options import Retention
    from ..reports import prune

    option = declared(ReportingOptions)["report_keep"][1]
    try:
        retention: Retention | None = option.check(
            "--keep", option.default if keep is None else keep)
    except ConfigurationError as exc:
        print(f"isolator reports: {str(exc).replace('--keep=', '--keep ')}", file=sys.stderr)
        return EXIT_USAGE
    if retention is None:  # --keep all
        print(f"kept every report in {directory}")
        return EXIT_OK
    try:
        done = prune(directory, retention.newest, retention.age)
    except OSError as exc:
        print(f"isolator reports: cannot prune {directory}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"removed {len(done.removed)} reports, kept {done.kept}, in {directory}")
    return EXIT_OK


def child_traceback(exc: BaseException) -> str | None:
    """The traceback the child formatted for ``exc``, when it raised there (a timeout or
    a death has none)."""
    from .._errors import RemoteTraceback

    cause = exc.__cause__
    return cause.tb if isinstance(cause, RemoteTraceback) else None
