"""The pytest marker, run by pytest itself in a subprocess (pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_marker_passes_a_small_test_and_fails_a_greedy_one_with_the_report(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import os
        os.environ["RUNNER_PID"] = str(os.getpid())  # the pytest process, before any child
    """)
    pytester.makepyfile(test_budget="""
        import os
        import pytest

        @pytest.mark.isolated(max_mem="64MiB")
        def test_small(tmp_path):
            (tmp_path / "f").write_text("ok")
            assert os.getpid() != int(os.environ["RUNNER_PID"])

        @pytest.mark.isolated(max_mem="64MiB")
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
