"""The ``map`` command: every line of a JSON-lines file through a function, resumable.

The journal (``_journal``, SQLite) records each input's outcome as it ends; the output
file is rebuilt from it at every start, so a run cut short by SIGKILL or Ctrl-C is
resumed by running the same command again, and no input is written twice.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .._errors import ConfigurationError
from .commands import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    cap_arguments,
    cap_options,
    flag_words,
    resolve_function,
)
from .on_cluster import cluster_arguments, cluster_executor, on_cluster


def map_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("function", metavar="MODULE:FUNC")
    parser.add_argument("input", metavar="INPUT.jsonl", help="one JSON value per line")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="children at once (default: one per CPU)")
    cap_arguments(parser)
    parser.add_argument("--retries", metavar="K", type=int, default=0,
                        help="run an input whose child died up to K more times")
    parser.add_argument("--escalate", metavar="FACTOR", type=float,
                        help="each retry after a breach gets FACTOR times the cap (at most 8GB)")
    parser.add_argument("--max-tasks-per-child", metavar="N", type=int, default=1,
                        help="reuse a child for up to N inputs (default 1: a fresh process "
                             "for each input; reuse pays off when inputs are small)")
    parser.add_argument("--journal", metavar="FILE",
                        help="SQLite journal (default: OUT.journal.sqlite next to --out)")
    parser.add_argument("--out", metavar="FILE",
                        help="default: the input's path with .out.jsonl added "
                             "(in.jsonl: in.jsonl.out.jsonl)")
    parser.add_argument("--allow-shared-dir", action="store_true",
                        help="write the output and journal even in a folder other users can "
                             "write to (refused otherwise: a name planted there could "
                             "redirect the writes)")
    parser.add_argument("--quiet", action="store_true", help="no progress, no summary")
    cluster_arguments(parser)
    parser.add_argument("--json", action="store_true", help="the summary as JSON on stdout")


def map_(args: argparse.Namespace) -> int:
    """Every input line through MODULE:FUNC in isolated children; resumable."""
    import tenacity

    from .._api.executor import IsolatedExecutor, worker_count
    from .._model.escalation import escalate_memory
    from .._model.retry import retry_if_worker_lost
    from .batch import (
        BatchError,
        count_inputs,
        default_journal,
        journal_totals,
        open_batch,
        run_batch,
    )
    from .journal import JournalError
    from .progress import BatchView, print_summary

    out = args.out or f"{args.input}.out.jsonl"
    close: Callable[[], None] = _nothing  # a cluster's client, once there is one
    try:
        fn = resolve_function(args.function)
        options = cap_options(args)
        options["max_tasks_per_child"] = args.max_tasks_per_child
        if args.retries < 0:
            raise UsageError(f"--retries {args.retries}: give 0 or more")
        if args.max_tasks_per_child < 1:
            raise UsageError(f"--max-tasks-per-child {args.max_tasks_per_child}: give 1 or more")
        if args.escalate is not None and not args.escalate >= 1:
            raise UsageError(f"--escalate {args.escalate:g}: give a factor of 1 or more "
                             "(2: each retry after a breach gets twice the cap)")
        if args.retries or args.escalate:
            options["retry"] = retry_if_worker_lost()
            options["stop"] = tenacity.stop_after_attempt(args.retries + 1)
            if args.escalate:
                options["escalate"] = escalate_memory(args.escalate)
        if on_cluster(args):
            executor, window, close = cluster_executor(args, options)
        else:
            workers = worker_count(args.workers, "--workers")
            executor, window = IsolatedExecutor(workers, **options), 2 * workers
    except (UsageError, ConfigurationError) as exc:
        close()
        print(f"isolator map: {flag_words(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    try:  # the files last: bad options leave them as they were
        journal, sink = open_batch(args.function, args.input, out,
                                   args.journal or default_journal(out), args.allow_shared_dir)
    except BatchError as exc:
        executor.shutdown()
        close()
        print(f"isolator map: {exc}", file=sys.stderr)
        return EXIT_USAGE
    live = sys.stderr.isatty() and not (args.quiet or args.json)
    view = BatchView(count_inputs(args.input), executor, live)
    try:
        with sink:
            skipped = run_batch(fn, args.input, sink, journal, executor,
                                window=window, view=view)
        totals = journal_totals(journal)
    except (KeyboardInterrupt, JournalError) as exc:
        view.close()
        executor.terminate()
        close()
        journal.close()
        print(f"isolator map: {exc}" if isinstance(exc, JournalError) else
              f"isolator map: interrupted; run the same command again to resume ({out})",
              file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, JournalError) else 130
    view.close()
    executor.shutdown()
    close()
    journal.close()
    result = view.summary(skipped, out, totals)
    if not args.quiet:
        print_summary(result, as_json=args.json)
    return EXIT_FAILED if result["failed"] else EXIT_OK


def _nothing() -> None:
    """Closing nothing: a local batch has no client."""
