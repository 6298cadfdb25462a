"""Tasks that behave as hostile or careless code does: they forge frames, daemonise,
plant modules, swallow the soft limit's exception. Importable, so children get them by
reference; each returns what a test checks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

MiB = 1 << 20

# A program of another user's: it writes a forged frame into every socket it inherited.
FORGER = """#!/bin/sh
n=0
for fd in /proc/$$/fd/*; do
    case "$(readlink "$fd")" in
        socket:*) n=$((n + 1)); num=$(basename "$fd"); eval "cat \"$1\" >&$num" ;;
    esac
done 2>/dev/null
echo "$n"
"""


def forged_frame(marker: str) -> bytes:
    """A RESULT frame whose pickle, if the caller loaded it, would run a command there."""
    import struct

    body = b"cos\nsystem\n(V touch " + marker.encode() + b"\ntR."
    return struct.pack("!BQ", 3, len(body)) + body


def forge_frames_from_a_grandchild(script: str, frame: str) -> str:
    """Run a program (as nobody when we are root) with every fd this task may pass on
    (``close_fds=False``, as ``os.system`` does): it writes ``frame`` into every socket
    it inherited. Return what it saw, as this task's own result."""
    user = 65534 if os.geteuid() == 0 else None
    done = subprocess.run(["/bin/sh", script, frame], close_fds=False, user=user,
                          capture_output=True, text=True, timeout=30, check=False)
    return f"sockets seen by the grandchild: {done.stdout.strip() or done.stderr.strip()}"


def _own_socket() -> int:
    from isolator._child import child

    assert child._sock is not None
    return child._sock.fileno()


def send_an_oversized_frame() -> str:
    """Announce a 64 GiB RESULT on the task's own socket, then wait to be killed."""
    import struct

    os.write(_own_socket(), struct.pack("!BQ", 3, 64 << 30))
    time.sleep(30)
    return "not killed"


def send_an_unknown_frame() -> str:
    import struct

    os.write(_own_socket(), struct.pack("!BQ", 99, 1) + b"x")
    time.sleep(30)
    return "not killed"


DAEMON = r"""
import os, sys, time
mib = int(sys.argv[1]); pidfile = sys.argv[2]
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
with open(pidfile + ".tmp", "w") as fh:
    fh.write(str(os.getpid()))
os.rename(pidfile + ".tmp", pidfile)
hoard = bytearray(mib << 20)
for i in range(0, len(hoard), 4096):
    hoard[i] = 1
time.sleep(60)
"""


def start_a_daemon(script: str, pidfile: str, mib: int, wait: float) -> str:
    """Double-fork a setsid daemon that touches ``mib`` MiB and sleeps; wait for its pid
    file and ``wait`` seconds more, then return."""
    subprocess.run([sys.executable, script, str(mib), pidfile], check=True)
    end = time.monotonic() + 10
    while not os.path.exists(pidfile) and time.monotonic() < end:
        time.sleep(0.005)
    time.sleep(wait)
    return "ok"


def start_setsid_and_return(pidfile: str) -> str:
    """Start a ``setsid`` process that would sleep a minute, and return at once."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    with open(pidfile, "w") as fh:
        fh.write(str(proc.pid))
    return "ok"


def import_planted(name: str) -> str:
    """Import a module from the caller's working directory (the user's own module)."""
    import importlib

    return str(importlib.import_module(name).VALUE)


def world() -> dict[str, Any]:
    """What this child sees of its caller's world."""
    import resource

    current = os.umask(0)
    os.umask(current)
    return {"env": dict(os.environ), "umask": current, "argv": list(sys.argv),
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE), "cwd": os.getcwd()}


def write_to_a_closed_pipe() -> str:
    reader, writer = os.pipe()
    os.close(reader)
    try:
        os.write(writer, b"x")
    except BrokenPipeError:
        return "BrokenPipeError"
    finally:
        os.close(writer)
    return "wrote"


def swallow_the_soft_limit(mib: int) -> str:
    """Grow towards ``mib`` MiB, catching everything, then carry on as if nothing was."""
    held = []
    try:
        for _ in range(mib):
            held.append(bytearray(MiB))
            for i in range(0, MiB, 4096):
                held[-1][i] = 1
    except BaseException:  # what careless code does
        pass
    time.sleep(20)  # keeps going (and holding) long after the breach
    return "carried on"


def swallow_in_an_asyncio_callback(mib: int) -> str:
    """Grow inside an event loop's callback: the loop logs the exception and goes on."""
    held: list[bytearray] = []

    def grow() -> None:
        for _ in range(mib):
            held.append(bytearray(MiB))
            for i in range(0, MiB, 4096):
                held[-1][i] = 1

    async def main() -> None:
        asyncio.get_running_loop().call_soon(grow)
        await asyncio.sleep(20)

    asyncio.run(main())
    return "carried on"


def kill_self_group() -> None:
    os.killpg(os.getpgid(0), signal.SIGKILL)


def fork_workers_sharing(mib: int, workers: int, private_mib: int, seconds: float) -> str:
    """Hold ``mib`` MiB, fork ``workers`` children that share it copy-on-write, each of
    which touches ``private_mib`` MiB of its own and waits ``seconds``; wait for them."""
    import numpy as np

    shared = np.ones(mib * MiB // 8)
    pids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            own = np.ones(private_mib * MiB // 8) if private_mib else None
            time.sleep(seconds)
            os._exit(0 if own is None or own.sum() else 1)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    return f"{shared.sum():.0f}"


def stop_the_warden_then_grow(warden: int, mib: int) -> int:
    """SIGSTOP the process that enforces the cap (the task runs as the same user), then
    grow past the cap at leisure."""
    os.kill(warden, signal.SIGSTOP)
    hold = []
    for _ in range(mib):
        hold.append(bytearray(b"\x01") * MiB)
        time.sleep(0.005)
    return len(hold)


def stop_the_zygote() -> str:
    """SIGSTOP the zygote, this task's parent: no further child could be forked."""
    os.kill(os.getppid(), signal.SIGSTOP)
    return "stopped"


def echo(value: Any) -> Any:
    return value
