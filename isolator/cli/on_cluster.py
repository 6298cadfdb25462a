"""``isolator map --scheduler ADDRESS`` (or ``--scheduler-file F``): the same batch on a
Dask cluster. The journal and the output stay with the command; only the inputs'
calls go to the workers, each in a fresh capped child there (``isolator.dask``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from .commands import UsageError

#: Seconds the command waits for the scheduler to answer and for a first worker.
CONNECT_TIMEOUT = 30.0
WORKERS_TIMEOUT = 60.0


def cluster_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on the Dask cluster of this scheduler (tcp://host:8786); "
                            "its workers declare MEM (see docs/cluster.md)")
    where.add_argument("--scheduler-file", metavar="FILE",
                       help="run on the Dask cluster whose scheduler wrote FILE")


def on_cluster(args: argparse.Namespace) -> bool:
    return bool(args.scheduler or args.scheduler_file)


def cluster_executor(args: argparse.Namespace, options: dict[str, Any]
                     ) -> tuple[Any, int, Callable[[], None]]:
    """The executor, how many inputs to keep in flight, and what closes the client."""
    if args.max_tasks_per_child != 1:
        raise UsageError("--max-tasks-per-child: not with a cluster (every input gets a "
                         "fresh child on a worker)")
    options.pop("max_tasks_per_child", None)
    try:
        from distributed import Client
    except ImportError as exc:
        raise UsageError("running on a cluster needs distributed: "
                         "pip install 'isolator[dask]'") from exc
    from ..dask import DaskExecutor

    where = args.scheduler or f"the scheduler file {args.scheduler_file}"
    client: Any  # distributed's Client, untyped
    try:
        if args.scheduler:
            client = Client(args.scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)  # type: ignore[no-untyped-call]
        else:
            client = Client(scheduler_file=args.scheduler_file,  # type: ignore[no-untyped-call]
                            timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot reach {where}: {exc}") from exc
    try:
        client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
        threads = sum(client.nthreads().values())
        executor = DaskExecutor(client, **options)
    except BaseException as exc:
        client.close()
        if isinstance(exc, TimeoutError):
            raise UsageError(f"no worker joined {where} within {WORKERS_TIMEOUT:g} s") from exc
        raise
    window = 2 * (args.workers or threads or 1)
    return executor, window, client.close
