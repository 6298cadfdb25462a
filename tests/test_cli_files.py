"""Files the command line writes: no link is followed, nothing is world-readable, a
shared folder is refused, and a journal that cannot be trusted wipes nothing.

The races are real: another user (uid nobody) plants symbolic links at the names the
output, its temporary files and its journal could take, before and while a batch runs.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli_map import cli, env, write_inputs

NOBODY = 65534
# The other user runs the system's interpreter: the one of a venv under /root is root's.
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="planting as another user needs root")


@pytest.fixture
def report(tmp_path: Path) -> Path:
    """A real report of a real breach."""
    inputs = tmp_path / "breach.jsonl"
    inputs.write_text("300\n")
    done = cli(tmp_path, "map", "_workloads:need_mib", str(inputs), "--max-mem", "64MiB")
    assert done.returncode == 1, done.stderr
    (found,) = (tmp_path / "reports").iterdir()
    return found


def _victim(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir(exist_ok=True)
    victim = folder / "precious"
    victim.write_text("precious\n")
    return victim


def test_report_o_writes_0600_under_umask_000(tmp_path: Path, report: Path) -> None:
    out = tmp_path / "r.html"
    done = subprocess.run([sys.executable, "-m", "isolator", "report", str(report), "--format",
                           "html", "-o", str(out)], cwd=tmp_path, env=env(tmp_path),
                          capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: os.umask(0))
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".r.html")]  # no temp left


@pytest.mark.parametrize("dangling", [True, False])
def test_report_o_never_follows_a_link(tmp_path: Path, report: Path, dangling: bool) -> None:
    victim = _victim(tmp_path)
    if dangling:
        victim.unlink()
    out = tmp_path / "r.html"
    out.symlink_to(victim)
    done = cli(tmp_path, "report", str(report), "-o", str(out))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "symbolic link" in done.stderr
    assert not victim.exists() if dangling else victim.read_text() == "precious\n"


@pytest.mark.parametrize("mode", [0o777, 0o1777])
def test_a_folder_others_can_write_is_refused_unless_allowed(tmp_path: Path, report: Path,
                                                             mode: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    inputs = write_inputs(tmp_path, 2)
    for args in (["report", str(report), "-o", str(shared / "r.txt")],
                 ["map", "_workloads:logged_echo", str(inputs), "--out", str(shared / "o")]):
        done = cli(tmp_path, *args)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
        assert "--allow-shared-dir" in done.stderr and "other users can write" in done.stderr
        assert not Path(args[-1]).exists()
        allowed = cli(tmp_path, *args, "--allow-shared-dir")
        assert allowed.returncode == 0, allowed.stderr
    assert (shared / "r.txt").stat().st_mode & 0o777 == 0o600
    assert (shared / "o").stat().st_mode & 0o777 == 0o600
    assert (shared / "o.journal.sqlite").stat().st_mode & 0o777 == 0o600


PLANTER = textwrap.dedent("""
    import os, sys
    folder, victim, stop, suffixes = sys.argv[1:5]
    names = sys.argv[5:]
    while not os.path.exists(stop):
        # Next to each file the batch made (not the links planted here), the names a
        # writer might open next.
        made = [n for n in os.listdir(folder) if not os.path.islink(os.path.join(folder, n))]
        for name in names + [n + s for n in made for s in suffixes.split(",") if s]:
            try:
                os.symlink(victim, os.path.join(folder, name))
            except OSError:
                pass
""")


@pytest.fixture(params=[0o1777, 0o777], ids=["sticky", "open"])
def shared_folder(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A folder every user can write to, where the other user can reach it (pytest's own
    folders are root's alone): as /tmp is (1777: others cannot remove or rename root's
    files), or wide open (0777)."""
    folder = Path(tempfile.mkdtemp(prefix="isolator-shared-", dir="/tmp"))
    folder.chmod(request.param)
    yield folder
    shutil.rmtree(folder)


Runs = list[subprocess.CompletedProcess[str]]


def _batch_with_a_planter(tmp_path: Path, shared: Path, names: list[str],
                          suffixes: str) -> tuple[Path, Path, Runs]:
    victim = _victim(tmp_path)
    inputs = write_inputs(tmp_path, 20)
    out = shared / "out.jsonl"
    stop = shared / "stop"  # where the other user can see it
    planter = subprocess.Popen([SYSTEM_PYTHON, "-c", PLANTER, str(shared), str(victim),
                                str(stop), suffixes, *names], user=NOBODY, group=NOBODY)
    try:
        args = ["map", "_workloads:logged_echo", str(inputs), "--out", str(out),
                "--allow-shared-dir", "--workers", "2"]
        runs = [cli(tmp_path, *args), cli(tmp_path, *args)]  # a resume opens them again
    finally:
        stop.touch()
        try:
            planter.wait(30)
        finally:
            planter.kill()
            planter.wait()
    return victim, out, runs


@as_root
@pytest.mark.timeout(120)
def test_links_planted_at_the_temporary_names_are_never_followed(
        tmp_path: Path, shared_folder: Path) -> None:
    with open("/proc/sys/kernel/ns_last_pid") as fh:
        last = int(fh.read())
    # The names the old code used (OUT.tmp-<pid>) for the next pids, and any NAME.tmp.
    names = [f"out.jsonl.tmp-{pid}" for pid in range(last, last + 400)]
    victim, out, runs = _batch_with_a_planter(tmp_path, shared_folder, names, ".tmp")
    assert victim.read_text() == "precious\n"
    for done in runs:
        assert done.returncode == 0, done.stderr
    assert not out.is_symlink() and out.stat().st_mode & 0o777 == 0o600
    assert sorted(int(line.split(",")[0].split(":")[1]) for line in
                  out.read_text().splitlines()) == list(range(20))


@as_root
@pytest.mark.timeout(120)
def test_links_planted_at_the_journals_files_are_never_followed(
        tmp_path: Path, shared_folder: Path) -> None:
    names = [f"out.jsonl.journal.sqlite{suffix}" for suffix in ("-wal", "-shm", "-journal")]
    victim, _, runs = _batch_with_a_planter(tmp_path, shared_folder, names, "-wal,-shm")
    assert victim.read_text() == "precious\n"
    for done in runs:  # SQLite will not open its files through a link: the batch stops
        assert done.returncode == 2 and "journal" in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


@as_root
def test_links_planted_at_out_and_at_the_journal_are_refused(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    inputs = write_inputs(tmp_path, 2)
    for planted in ("out.jsonl", "out.jsonl.journal.sqlite"):
        out = tmp_path / "out.jsonl"
        for stale in (out, tmp_path / "out.jsonl.journal.sqlite"):
            stale.unlink(missing_ok=True)
        (tmp_path / planted).symlink_to(victim)
        done = cli(tmp_path, "map", "_workloads:logged_echo", str(inputs), "--out", str(out))
        assert done.returncode == 2 and "symbolic link" in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert victim.read_text() == "precious\n"


def _finished_batch(tmp_path: Path) -> tuple[list[str], Path, Path]:
    inputs = write_inputs(tmp_path, 300)
    out = tmp_path / "out.jsonl"
    args = ["map", "_workloads:logged_echo", str(inputs), "--out", str(out), "--workers", "2"]
    assert cli(tmp_path, *args).returncode == 0
    (tmp_path / "ran.log").unlink()
    return args, out, tmp_path / "out.jsonl.journal.sqlite"


@pytest.mark.parametrize("damage", ["empty", "truncated", "corrupted-page", "no-batch"])
def test_a_journal_that_cannot_be_trusted_wipes_nothing(tmp_path: Path, damage: str) -> None:
    args, out, journal = _finished_batch(tmp_path)
    before = out.read_text()
    size = journal.stat().st_size
    if damage == "empty":
        journal.write_bytes(b"")
    elif damage == "truncated":
        os.truncate(journal, size // 2)
    elif damage == "corrupted-page":
        with open(journal, "r+b") as fh:
            fh.seek(size - 4096)  # the header of the last data page: no valid page type
            fh.write(b"\xff" * 12)
    else:
        db = sqlite3.connect(journal)
        db.execute("DELETE FROM meta")
        db.commit()
        db.close()
    done = cli(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert out.read_text() == before
    assert not (tmp_path / "ran.log").exists()  # nothing ran again
