"""pytest plugin: run tests in isolated children under a memory cap, report their peaks,
and fail tests that leak. Installed with isolator (entry point ``pytest11``).

Markers:

``@pytest.mark.isolated(max_mem="200MB", timeout=60, ...)``
    Runs the test in a fresh child forked from isolator's zygote, under the cap. The
    marker takes the per-task options of :class:`isolator.IsolatedExecutor`
    (``max_mem``, ``soft_mem``, ``timeout``, ``forensics``, ``rlimit_data``, ``cgroup``,
    ``kill_grace``, ``preload``, ``retry``/``stop``/``wait``/``escalate``,
    ``report_dir``, ``on_report``). A breach fails the test with the post-mortem report in
    its output under "isolator report"; reports stay in memory unless ``report_dir`` is
    given.
``@pytest.mark.isolated_leaks(limit="10MB", runs=3)``
    Runs the test in one isolated child ``1 + runs`` times: a warm-up run, then ``runs``
    measured runs, with ``gc.collect()`` and ``malloc_trim(0)`` before each reading of the
    child's RSS. It fails when the test leaves more than ``limit`` behind per run, with
    the report of what grew (by type, and who holds it) under "isolator leak report".
    The test must be repeatable with the same fixture values. Combine it with
    ``@pytest.mark.isolated(...)`` for a cap or other options.
``@pytest.mark.not_isolated``
    Runs the test in the pytest process even under a default cap (for tests whose
    fixtures cannot be sent to a child, such as ``capsys`` or ``monkeypatch``).

Options:

``--isolator-max-mem SIZE`` (ini: ``isolator_max_mem``)
    A default cap: every test function runs isolated under it, marked or not, unless
    marked ``not_isolated``; a marker's own ``max_mem`` wins. The command line wins over
    the ini file. (``unittest.TestCase`` methods are not called as test functions: they
    always run in the pytest process.)
``--isolator-report``
    At the end of the session, a summary of every isolated test: its peak memory (the
    highest the supervisor saw of the child's tree), its cap, its id; highest first.

The test runs as in the pytest process: its module is imported in the child through
pytest's assertion rewriting (``assert f() == 2`` fails with ``assert 1 == 2`` and
``where 1 = f()``, and comparisons get pytest's explanations; a conftest's own
``pytest_assertrepr_compare`` is not called there), and a failure's traceback is the
child's frames of the test, not isolator's. ``pytest.skip``, ``xfail`` and ``fail`` work
in the child. Fixtures are created in the pytest process and sent to the child, so their
values must pickle (``tmp_path`` does; ``capsys`` and ``monkeypatch`` do not).
"""

from __future__ import annotations

from typing import Any

import pytest

_PEAK = pytest.StashKey[tuple[int, int | None]]()  # an isolated test's (peak, cap)
_DEFAULT_CAP = pytest.StashKey[int | None]()
_NO_BUDGET = 1 << 62  # one test runs at a time: the pools' admission budget is moot


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--isolator-max-mem``, ``--isolator-report`` and the ``isolator_max_mem`` ini."""
    group = parser.getgroup("isolator", "isolator: memory caps for tests")
    group.addoption("--isolator-max-mem", metavar="SIZE", default=None,
                    help="run every test in an isolated child under this memory cap "
                         "(\"512MB\"); a marker's max_mem wins")
    group.addoption("--isolator-report", action="store_true", default=False,
                    help="summarise the peak memory of every isolated test at the end")
    parser.addini("isolator_max_mem", "the default memory cap of every test, as "
                  "--isolator-max-mem", default=None)


def pytest_configure(config: pytest.Config) -> None:
    """Declare the markers, read the default cap, register the peak summary if asked."""
    for line in (
        "isolated(max_mem=None, timeout=None, **options): run the test in an isolated child "
        "process under a memory cap; a breach fails it with the post-mortem report",
        "isolated_leaks(limit, runs=3): run the test 1 + runs times in one isolated child "
        "and fail it when it leaves more than limit behind per run",
        "not_isolated: run the test in the pytest process even under --isolator-max-mem",
    ):
        config.addinivalue_line("markers", line)
    config.stash[_DEFAULT_CAP] = _default_cap(config)
    if config.getoption("isolator_report"):
        from ._pytest.peaks import PeakSummary

        config.pluginmanager.register(PeakSummary(), "isolator-peak-summary")


def _default_cap(config: pytest.Config) -> int | None:
    from . import ConfigurationError, parse_size

    value = config.getoption("isolator_max_mem") or config.getini("isolator_max_mem")
    if not value:
        return None
    try:
        return parse_size(value, name="--isolator-max-mem")
    except ConfigurationError as exc:
        raise pytest.UsageError(str(exc)) from None


def _options(item: pytest.Function) -> dict[str, Any] | None:
    """The executor options to run ``item`` with, or None to run it here."""
    marker = item.get_closest_marker("isolated")
    leaks = item.get_closest_marker("isolated_leaks")
    default = item.config.stash[_DEFAULT_CAP]
    if marker is None and leaks is None and (
            default is None or item.get_closest_marker("not_isolated") is not None):
        return None
    if marker is not None and marker.args:
        pytest.fail(f"{item.nodeid}: @pytest.mark.isolated takes options by name only, "
                    f"got {marker.args!r}", pytrace=False)
    options: dict[str, Any] = {"report_dir": None, **(marker.kwargs if marker else {})}
    if options.get("max_mem") is None:
        options["max_mem"] = default
    return options


def _with_rewriting(options: dict[str, Any], target: Any) -> dict[str, Any]:
    from ._pytest.child import IsolatedTest

    if not isinstance(target, IsolatedTest) or target.spec.origin is None:
        return options
    # First, so that the zygote imports the test module (it does: the function's module
    # is warmed for its children) with the asserts rewritten.
    preload = options.get("preload", ())
    preload = (preload,) if isinstance(preload, str) else tuple(preload)
    return {**options, "preload": ("isolator._pytest.zygote_rewrite", *preload)}


def _leak_spec(item: pytest.Function, forensics: str) -> Any:
    marker = item.get_closest_marker("isolated_leaks")
    if marker is None:
        return None
    from . import parse_size
    from ._pytest.child import LeakSpec

    def spec(limit: int | str, runs: int = 3) -> LeakSpec:
        if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
            raise ValueError(f"runs={runs!r} must be a positive int")
        return LeakSpec(parse_size(limit, name="limit"), runs, forensics)

    try:
        return spec(*marker.args, **marker.kwargs)
    except (TypeError, ValueError) as exc:
        pytest.fail(f"{item.nodeid}: @pytest.mark.isolated_leaks: {exc}", pytrace=False)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Call an isolated test in a child (True); None leaves other tests to pytest."""
    __tracebackhide__ = True  # pytest leaves this frame out: the failure is the test's
    options = _options(pyfuncitem)
    if options is None:
        return None
    from ._pytest import leaks, remote

    leak = _leak_spec(pyfuncitem, options.get("forensics", "default"))
    target = remote.isolated_test(pyfuncitem, leak)
    options = _with_rewriting(options, target)
    names = pyfuncitem._fixtureinfo.argnames
    arguments = {name: pyfuncitem.funcargs[name] for name in names}
    leak_found = None
    try:
        _run(pyfuncitem, target, arguments, options)
    except leaks.LeakFound as found:
        leak_found = found  # failed below, out of this block: no chain to the child's
    except BaseException as exc:  # noqa: BLE001 - every failure is reported as the test's
        raise remote.for_pytest(exc, pyfuncitem)  # noqa: B904 - it is exc, or stands for it
    if leak_found is not None:
        _leak_failure(pyfuncitem, leak_found, options)
    return True


def _run(item: pytest.Function, target: Any, arguments: dict[str, Any],
         options: dict[str, Any]) -> None:
    from . import IsolatedExecutor, MemoryLimitExceeded, SerializationError, parse_size

    cap = None if options["max_mem"] is None else parse_size(options["max_mem"])
    peak = 0
    executor = IsolatedExecutor(1, memory_budget=_NO_BUDGET, **options)
    item.stash[_PEAK] = (0, cap)
    try:
        with executor:
            executor.submit(target, **arguments).result()
    except MemoryLimitExceeded as exc:
        peak = exc.peak
        if exc.report is not None:
            item.add_report_section("call", "isolator report", str(exc.report))
        raise
    except SerializationError as exc:
        _name_unsendable(exc, arguments)
        raise
    finally:
        item.stash[_PEAK] = (max(peak, executor.statistics().peak_rss), cap)


def _name_unsendable(exc: BaseException, arguments: dict[str, Any]) -> None:
    # "cannot send the function and its arguments": say which fixture, and what to do.
    import pickle

    import dill

    bad = []
    for name, value in arguments.items():
        try:
            pickle.dumps(value)
        except Exception:  # noqa: BLE001 - any reason: dill may still send it
            try:
                dill.dumps(value, recurse=True)
            except Exception:  # noqa: BLE001
                bad.append(name)
    if bad:
        exc.args = (f"{exc.args[0] if exc.args else exc}; the fixture value of "
                    f"{', '.join(map(repr, bad))} cannot be sent to the isolated child: "
                    "mark the test @pytest.mark.not_isolated to run it in the pytest "
                    "process", *exc.args[1:])


def _leak_failure(item: pytest.Function, found: Any, options: dict[str, Any]) -> None:
    import os

    from ._pytest.leaks import report_of

    cap = item.stash.get(_PEAK, (0, None))[1]
    report = report_of(found, item.nodeid, cap)
    if options.get("report_dir") is not None:
        report.write(os.fspath(options["report_dir"]))
    if options.get("on_report") is not None:
        options["on_report"](report)
    item.add_report_section("call", "isolator leak report", str(report))
    pytest.fail(f"{found} (what grew: the isolator leak report below)", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Put an isolated test's peak and cap on its call's report."""
    report = yield
    if call.when == "call" and _PEAK in item.stash:
        # Attributes of a report travel with it from a pytest-xdist worker.
        report.isolator_peak, report.isolator_cap = item.stash[_PEAK]
    return report
