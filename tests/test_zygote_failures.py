"""The zygote cannot start, or cannot be restarted: calls fail, nothing is left behind.

Each case runs in a process of its own: it replaces that process's supervisor.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent

NO_START = """
    import os, threading
    from isolator import WorkerStartupError, _zygote_link
    from isolator._supervisor import Supervisor

    fds = len(os.listdir("/proc/self/fd"))
    _zygote_link._CODE = "raise SystemExit(3)"
    try:
        Supervisor()
    except WorkerStartupError as exc:
        print("raised:", exc)
    for thread in threading.enumerate():
        if thread.name.startswith("isolator"):
            thread.join(5)
    print("threads:", sorted(t.name for t in threading.enumerate()))
    print("fds:", len(os.listdir("/proc/self/fd")) - fds)
"""

NO_RESTART = """
    import os, signal, threading, time
    import _workloads as w
    from isolator import WorkerLost, isolated, _zygote_link
    from isolator._supervisor import get_supervisor

    first = get_supervisor()
    outcome = []
    def call():
        try:
            isolated(w.sleep_for)(30)
        except WorkerLost as exc:
            outcome.append(type(exc).__name__)
    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.5)
    code, _zygote_link._CODE = _zygote_link._CODE, "raise SystemExit(3)"
    started = time.monotonic()
    os.kill(first.zygote_pid, signal.SIGKILL)
    thread.join(10)
    print("running call:", outcome, round(time.monotonic() - started) < 5)
    _zygote_link._CODE = code
    print("next call:", isolated(w.echo)(7), get_supervisor() is not first)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", ["no-start", "no-restart"])
def test_a_zygote_that_cannot_start(case: str) -> None:
    script = textwrap.dedent(NO_START if case == "no-start" else NO_RESTART)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=50, env=env)
    assert done.returncode == 0, done.stderr
    if case == "no-start":
        assert "raised: the zygote did not start" in done.stdout, done.stdout
        assert "threads: ['MainThread']" in done.stdout, done.stdout
        assert "fds: 0" in done.stdout, done.stdout
    else:
        assert "running call: ['WorkerLost'] True" in done.stdout, done.stdout + done.stderr
        assert "next call: 7 True" in done.stdout, done.stdout + done.stderr
