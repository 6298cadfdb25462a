"""The failure matrix of one isolated call: real children, real memory, real signals."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from typing import Any

import _workloads as w
import pytest

from isolator import (
    MemoryLimitExceeded,
    RemoteTraceback,
    SerializationError,
    TaskTimeout,
    WorkerLost,
    isolated,
)

CAP_MIB = 64
CAP = f"{CAP_MIB}MiB"


def _memory_kinds(exc: BaseException) -> None:
    assert isinstance(exc, MemoryLimitExceeded)
    assert isinstance(exc, MemoryError) and isinstance(exc, WorkerLost)
    assert exc.limit == CAP_MIB * w.MiB
    assert exc.kind in {"soft", "hard"}
    assert exc.peak > 0
    assert pickle.loads(pickle.dumps(exc)).kind == exc.kind


# (name, function, args, options, expected exception type or None, extra check)
MATRIX: list[tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any], Any,
                   Callable[[Any], None] | None]] = [
    ("returns", w.echo, ({"a": [1, 2]},), {}, None, lambda r: r == {"a": [1, 2]}),
    ("raises", w.raise_value_error, ("bad row",), {}, ValueError, None),
    ("python-objects", w.grow_python_objects, (CAP_MIB,), {"max_mem": CAP}, MemoryLimitExceeded,
     _memory_kinds),
    ("numpy", w.grow_numpy, (CAP_MIB,), {"max_mem": CAP}, MemoryLimitExceeded, _memory_kinds),
    ("c-holds-gil", w.grow_in_c_holding_gil, (CAP_MIB,), {"max_mem": CAP}, MemoryLimitExceeded,
     _memory_kinds),
    ("sigkill", w.kill_self, (), {}, WorkerLost, lambda e: e.signal == "SIGKILL"),
    ("segfault", w.segfault, (), {}, WorkerLost, lambda e: e.signal == "SIGSEGV"),
    ("abort", w.abort, (), {}, WorkerLost, lambda e: e.signal == "SIGABRT"),
    ("exit-3", w.exit_three, (), {}, WorkerLost, lambda e: e.exitcode == 3 and e.signal is None),
    ("timeout", w.sleep_for, (30,), {"timeout": 0.5}, TaskTimeout,
     lambda e: e.timeout == 0.5 and isinstance(e, TimeoutError)),
    ("unpicklable-result", w.return_unpicklable, (), {}, SerializationError, None),
    ("unpicklable-exception", w.raise_unpicklable, (), {}, SerializationError,
     lambda e: "UnpicklableError" in str(e)),
    ("setsid-grandchild", w.setsid_grandchild_grows, (CAP_MIB,), {"max_mem": CAP},
     MemoryLimitExceeded, _memory_kinds),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("fn", "args", "options", "expected", "check"),
    [case[1:] for case in MATRIX],
    ids=[case[0] for case in MATRIX],
)
def test_failure_matrix(fn: Callable[..., Any], args: tuple[Any, ...], options: dict[str, Any],
                        expected: Any, check: Callable[[Any], Any] | None) -> None:
    call = isolated(**options)(fn)
    if expected is None:
        result = call(*args)
        assert check is None or check(result)
        return
    with pytest.raises(expected) as info:
        call(*args)
    if check is not None:
        assert check(info.value) is not False


def test_user_exception_keeps_type_message_and_child_traceback() -> None:
    with pytest.raises(ValueError, match="bad row") as info:
        isolated(w.raise_value_error)("bad row")
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "raise_value_error" in cause.tb and "_workloads.py" in cause.tb


def test_soft_breach_names_the_line_that_crossed_the_cap() -> None:
    with pytest.raises(MemoryLimitExceeded) as info:
        isolated(max_mem=CAP)(w.grow_python_objects)(CAP_MIB)
    if info.value.kind == "soft":
        assert isinstance(info.value.__cause__, RemoteTraceback)
        assert "grow_python_objects" in info.value.__cause__.tb


def test_mmap_of_a_big_file_does_not_trip_the_cap(tmp_path: Any) -> None:
    path = tmp_path / "big.bin"
    with open(path, "wb") as fh:
        chunk = b"\x01" * (8 * w.MiB)
        for _ in range(128):  # 1 GiB
            fh.write(chunk)
    total = isolated(max_mem="256MiB")(w.read_file_through_mmap)(str(path))
    assert total == (1024 * w.MiB) // os.sysconf("SC_PAGE_SIZE")


def test_a_big_caller_does_not_count_against_the_child() -> None:
    ballast = bytearray(b"\x01") * (1024 * w.MiB)
    try:
        assert isolated(max_mem="256MiB")(w.use_a_little)(10) == 10 * w.MiB
    finally:
        del ballast


def test_child_stdout_reaches_the_caller_not_the_protocol(capfd: Any) -> None:
    assert isolated(w.print_and_return)("hello from the child") == "hello from the child"
    assert "hello from the child" in capfd.readouterr().out


def test_each_call_gets_a_fresh_process() -> None:
    pids = {isolated(os.getpid)() for _ in range(3)}
    assert len(pids) == 3 and os.getpid() not in pids
