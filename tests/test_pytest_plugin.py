"""The pytest plugin, run by pytest itself in a subprocess (pytester), judged by its output."""

from __future__ import annotations

import re

import pytest

pytest_plugins = ["pytester"]

# What a failure must not show: isolator's own files, and the futures machinery.
INTERNALS = re.compile(r"isolator[/\\]\w|concurrent[/\\]futures|RemoteTraceback")

RUNNER_PID = """
    import os
    os.environ["RUNNER_PID"] = str(os.getpid())  # the pytest process, before any child
"""


def _section(text: str, test: str) -> str:
    """The failure section of ``test`` in pytest's output (up to the next one)."""
    match = re.search(rf"_{{3,}} {re.escape(test)} _{{3,}}\n(.*?)(?=\n_{{3,}} |\n={{3,}} )",
                      text, re.S)
    assert match, f"no failure section for {test}:\n{text}"
    return match.group(1)


def test_marker_passes_a_small_test_and_fails_a_greedy_one_with_the_report(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest(RUNNER_PID)
    pytester.makepyfile(test_budget="""
        import os
        import pytest

        @pytest.mark.isolated(max_mem="64MiB")
        def test_small(tmp_path):
            (tmp_path / "f").write_text("ok")
            assert os.getpid() != int(os.environ["RUNNER_PID"])

        @pytest.mark.isolated(max_mem="128MiB")  # room below the cap to report, loaded
        def test_greedy():
            hold = []
            while True:
                hold.append(bytearray(b"x") * 2**20)
    """)
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_small PASSED*", "*test_greedy FAILED*",
                                 "*isolator report*exceeded its memory cap*"])
    greedy = _section(result.stdout.str(), "test_greedy")
    # Where the soft limit stopped it, in the test's own frame.
    assert ">           hold.append(" in greedy or ">       while True:" in greedy, greedy
    assert "MemoryLimitExceeded" in greedy


def test_failures_read_as_in_the_pytest_process(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npython_files = test_*.py check_*.py\n")
    pytester.makepyfile(helpers="""
        def check(x):
            if x > 1:
                raise ValueError(f"bad value {x}")
            return x
    """)
    pytester.makepyfile(test_failures="""
        import pytest
        from helpers import check

        def f():
            return 1

        @pytest.mark.isolated(max_mem="128MiB")
        def test_rewritten():
            assert f() == 2

        @pytest.mark.isolated(max_mem="128MiB")
        def test_compared():
            assert [1, 2, 3] == [1, 2, 4]

        @pytest.mark.isolated(max_mem="128MiB")
        def test_nested():
            for value in [1, 2]:
                check(value)

        class TestMethods:
            @pytest.mark.isolated(max_mem="128MiB")
            def test_method(self):
                number = 41
                assert self.twice(number) == 82

            def twice(self, n):
                return 2 * n + 1

        @pytest.mark.isolated(max_mem="128MiB", timeout=0.5)
        def test_slow():
            import time
            time.sleep(30)

        @pytest.mark.isolated(max_mem="128MiB")
        def test_skipped():
            pytest.skip("not here")

        @pytest.mark.isolated(max_mem="128MiB")
        def test_expected():
            pytest.xfail("known")

        @pytest.mark.isolated(max_mem="128MiB")
        def test_failed():
            pytest.fail("told to")

        @pytest.mark.isolated(max_mem="128MiB")
        async def test_async():
            pass  # never awaited in the child: it must not pass
    """)
    # Named as pytest's defaults do not name a test: the child imports it again itself.
    pytester.makepyfile(check_other="""
        import pytest

        @pytest.mark.isolated(max_mem="128MiB")
        def test_other():
            assert len("abc") == 4
    """)
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-l")
    result.assert_outcomes(failed=8, skipped=1, xfailed=1)
    out = result.stdout.str()
    failures = out[out.index("= FAILURES ="):out.index("short test summary")]
    assert not INTERNALS.search(failures), failures

    rewritten = _section(out, "test_rewritten")
    assert ">       assert f() == 2" in rewritten
    assert "E       assert 1 == 2" in rewritten
    assert "E        +  where 1 = f()" in rewritten
    assert "test_failures.py:9: AssertionError" in rewritten
    assert "At index 2 diff: 3 != 4" in _section(out, "test_compared")
    nested = _section(out, "test_nested")
    assert ">           check(value)" in nested and "value      = 2" in nested
    assert '>           raise ValueError(f"bad value {x}")' in nested
    assert "E           ValueError: bad value 2" in nested and "helpers.py:3: ValueError" in nested
    method = _section(out, "TestMethods.test_method")
    assert "E       assert 83 == 82" in method and "number     = 41" in method
    slow = _section(out, "test_slow")
    assert "TaskTimeout" in slow and "test_failures.py:" in slow
    assert "E       Failed: told to" in _section(out, "test_failed")
    assert "an async def test needs an async plugin" in _section(out, "test_async")
    other = _section(out, "test_other")
    assert "assert 3 == 4" in other and "where 3 = len('abc')" in other


GREEDY_TESTS = """
    import os
    import pytest

    def _allocate(mib):
        hold = bytearray(mib << 20)
        hold[::4096] = b"x" * len(hold[::4096])  # touched: resident, not just reserved
        return hold

    def test_unmarked_small():
        assert os.getpid() != int(os.environ["RUNNER_PID"])

    def test_unmarked_greedy():
        hold = [_allocate(1) for _ in range(300)]

    @pytest.mark.isolated(max_mem="400MiB")
    def test_own_cap():
        hold = _allocate(200)

    @pytest.mark.not_isolated
    def test_in_process(capsys):
        print("here")
        assert capsys.readouterr().out == "here\\n"
        assert os.getpid() == int(os.environ["RUNNER_PID"])
"""


@pytest.mark.parametrize("where", ["command line", "ini file, two xdist workers"])
def test_a_default_cap_isolates_every_test_and_the_report_lists_peaks(
        pytester: pytest.Pytester, where: str) -> None:
    pytester.makeconftest(RUNNER_PID)
    pytester.makepyfile(test_default_cap=GREEDY_TESTS)
    pytester.syspathinsert()
    args = ["-v", "-p", "no:cacheprovider", "--isolator-report"]
    if where == "command line":
        args += ["--isolator-max-mem", "100MB"]
    else:
        pytester.makeini("[pytest]\nisolator_max_mem = 100MB\n")
        args += ["-n", "2"]
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    greedy = _section(out, "test_unmarked_greedy")
    assert "MemoryLimitExceeded" in greedy and "100.0 MiB" in greedy
    rows = {test: (float(peak), unit, f"{cap} {cap_unit}") for peak, unit, cap, cap_unit, test
            in re.findall(r"^ *([\d.]+) (\w+) +([\d.]+) (\w+)  test_default_cap\.py::(\w+)$",
                          out, re.M)}
    assert set(rows) == {"test_unmarked_small", "test_unmarked_greedy", "test_own_cap"}, out
    peak, unit, cap = rows["test_own_cap"]
    # A peak is what the test held of its own: not the interpreter it shares.
    assert unit == "MiB" and 180 <= peak < 400 and cap == "400.0 MiB", rows
    peak, unit, cap = rows["test_unmarked_small"]
    assert (unit != "MiB" or peak < 20) and cap == "100.0 MiB", rows


LEAKS = """
    import ctypes
    import pytest

    _kept = []

    @pytest.mark.isolated_leaks(limit="512KiB")
    def test_keeps_two_mib_a_run():
        _kept.append(bytearray(b"x") * (2 << 20))

    @pytest.mark.isolated_leaks(limit="512KiB")
    def test_keeps_native_memory():
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        address = libc.malloc(2 << 20)
        ctypes.memset(address, 1, 2 << 20)  # touched, and never freed

    @pytest.mark.isolated_leaks(limit="512KiB")
    def test_churns_fifty_mib_a_run():
        data = [bytearray(1 << 20) for _ in range(50)]
        assert sum(map(len, data)) == 50 << 20

    @pytest.mark.isolated_leaks(limit="512KiB")
    def test_churns_small_objects():
        table = {i: str(i) * 3 for i in range(200_000)}
        rows = [[i] for i in range(100_000)]
        assert len(table) + len(rows) == 300_000

    @pytest.mark.isolated_leaks(limit="512KiB", runs=4)
    def test_keeps_a_little():
        _kept.append(bytearray(b"y") * (64 << 10))
"""


def test_the_leak_marker_fails_a_test_that_keeps_memory_with_what_grew(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leaks=LEAKS)
    pytester.makepyfile(test_marker_errors="""
        import pytest

        @pytest.mark.isolated_leaks(limit="1MB", runs=0)
        def test_no_runs():
            pass
    """)
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=3)
    out = result.stdout.str()
    for name, verdict in [("test_keeps_two_mib_a_run", "FAILED"),
                          ("test_keeps_native_memory", "FAILED"),
                          ("test_churns_fifty_mib_a_run", "PASSED"),
                          ("test_churns_small_objects", "PASSED"),
                          ("test_keeps_a_little", "PASSED"), ("test_no_runs", "FAILED")]:
        assert re.search(rf"::{name} {verdict}", out), (name, verdict, out)
    python = _section(out, "test_keeps_two_mib_a_run")
    assert re.search(r"left 2\.\d MiB behind per run over 3 runs", python), python
    assert "isolator leak report" in python and "suspected of leaking memory" in python
    assert "test_leaks._kept" in python and "bytearray" in python  # who holds it, and what
    native = _section(out, "test_keeps_native_memory")
    assert re.search(r"left 2\.\d MiB behind per run", native), native
    assert "runs=0 must be a positive int" in _section(out, "test_no_runs")
