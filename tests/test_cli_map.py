"""`isolator map`: a batch that loses nothing, resumes after SIGKILL, stops on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _processes import gone_within

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}",
            "ISOLATOR_REPORT_DIR": str(tmp / "reports")}


def cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "isolator", *args], cwd=tmp, env=env(tmp),
                          capture_output=True, text=True, timeout=120, check=False)


def start(tmp: Path, args: list[str], stderr: int = subprocess.DEVNULL) -> subprocess.Popen[str]:
    """``python -m isolator ARGS`` in the background, its output discarded."""
    return subprocess.Popen([sys.executable, "-m", "isolator", *args], cwd=tmp, env=env(tmp),
                            stdout=subprocess.DEVNULL, stderr=stderr, text=True)


def write_inputs(tmp: Path, count: int, sleep: float = 0.0) -> Path:
    path = tmp / "in.jsonl"
    log = tmp / "ran.log"
    path.write_text("".join(json.dumps({"i": i, "log": str(log), "sleep": sleep}) + "\n"
                            for i in range(count)))
    return path


def rows(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_a_batch_with_one_input_over_its_cap(tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("1\n2\n300\nnot json\n4\n")
    done = cli(tmp_path, "map", "_workloads:need_mib", str(inputs), "--workers", "2",
               "--max-mem", "64MiB", "--out", str(tmp_path / "out.jsonl"))
    assert done.returncode == 1, done.stderr
    by_index = {row["index"]: row for row in rows(tmp_path / "out.jsonl")}
    assert sorted(by_index) == [0, 1, 2, 3, 4]
    assert [by_index[i].get("result") for i in (0, 1, 4)] == [1, 2, 4]
    error = by_index[2]["error"]
    assert isinstance(error, dict) and error["type"] == "MemoryLimitExceeded"
    assert error["kind"] in ("soft", "hard") and os.path.isdir(str(error["report"]))
    assert by_index[3]["error"]["type"] == "InputError"  # type: ignore[index]


def test_reused_children_serve_several_inputs(tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(f"{i}\n" for i in range(12)))
    out = tmp_path / "out.jsonl"
    done = cli(tmp_path, "map", "_workloads:my_pid", str(inputs), "--workers", "1",
               "--max-tasks-per-child", "5", "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    pids = [row["result"] for row in sorted(rows(out), key=lambda row: row["index"])]
    assert len(pids) == 12 and len(set(pids)) == 3  # 5 + 5 + 2 inputs
    bad = cli(tmp_path, "map", "_workloads:my_pid", str(inputs), "--max-tasks-per-child",
              "0", "--out", str(tmp_path / "other.jsonl"))
    assert bad.returncode == 2 and "--max-tasks-per-child 0: give 1 or more" in bad.stderr
    for factor in ("0", "0.5"):
        bad = cli(tmp_path, "map", "_workloads:my_pid", str(inputs), "--escalate", factor,
                  "--out", str(tmp_path / "other.jsonl"))
        assert bad.returncode == 2 and f"--escalate {factor}: give a factor" in bad.stderr


@pytest.mark.timeout(120)
def test_sigkill_mid_batch_then_resume_is_exactly_once(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path, 24, sleep=0.1)
    out = tmp_path / "out.jsonl"
    args = ["map", "_workloads:logged_echo", str(inputs), "--workers", "2", "--out", str(out)]
    proc = start(tmp_path, args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or len(rows(out)) < 6):
        time.sleep(0.02)
    proc.kill()
    proc.wait(10)
    finished_before = {row["index"] for row in rows(out) if "result" in row}
    assert finished_before
    ran_before = len((tmp_path / "ran.log").read_text().split())
    done = cli(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    indexes = [row["index"] for row in rows(out)]
    assert sorted(indexes) == list(range(24))  # every input exactly once
    ran_after = (tmp_path / "ran.log").read_text().split()[ran_before:]
    assert not finished_before & {int(i) for i in ran_after}  # finished work not redone


@pytest.mark.timeout(120)
def test_ctrl_c_exits_130_fast_with_no_children_and_resumes(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path, 12, sleep=30)
    out = tmp_path / "out.jsonl"
    args = ["map", "_workloads:logged_echo", str(inputs), "--workers", "2", "--out", str(out)]
    proc = start(tmp_path, args, stderr=subprocess.PIPE)
    log = tmp_path / "ran.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().split()) < 2):
        time.sleep(0.02)
    children = _children_of(proc.pid)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 130
    assert time.monotonic() - started < 1.0
    assert gone_within(children, 1.0)
    # The same command again resumes (the journal names the batch by function, input
    # and output paths); with the sleep gone it finishes, every input exactly once.
    inputs.write_text(inputs.read_text().replace('"sleep": 30', '"sleep": 0.0'))
    done = cli(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert sorted(row["index"] for row in rows(out)) == list(range(12))


def _children_of(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        parent = stack.pop()
        for task in os.listdir(f"/proc/{parent}/task"):
            try:
                with open(f"/proc/{parent}/task/{task}/children") as fh:
                    kids = [int(k) for k in fh.read().split()]
            except OSError:
                continue
            found.extend(kids)
            stack.extend(kids)
    return found


@pytest.mark.parametrize("case", ["missing-input", "bad-size", "foreign-out", "bad-journal",
                                  "missing-module", "missing-function", "no-workers"])
def test_bad_input_exits_2_and_overwrites_nothing(tmp_path: Path, case: str) -> None:
    inputs = write_inputs(tmp_path, 3)
    out = tmp_path / "out.jsonl"
    args = ["map", "_workloads:logged_echo", str(inputs), "--out", str(out)]
    if case == "missing-input":
        args[2] = str(tmp_path / "nope.jsonl")
    elif case == "bad-size":
        args += ["--max-mem", "lots"]
    elif case == "missing-module":
        args[1] = "no_such_module:f"
    elif case == "missing-function":
        args[1] = "_workloads:no_such_function"
    elif case == "no-workers":
        args += ["--workers", "0"]
    elif case == "foreign-out":
        out.write_text("precious\n")
    else:
        out.write_text("precious\n")
        (tmp_path / "out.jsonl.journal.sqlite").write_text("this is not sqlite")
    done = cli(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    if case in ("foreign-out", "bad-journal"):
        assert out.read_text() == "precious\n"


def test_json_summary_and_quiet(tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("1\n300\n2\n")
    args = ["map", "_workloads:need_mib", str(inputs), "--max-mem", "64MiB", "--workers", "2"]
    done = cli(tmp_path, *args, "--json")
    summary = json.loads(done.stdout)
    assert done.returncode == 1
    assert summary["ok"] == 2 and summary["failed"] == 1 and len(summary["reports"]) == 1
    assert set(summary["failed_by_kind"]) <= {"MemoryLimitExceeded:soft",
                                               "MemoryLimitExceeded:hard"}
    assert summary["slowest"] and summary["peak_rss"] > 0
    again = cli(tmp_path, *args, "--quiet")  # resumes: everything is already done, and
    assert again.returncode == 1 and again.stdout == "" and again.stderr == ""  # 1 failed


def test_the_live_view_on_a_terminal(tmp_path: Path) -> None:
    import pty

    inputs = write_inputs(tmp_path, 6, sleep=0.3)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "isolator", "map", "_workloads:logged_echo",
                             str(inputs), "--workers", "2"], cwd=tmp_path, env=env(tmp_path),
                            stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            seen += os.read(leader, 65536)
        except OSError:
            break
    proc.wait(10)
    os.close(leader)
    text = seen.decode(errors="replace")
    assert proc.returncode == 0
    assert "isolator map" in text and "pid" in text  # the bar and the per-child lines
    assert "6 ok" in text  # then the summary


def test_an_error_row_and_a_failed_run_carry_the_childs_traceback(tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('"first"\n')
    done = cli(tmp_path, "map", "_workloads:raise_value_error", str(inputs),
               "--out", str(tmp_path / "out.jsonl"))
    assert done.returncode == 1, done.stderr
    error = rows(tmp_path / "out.jsonl")[0]["error"]
    assert isinstance(error, dict) and error["message"] == "first"
    text = str(error["traceback"])
    assert "in raise_value_error" in text and text.endswith("ValueError: first\n")
    assert "isolator" + os.sep + "_child" not in text  # from the task's frame on
    done = cli(tmp_path, "run", "_workloads:raise_value_error", '"second"')
    assert done.returncode == 1
    assert "in raise_value_error" in done.stderr and "ValueError: second" in done.stderr
    assert done.stderr.rstrip().endswith("isolator run: ValueError: second")
