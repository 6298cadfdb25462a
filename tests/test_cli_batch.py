"""`isolator map`'s counts: the whole journal, blank lines, and how long inputs ran."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli_map import cli, rows, write_inputs


def test_a_resumed_batch_counts_its_whole_journal(tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("1\nnot json\n2\n{bad\n[\n3\n}\n'x'\n")  # 5 lines that are not JSON
    args = ["map", "_workloads:echo", str(inputs), "--workers", "1"]
    first = cli(tmp_path, *args, "--json")
    assert first.returncode == 1, first.stderr
    assert json.loads(first.stdout)["failed"] == 5
    again = cli(tmp_path, *args, "--json")  # resumed: nothing left to run
    summary = json.loads(again.stdout)
    assert again.returncode == 1
    assert (summary["ok"], summary["failed"], summary["already_done"]) == (3, 5, 8)
    assert summary["failed_by_kind"] == {"InputError": 5}
    text = cli(tmp_path, *args)
    assert text.returncode == 1 and "3 ok, 5 failed" in text.stderr


def test_blank_lines_are_not_inputs(tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("1\n\n2\n   \n")
    out = tmp_path / "out.jsonl"
    done = cli(tmp_path, "map", "_workloads:echo", str(inputs), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["failed"] == 0
    # An input's index stays its line number less one.
    assert sorted((row["index"], row["result"]) for row in rows(out)) == [(0, 1), (2, 2)]


def test_slowest_inputs_are_their_run_time_not_their_wait(tmp_path: Path) -> None:
    # One worker, four inputs submitted two at a time: each waits for the one before. As
    # run time, the four measured times add up to less than the batch took; as time
    # since submission, they overlap and add up to more.
    inputs = write_inputs(tmp_path, 4, sleep=0.3)
    with inputs.open("a") as fh:
        fh.write("not json\n")
    done = cli(tmp_path, "map", "_workloads:logged_echo", str(inputs), "--workers", "1",
               "--json")
    summary = json.loads(done.stdout)
    slowest = summary["slowest"]
    assert sorted(s["index"] for s in slowest) == [0, 1, 2, 3]  # the line that never ran: not
    assert all(s["seconds"] >= 0.3 for s in slowest)
    assert sum(s["seconds"] for s in slowest) <= summary["seconds"]
    shown = cli(tmp_path, "map", "_workloads:logged_echo", str(inputs), "--workers", "1",
                "--out", str(tmp_path / "again.jsonl"))
    assert "slowest inputs: #" in shown.stderr and "-0.00" not in shown.stderr


def test_help_gives_the_real_default_output(tmp_path: Path) -> None:
    done = cli(tmp_path, "map", "--help")
    assert done.returncode == 0
    assert "in.jsonl.out.jsonl" in " ".join(done.stdout.split())
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("1\n")
    assert cli(tmp_path, "map", "_workloads:echo", str(inputs), "--quiet").returncode == 0
    assert (tmp_path / "in.jsonl.out.jsonl").is_file()
