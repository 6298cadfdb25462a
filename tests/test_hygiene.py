"""No process of isolator outlives its caller: exit, Ctrl-C, SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _processes import gone_within

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}"}  # scripts import isolator

SCRIPT = textwrap.dedent("""
    import sys, threading
    import _workloads as w
    from isolator import isolated
    run = isolated(max_mem="256MB")(w.pid_and_sleep)
    {body}
""")


def _start(body: str) -> tuple[subprocess.Popen[str], list[int]]:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(body=body)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    pids = [int(proc.stdout.readline())]  # the child prints its pid: it is running
    return proc, pids


@pytest.mark.timeout(60)
def test_children_die_within_a_second_of_the_caller_being_sigkilled() -> None:
    proc, pids = _start("run(60)")
    proc.kill()
    proc.wait(10)
    assert gone_within(pids, 1.0)


@pytest.mark.timeout(60)
def test_ctrl_c_kills_the_child_and_raises_keyboard_interrupt() -> None:
    proc, pids = _start("run(60)")
    proc.send_signal(signal.SIGINT)
    assert gone_within(pids, 1.0)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err


@pytest.mark.timeout(60)
def test_normal_exit_with_a_call_running_in_a_thread() -> None:
    # Exit once the child runs (it has said HELLO), however loaded the machine is.
    body = ("threading.Thread(target=run, args=(60,), daemon=True).start()\n"
            "import time\nfrom isolator._engine.engine import get_engine\n"
            "engine, end = get_engine(), time.monotonic() + 20\n"
            "while time.monotonic() < end and not engine.ask(\n"
            "        lambda: any(c.hello for c in engine._children.values())):\n"
            "    time.sleep(0.01)\n"
            "time.sleep(0.3)  # from its HELLO to its first line\n")
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(body=body)], env=ENV,
                          capture_output=True, text=True, timeout=30, check=False)
    pids = [int(line) for line in proc.stdout.split()]
    assert proc.returncode == 0, proc.stderr
    assert pids and gone_within(pids, 1.0)


@pytest.mark.timeout(60)
def test_after_a_normal_exit_not_even_a_zombie_is_left() -> None:
    # The zygote reaps what it kills before it exits: a child it left unreaped would be
    # init's zombie, listed by ps until init gets round to it.
    body = ("run(0)\n"
            "from isolator._wire.procfs import children\n"
            "from isolator._engine.engine import get_engine\n"
            "print(*children(get_engine().zygote_pid), flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(body=body)], env=ENV,
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    spares = [int(pid) for pid in proc.stdout.split()[1:]]
    assert spares  # the zygote keeps a child forked ahead
    end = time.monotonic() + 0.5
    while time.monotonic() < end and any(os.path.exists(f"/proc/{p}") for p in spares):
        time.sleep(0.01)
    assert not [p for p in spares if os.path.exists(f"/proc/{p}")]


@pytest.mark.timeout(60)
def test_a_killed_zygote_fails_running_calls_and_is_replaced() -> None:
    import _workloads as w

    from isolator import WorkerLost, isolated
    from isolator._engine.engine import get_engine

    engine = get_engine()
    zygote = engine.zygote_pid
    call = isolated(w.sleep_for)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(call, 30)
        time.sleep(0.3)
        os.kill(zygote, signal.SIGKILL)
        with pytest.raises(WorkerLost):
            future.result(timeout=10)
    assert isolated(w.echo)(5) == 5
    assert engine.zygote_pid not in (None, zygote)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("running", ["a task", "a reused worker"])
def test_a_killed_warden_fails_running_calls_and_is_replaced(running: str) -> None:
    import _workloads as w

    from isolator import IsolatedExecutor, MemoryLimitExceeded, WorkerLost, isolated
    from isolator._engine.engine import get_engine

    engine = get_engine()
    warden = engine.warden_pid
    assert warden is not None
    with IsolatedExecutor(1, max_mem="128MB", max_tasks_per_child=(
            1 if running == "a task" else None)) as ex:
        assert ex.submit(w.echo, 1).result(timeout=30) == 1
        future = ex.submit(w.sleep_for, 30)
        time.sleep(0.3)
        os.kill(warden, signal.SIGKILL)
        with pytest.raises(WorkerLost, match="warden"):
            future.result(timeout=10)
        assert ex.submit(w.echo, 2).result(timeout=30) == 2  # the executor goes on
    assert engine.warden_pid not in (None, warden)
    # and the new warden enforces the cap
    with pytest.raises(MemoryLimitExceeded):
        isolated(max_mem="64MB")(w.grow_python_objects)(64)


@pytest.mark.timeout(60)
def test_a_program_that_exits_leaves_no_helper_even_as_a_zombie() -> None:
    # The program reaps its zygote and its warden before it exits: one left to its
    # parent's parent (init, which in a container may never reap it) is a zombie.
    script = textwrap.dedent("""
        import _workloads as w
        from isolator import isolated
        from isolator._engine.engine import get_engine

        assert isolated(max_mem="64MB")(w.echo)(1) == 1
        print(get_engine().zygote_pid, get_engine().warden_pid, flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30, env=ENV)
    assert done.returncode == 0, done.stderr
    helpers = [int(pid) for pid in done.stdout.split()]
    assert len(helpers) == 2
    left = [pid for pid in helpers if os.path.exists(f"/proc/{pid}")]
    assert not left, [open(f"/proc/{pid}/stat").read() for pid in left]


# A warden that says it is ready and then takes no round of samples (hung): the engine
# sees no heartbeat while a child runs, kills the child and starts a real warden.
HUNG_WARDEN = """
    import threading, time
    import _workloads as w
    from isolator import WorkerLost, isolated
    from isolator._engine import warden_link as _warden_link
    from isolator._engine.engine import get_engine

    code, _warden_link._CODE = _warden_link._CODE, (
        "import os, pickle, socket, sys, time; "
        "s = socket.socket(fileno=int(sys.argv[1])); "
        "s.send(pickle.dumps(('ready', os.getpid()))); time.sleep(60)")
    engine = get_engine()
    hung = engine.warden_pid
    _warden_link._CODE = code  # the replacement is a real warden
    started = time.monotonic()
    try:
        isolated(max_mem="64MB")(w.sleep_for)(30)
    except WorkerLost as exc:
        print("running call:", "warden" in str(exc), round(time.monotonic() - started) < 10)
    print("replaced:", engine.warden_pid not in (None, hung))
    print("next call:", isolated(max_mem="64MB")(w.echo)(7))
"""


@pytest.mark.timeout(60)
def test_a_hung_warden_is_replaced() -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(HUNG_WARDEN)],
                          capture_output=True, text=True, timeout=50, env=ENV)
    assert done.returncode == 0, done.stderr
    assert "running call: True True" in done.stdout, done.stdout + done.stderr
    assert "replaced: True" in done.stdout and "next call: 7" in done.stdout, done.stdout


@pytest.mark.parametrize("code", ["import time; time.sleep(60)", "raise SystemExit(3)"])
def test_a_zygote_that_never_says_ready_is_not_left_behind(
        monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    from isolator import WorkerStartupError
    from isolator._engine import zygote_link as _zygote_link

    monkeypatch.setattr(_zygote_link, "_CODE", code)
    monkeypatch.setattr(_zygote_link, "_START_WITHIN", 0.5)
    link = _zygote_link.ZygoteLink()
    with pytest.raises((WorkerStartupError, TimeoutError)):
        link.start()
    pid = link.pid
    assert pid is not None and gone_within([pid], 1.0)
    assert not os.path.exists(f"/proc/{pid}")  # reaped, not even a zombie
    assert link.sock is None and not link.up.is_set()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["shutdown-no-wait", "no-shutdown", "pool-no-close"])
def test_work_handed_to_a_pool_runs_before_the_program_exits(tmp_path: Path, how: str) -> None:
    # As concurrent.futures documents: the program does not exit before pending work has
    # run, whatever shutdown() was told. One worker, three tasks: two are still queued.
    record = tmp_path / "spans"
    if how == "pool-no-close":
        body = ("pool = IsolatedPool(1)\n"
                "for _ in range(3): pool.apply_async(w.record_span, (PATH, 0.3))\n")
    else:
        body = ("ex = IsolatedExecutor(1)\n"
                "for _ in range(3): ex.submit(w.record_span, PATH, 0.3)\n"
                + ("ex.shutdown(wait=False)\n" if how == "shutdown-no-wait" else ""))
    script = ("import _workloads as w\nfrom isolator import IsolatedExecutor, IsolatedPool\n"
              f"PATH = {str(record)!r}\n" + body + "print('leaving', flush=True)\n")
    done = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0 and "leaving" in done.stdout, done.stderr
    assert len(record.read_text().splitlines()) == 3


# A zygote that cannot start, or cannot be restarted: calls fail, nothing is left behind.
# Each case runs in a process of its own, since it replaces that process's engine.

NO_START = """
    import os, threading
    from isolator import WorkerStartupError
    from isolator._engine import zygote_link as _zygote_link
    from isolator._engine.engine import Engine

    fds = len(os.listdir("/proc/self/fd"))
    _zygote_link._CODE = "raise SystemExit(3)"
    try:
        Engine()
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
    from isolator import WorkerLost, isolated
    from isolator._engine import zygote_link as _zygote_link
    from isolator._engine.engine import get_engine

    first = get_engine()
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
    print("next call:", isolated(w.echo)(7), get_engine() is not first)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", ["no-start", "no-restart"])
def test_a_zygote_that_cannot_start(case: str) -> None:
    script = textwrap.dedent(NO_START if case == "no-start" else NO_RESTART)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=50, env=ENV)
    assert done.returncode == 0, done.stderr
    if case == "no-start":
        assert "raised: the zygote did not start" in done.stdout, done.stdout
        assert "threads: ['MainThread']" in done.stdout, done.stdout
        assert "fds: 0" in done.stdout, done.stdout
    else:
        assert "running call: ['WorkerLost'] True" in done.stdout, done.stdout + done.stderr
        assert "next call: 7 True" in done.stdout, done.stdout + done.stderr
