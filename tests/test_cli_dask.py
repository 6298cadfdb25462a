"""`isolator map --scheduler`: the same batch and journal, run on a Dask cluster whose
scheduler and workers are their own processes (started here, on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import wait_until
from test_cli_map import cli, env, rows, start, write_inputs

pytest.importorskip("distributed")
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(150)]
DASK = str(Path(sys.executable).parent / "dask")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A scheduler and two workers (1 GiB of MEM each), as `dask` starts them."""
    file = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--no-dashboard", "--scheduler-file", str(file)],
                                 env=env(tmp_path), cwd=tmp_path, **quiet)  # type: ignore[call-overload]
    workers = None
    try:
        assert wait_until(file.exists, 30), "the scheduler did not start"
        workers = subprocess.Popen([DASK, "worker", "--scheduler-file", str(file),
                                    "--nworkers", "2", "--nthreads", "2", "--no-dashboard",
                                    "--host", "127.0.0.1", "--resources", f"MEM={1 << 30}"],
                                   env=env(tmp_path), cwd=tmp_path, **quiet)  # type: ignore[call-overload]
        address = json.loads(file.read_text())["address"]
        yield file, address
    finally:
        if workers is not None:
            _stop(workers)
        _stop(scheduler)


def test_map_on_a_cluster_sigkilled_then_resumed_is_exactly_once(
        tmp_path: Path, cluster: tuple[Path, str]) -> None:
    file, address = cluster
    inputs = write_inputs(tmp_path, 24, sleep=0.2)
    out = tmp_path / "out.jsonl"
    args = ["map", "_workloads:logged_echo", str(inputs), "--max-mem", "128MB",
            "--out", str(out)]
    proc = start(tmp_path, [*args, "--scheduler-file", str(file)])
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and (not out.exists() or len(rows(out)) < 6):
        time.sleep(0.02)
    proc.kill()
    proc.wait(10)
    finished_before = {row["index"] for row in rows(out) if "result" in row}
    assert len(finished_before) >= 6
    ran_before = len((tmp_path / "ran.log").read_text().split())
    done = cli(tmp_path, *args, "--scheduler", address)
    assert done.returncode == 0, done.stderr
    indexes = [row["index"] for row in rows(out)]
    assert sorted(indexes) == list(range(24))  # every input exactly once
    ran_after = (tmp_path / "ran.log").read_text().split()[ran_before:]
    assert not finished_before & {int(i) for i in ran_after}  # finished work not redone
    assert os.path.exists(f"{out}.journal.sqlite")  # the journal stayed with the command


def test_a_breach_on_a_cluster_is_one_error_row_with_the_report_here(
        tmp_path: Path, cluster: tuple[Path, str]) -> None:
    _, address = cluster
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("1\n2\n300\n4\n")
    out = tmp_path / "out.jsonl"
    done = cli(tmp_path, "map", "_workloads:need_mib", str(inputs), "--max-mem", "64MiB",
               "--scheduler", address, "--out", str(out))
    assert done.returncode == 1, done.stderr
    by_index = {row["index"]: row for row in rows(out)}
    assert [by_index[i].get("result") for i in (0, 1, 3)] == [1, 2, 4]
    error = by_index[2]["error"]
    assert isinstance(error, dict) and error["type"] == "MemoryLimitExceeded"
    report = Path(str(error["report"]))
    assert report.parent == tmp_path / "reports" and (report / "report.json").exists()
    bad = cli(tmp_path, "map", "_workloads:need_mib", str(inputs), "--scheduler", address,
              "--max-tasks-per-child", "5", "--out", str(tmp_path / "other.jsonl"))
    assert bad.returncode == 2 and "not with a cluster" in bad.stderr
