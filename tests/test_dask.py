"""isolated tasks on a real Dask cluster on 127.0.0.1: typed failures that stay with
their task, reports at the client, MEM as the scheduler's budget, isolator's retries."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _dask_tasks as t
import _workloads as w
import pytest
import tenacity
from conftest import wait_until

distributed = pytest.importorskip("distributed")

from isolator import (  # noqa: E402
    ConfigurationError,
    MemoryLimitExceeded,
    TaskTimeout,
    WorkerLost,
    escalate_memory,
    isolated,
    retry_if_worker_lost,
)
from isolator.dask import DaskExecutor, IsolatorPlugin  # noqa: E402

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(90)]
GiB, MiB = 1 << 30, 1 << 20


def _cluster(workers: int, **options: Any) -> Any:
    options.setdefault("resources", {"MEM": GiB})
    return distributed.LocalCluster(
        n_workers=workers, threads_per_worker=2, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=40, **options,
        # No dashboard; the scheduler's HTTP routes (health, metrics) on any free port.
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})


def _warm(client: Any) -> None:
    """What the client starts on first use (its callback thread, a plugin's round trip,
    every worker's zygote) is started before the first test's baseline."""
    with DaskExecutor(client, max_mem="64MB") as ex:
        assert list(ex.map(w.echo, range(8))) == list(range(8))


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with _cluster(2) as cluster, distributed.Client(cluster, set_as_default=False) as c:
        _warm(c)
        yield c


def _worker_pids(client: Any) -> dict[str, int]:
    return client.run(os.getpid)  # type: ignore[no-any-return]


def test_results_come_back_for_functions_lambdas_and_closures(client: Any) -> None:
    offset = 10
    seen: list[Any] = []
    with DaskExecutor(client, max_mem="128MB", progress=seen.append) as ex:
        assert ex.submit(w.add, 2, 3).result(30) == 5
        assert ex.submit(lambda x: x * 2, 21).result(30) == 42
        assert list(ex.map(lambda x: x + offset, [1, 2, 3])) == [11, 12, 13]
        with pytest.raises(ValueError, match="nope") as info:
            ex.submit(w.raise_value_error, "nope").result(30)
        assert "raise_value_error" in str(info.value.__cause__)  # the child's traceback
        stats = ex.statistics()
    assert (stats.submitted, stats.completed, stats.failed) == (6, 5, 1)
    assert len(seen) == 6 and all(f.done() for f in seen)  # every future, once
    assert stats.failed_by_kind == {"ValueError": 1}


def test_main_functions_work_from_a_script(client: Any, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        from distributed import Client
        from isolator.dask import DaskExecutor

        class Point:
            def __init__(self, x):
                self.x = x

        class Oops(Exception):
            pass

        def double(p):
            return Point(p.x * 2)

        def fail():
            raise Oops("from main")

        if __name__ == "__main__":
            with Client({client.scheduler.address!r}) as client:
                with DaskExecutor(client, max_mem="128MB") as ex:
                    got = ex.submit(double, Point(21)).result(30)
                    assert type(got) is Point, type(got)
                    print(got.x)
                    error = ex.submit(fail).exception(30)
                    print(type(error).__name__, error.type_name)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # A result is loaded here, so the class from __main__ is this script's; an exception
    # is loaded on the worker first, where the class is not to be had (docs/cluster.md).
    assert done.stdout.split() == ["42", "RemoteError", "__main__.Oops"]


@pytest.mark.parametrize("how, kind", [("python", "soft"), ("one C call", "hard")])
def test_a_breach_fails_only_its_task_and_the_report_reaches_the_client(
        client: Any, tmp_path: Path, how: str, kind: str) -> None:
    before = _worker_pids(client)
    received: list[Any] = []
    task = w.grow_python_objects if how == "python" else w.one_big_c_call
    size = 200 if how == "python" else 800
    with DaskExecutor(client, max_mem="200MB", report_dir=tmp_path,
                      on_report=received.append) as ex:
        neighbour = ex.submit(t.span, 2.0)
        breach = ex.submit(task, size)
        with pytest.raises(MemoryLimitExceeded) as info:
            breach.result(60)
        assert neighbour.result(60)[0] > 0  # the task beside it ran to its end
    exc = info.value
    assert exc.kind == kind and exc.limit == 200 * MiB
    assert exc.worker in before  # type: ignore[attr-defined]
    report = exc.report
    assert report is not None and received == [report]
    assert report.sections["worker"]["address"] == exc.worker  # type: ignore[attr-defined]
    assert report.path is not None and Path(report.path).parent == tmp_path
    assert {"report.json", "report.txt", "report.html"} <= set(os.listdir(report.path))
    assert f"worker     {exc.worker}" in (Path(report.path) / "report.txt").read_text()
    assert report.timeline  # the worker's samples travelled with it
    if kind == "soft":
        assert "heap" in report.sections and "traceback" in report.sections
    assert _worker_pids(client) == before  # no worker was restarted


def test_a_timeout_is_a_task_timeout(client: Any) -> None:
    with DaskExecutor(client, max_mem="64MB", timeout=0.5) as ex:
        with pytest.raises(TaskTimeout):
            ex.submit(w.sleep_for, 30).result(30)


def test_mem_bounds_what_runs_at_once_on_each_worker(client: Any) -> None:
    # 600 MB caps on 1 GiB workers with two threads each: one at a time per worker.
    with DaskExecutor(client, max_mem="600MB") as ex:
        spans = list(ex.map(t.span, [0.4] * 6))
        stats = ex.statistics()
    by_worker: dict[int, list[tuple[float, float]]] = {}
    for worker, start, end in spans:
        by_worker.setdefault(worker, []).append((start, end))
    for runs in by_worker.values():
        runs.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(runs)), runs
    assert stats.completed == 6


def test_escalation_asks_the_scheduler_for_more_mem(client: Any) -> None:
    from _dask_plugins import Requests, requests_seen

    client.register_plugin(Requests())
    try:
        with DaskExecutor(client, max_mem="200MiB", escalate=escalate_memory(2)) as ex:
            assert ex.submit(t.grow_to, 260).result(60) == 260
            stats = ex.statistics()
        seen = client.run_on_scheduler(requests_seen)
    finally:
        client.unregister_scheduler_plugin(Requests.name)
    assert [request for _, request in seen] == [{"MEM": 200 * MiB}, {"MEM": 400 * MiB}]
    assert len({key for key, _ in seen}) == 2  # each attempt is a new task
    assert stats.retried == 1 and stats.completed == 1


def test_escalation_stops_at_the_largest_worker(client: Any) -> None:
    with DaskExecutor(client, max_mem="600MiB", escalate=escalate_memory(4, ceiling=None),
                      stop=tenacity.stop_after_attempt(2), report_dir=None) as ex:
        with pytest.raises(MemoryLimitExceeded) as info:
            ex.submit(w.grow_python_objects, 1100).result(60)
    assert [a.limit for a in info.value.attempts] == [600 * MiB, GiB]  # type: ignore[attr-defined]


def test_a_cap_no_worker_can_hold_fails_at_submit(client: Any) -> None:
    with DaskExecutor(client, max_mem="2GiB") as ex:
        with pytest.raises(ConfigurationError, match="larger than any worker's MEM"):
            ex.submit(w.echo, 1)
        assert ex.statistics().submitted == 0


def test_bad_arguments_fail_where_they_are_given(client: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"distributed\.Client, a cluster or a scheduler"):
        DaskExecutor(42)
    with pytest.raises(ConfigurationError, match="max_mem"):
        DaskExecutor(client, max_mem="lots")
    with pytest.raises(ConfigurationError, match="memory"):
        IsolatorPlugin(memory="lots")


def test_cancel_kills_the_child(client: Any, tmp_path: Path) -> None:
    marker = str(tmp_path / "pid")
    with DaskExecutor(client, max_mem="64MB") as ex:
        future = ex.submit(t.note_pid_and_sleep, marker, 60)
        assert wait_until(lambda: os.path.exists(marker), 30)
        pid = int(Path(marker).read_text())
        assert future.cancel()
        assert wait_until(lambda: not _alive(pid), 10), "the child outlived its cancel"
        assert ex.statistics().cancelled == 1


def test_client_cancel_of_an_isolated_function_kills_the_child(client: Any,
                                                                tmp_path: Path) -> None:
    marker = str(tmp_path / "pid")
    capped = isolated(max_mem="64MB")(t.note_pid_and_sleep)
    future = client.submit(capped, marker, 60, pure=False)
    assert wait_until(lambda: os.path.exists(marker), 30)
    pid = int(Path(marker).read_text())
    client.cancel(future)
    assert wait_until(lambda: not _alive(pid), 10), "the child outlived its cancel"


def test_client_submit_of_an_isolated_function_runs_capped(client: Any) -> None:
    capped = isolated(max_mem="100MB", report_dir=None)(w.grow_python_objects)
    with pytest.raises(MemoryLimitExceeded) as info:
        client.submit(capped, 100, pure=False).result(60)
    assert info.value.limit == 100 * MiB


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def test_a_worker_killed_mid_task(tmp_path: Path) -> None:
    # A cluster of its own: the Nanny restarts the killed worker, a new process. Its
    # workers declare no MEM: the executor's IsolatorPlugin declares it, from their
    # memory_limit less what each worker holds (the restarted one too).
    with _cluster(2, resources=None, memory_limit=2 * GiB) as cluster, \
            distributed.Client(cluster, set_as_default=False) as c:
        marker = str(tmp_path / "pid")
        with DaskExecutor(cluster, max_mem="64MB") as ex:
            declared = [w["resources"]["MEM"] for w in c.scheduler_info()["workers"].values()]
            assert len(declared) == 2 and all(GiB < mem < 2 * GiB for mem in declared)
            future = ex.submit(t.note_pid_and_sleep, marker, 60)
            assert wait_until(lambda: os.path.exists(marker), 30)
            child = int(Path(marker).read_text())
            worker = _worker_of(child)
            os.kill(worker, signal.SIGKILL)
            assert wait_until(lambda: not _alive(child), 1.0), "the child outlived its worker"
            with pytest.raises(WorkerLost, match="worker running the task died"):
                future.result(60)
        # Both workers killed: the retry waits for a restarted one, which joins without
        # MEM and declares it afterwards; the task waiting for it must still start.
        c.wait_for_workers(2, timeout=30)
        workers = set(c.run(os.getpid).values())
        marker = str(tmp_path / "again")
        with DaskExecutor(c, max_mem="64MB", retry=retry_if_worker_lost()) as ex:
            future = ex.submit(t.note_once_then_sleep, marker, 60)
            assert wait_until(lambda: os.path.exists(marker), 30)
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            assert future.result(60) == "second attempt"
            assert ex.statistics().retried == 1


def _worker_of(child: int) -> int:
    """The Dask worker process whose zygote forked ``child``."""
    zygote = _parent(child)
    return _parent(zygote)


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().split(") ")[-1].split()[1])
