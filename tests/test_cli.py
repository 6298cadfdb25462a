"""The command line, driven as a user drives it: a subprocess, exit codes, files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def isolator(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}",
           "ISOLATOR_REPORT_DIR": str(cwd / "reports")}
    return subprocess.run([sys.executable, "-m", "isolator", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_run_prints_the_result_as_json(tmp_path: Path) -> None:
    done = isolator("run", "_workloads:add", "2", "40", "--max-mem", "64MB", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == 42


def test_run_a_breach_exits_1_with_the_report(tmp_path: Path) -> None:
    done = isolator("run", "_workloads:grow_numpy", "64", "--max-mem", "64MiB", cwd=tmp_path)
    assert done.returncode == 1
    assert "exceeded its memory cap" in done.stderr and "report.html" in done.stderr
    reports = list((tmp_path / "reports").iterdir())
    assert len(reports) == 1

    listed = isolator("reports", str(tmp_path / "reports"), cwd=tmp_path)
    assert listed.returncode == 0 and "grow_numpy" in listed.stdout

    for fmt, marker in (("text", "isolator report"), ("json", '"schema"'), ("html", "<svg")):
        shown = isolator("report", str(reports[0]), "--format", fmt, cwd=tmp_path)
        assert shown.returncode == 0 and marker in shown.stdout
    out = tmp_path / "r.html"
    assert isolator("report", str(reports[0]), "--format", "html", "-o", str(out),
                    cwd=tmp_path).returncode == 0
    assert "<svg" in out.read_text()
    again = isolator("report", str(reports[0]), "-o", str(out), cwd=tmp_path)
    assert again.returncode == 2 and "nothing was overwritten" in again.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("run", "no_such_module:f"), "cannot import module"),
        (("run", "_workloads:no_such_function"), "has no"),
        (("run", "_workloads"), "MODULE:FUNCTION"),
        (("run", "_workloads:echo", "--max-mem", "lots"), "is not a size"),
        (("run", "_workloads:echo", "not-json"), "is not JSON"),
        (("report", "missing-report"), "cannot read a report"),
        (("reports", "no-such-dir"), "no report directory"),
        (("frobnicate",), "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...],
                                          says: str) -> None:
    done = isolator(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert says in done.stderr


def test_exec_a_program_and_a_python_script(tmp_path: Path) -> None:
    done = isolator("exec", "--max-mem", "64MB", "--", "sh", "-c", "exit 3", cwd=tmp_path)
    assert done.returncode == 3
    script = tmp_path / "job.py"
    script.write_text("import sys\nprint('args', sys.argv[1:])\nsys.exit(0)\n")
    done = isolator("exec", "--max-mem", "64MB", "--", "python", str(script), "a", cwd=tmp_path)
    assert done.returncode == 0 and "args ['a']" in done.stdout


def test_exec_a_script_that_leaks_gets_the_full_report(tmp_path: Path) -> None:
    script = tmp_path / "leaky.py"
    script.write_text("CACHE = []\nwhile True:\n    CACHE.append(bytearray(b'x') * 2**20)\n")
    done = isolator("exec", "--max-mem", "64MiB", "--", "python", str(script), cwd=tmp_path)
    assert done.returncode == 137  # as a kernel OOM kill looks to workflow engines
    assert "exceeded its memory cap" in done.stderr
    assert "script.leaky.py" in done.stderr  # the report names the script
    if "(soft)" in done.stderr:
        assert "who keeps it alive" in done.stderr and "CACHE" in done.stderr


@pytest.mark.parametrize(("flags", "status"), [((), 137), (("--breach-exit", "3"), 3)])
def test_exec_a_program_past_the_cap_exits_137_or_as_told(tmp_path: Path,
                                                          flags: tuple[str, ...],
                                                          status: int) -> None:
    hog = f"{sys.executable} -c \"b = bytearray(b'x') * (512 * 2**20)\""
    done = isolator("exec", "--max-mem", "64MiB", *flags, "--", "sh", "-c", hog, cwd=tmp_path)
    assert done.returncode == status and "exceeded its memory cap" in done.stderr


def test_exec_a_timeout_exits_124_and_a_signal_128_plus_n(tmp_path: Path) -> None:
    done = isolator("exec", "--max-mem", "64MB", "--timeout", "0.5", "--", "sleep", "30",
                    cwd=tmp_path)
    assert done.returncode == 124 and "timeout" in done.stderr
    done = isolator("exec", "--max-mem", "64MB", "--", "sh", "-c", "kill -TERM $$",
                    cwd=tmp_path)
    assert done.returncode == 128 + 15
    bad = isolator("exec", "--max-mem", "64MB", "--breach-exit", "300", "--", "true",
                   cwd=tmp_path)
    assert bad.returncode == 2 and "0 to 255" in bad.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--max-mem", "lots"), "--max-mem 'lots' is not a size"),
        (("--max-mem", "1MB"), "--max-mem '1MB' is below"),
        (("--soft-mem", "64MB"), "--soft-mem needs --max-mem"),
        (("--max-mem", "64MB", "--soft-mem", "128MB"), "--soft-mem"),
        (("--timeout", "0"), "isolator run: --timeout 0.0 must be a positive"),
        (("--report-keep", "forever"), "--report-keep 'forever'; expected a count"),
    ],
)
def test_errors_name_the_flags(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    done = isolator("run", "_workloads:echo", "1", *args, cwd=tmp_path)
    assert done.returncode == 2
    assert says in done.stderr and "max_mem" not in done.stderr and "_mem=" not in done.stderr


@pytest.mark.parametrize("how", ["-c", "-m"])
def test_exec_python_c_and_m_run_in_the_child_and_report_on_the_program(
        tmp_path: Path, how: str) -> None:
    code = "import sys\nprint(__name__, sys.argv[1:])\nsys.exit(4)\n"
    hog = "HOARD = []\nwhile True:\n    HOARD.append(bytearray(b'x') * 2**20)\n"
    if how == "-m":
        (tmp_path / "job.py").write_text(code)
        (tmp_path / "hog.py").write_text(hog)
        run, leak, name = ["-m", "job"], ["-m", "hog"], "python.-m hog"
    else:
        run, leak, name = ["-c", code], ["-c", hog], "python.-c"
    done = isolator("exec", "--max-mem", "64MiB", "--", "python", *run, "x", cwd=tmp_path)
    assert done.returncode == 4 and "__main__ ['x']" in done.stdout, done.stderr
    done = isolator("exec", "--max-mem", "64MiB", "--", "python", *leak, cwd=tmp_path)
    assert done.returncode == 137, done.stderr
    assert name in done.stderr  # the program, not the wrapper that waits for it
    if "(soft)" in done.stderr:
        assert "HOARD" in done.stderr and "who keeps it alive" in done.stderr


def test_exec_another_program_is_named_by_its_command_and_not_walked(tmp_path: Path) -> None:
    hog = f"{sys.executable} -c \"b = bytearray(b'x') * (512 * 2**20)\""
    done = isolator("exec", "--max-mem", "64MiB", "--", "sh", "-c", hog, cwd=tmp_path)
    assert done.returncode == 137, done.stderr
    assert "program.sh" in done.stderr and "Program" not in done.stderr
    assert "who keeps it alive" not in done.stderr  # no walk of the wrapper's heap


def test_exec_python_c_exits_and_fails_as_python_would(tmp_path: Path) -> None:
    done = isolator("exec", "--max-mem", "64MiB", "--", "python", "-c",
                    "import sys; sys.exit('bad input')", cwd=tmp_path)
    assert done.returncode == 1 and "bad input" in done.stderr
    done = isolator("exec", "--max-mem", "64MiB", "--", "python", "-c",
                    "rows = {}\nrows['missing']", cwd=tmp_path)
    assert done.returncode == 1
    assert 'File "<string>", line 2, in <module>' in done.stderr
    assert "KeyError: 'missing'" in done.stderr and "isolator" + os.sep not in done.stderr
