"""The demo and every script in examples/ run as a new user would run them, and exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from isolator import cli
from isolator.cli.demo import PARTITIONS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
TIMEOUT = 120


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("ISOLATOR_REPORT_DIR", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)


def _explain(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


@pytest.mark.timeout(TIMEOUT + 30)
def test_demo_fails_only_the_leaking_job_and_writes_its_report(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    done = _run(["-m", "isolator", "demo", "--report-dir", str(reports)], tmp_path)
    assert done.returncode == 0, _explain(done)
    (leaky,) = [name for name, _, malformed in PARTITIONS if malformed]
    failed = [line for line in done.stdout.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and leaky in failed[0] and "MemoryLimitExceeded" in failed[0]
    pages = list(reports.glob("*/report.html"))
    assert len(pages) == 1, _explain(done)
    assert str(pages[0]) in done.stdout
    assert "isolator report: isolator.cli.demo.process_partition" in done.stdout
    assert not (tmp_path / "isolator-reports").exists()  # --report-dir was honoured


@pytest.mark.timeout(TIMEOUT + 30)
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.name)
def test_example_runs_and_exits_0(script: Path, tmp_path: Path) -> None:
    done = _run([str(script)], tmp_path)
    assert done.returncode == 0, _explain(done)
    assert done.stdout.strip(), "an example should say what it did"


def test_the_examples_are_there() -> None:
    names = {path.name for path in EXAMPLES}
    assert {"quickstart.py", "closures_and_lambdas.py", "timeouts_and_crashes.py",
            "batch.py"} <= names


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == cli.EXIT_USAGE
    assert cli.main(["no-such-command"]) == cli.EXIT_USAGE
    assert cli.main(["demo", "--no-such-option"]) == cli.EXIT_USAGE
    assert cli.main(["--version"]) == cli.EXIT_OK
    assert "isolator" in capsys.readouterr().out


def test_cli_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    command = cli.COMMANDS["demo"]._replace(run=interrupted)
    monkeypatch.setitem(cli.COMMANDS, "demo", command)
    assert cli.main(["demo"]) == cli.EXIT_INTERRUPTED
