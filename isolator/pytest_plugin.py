"""pytest plugin: ``@pytest.mark.isolated(max_mem="200MB")`` runs a test in an isolated
child under a cap, and a breach fails the test with the post-mortem report in its output.

Installed with isolator (entry point ``pytest11``). The marker takes the options of
:func:`isolator.isolated` (``max_mem``, ``timeout``, ``forensics``, ...). The test's
fixtures are created in the test process and sent to the child, so they must pickle
(``tmp_path`` does; ``monkeypatch`` and ``capsys`` do not, and act in the test process).
"""

from __future__ import annotations

from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "isolated(max_mem=None, timeout=None, **options): run the test in an isolated child "
        "process under a memory cap; a breach fails it with the post-mortem report",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    marker = pyfuncitem.get_closest_marker("isolated")
    if marker is None:
        return None
    from . import MemoryLimitExceeded, isolated

    names = pyfuncitem._fixtureinfo.argnames
    arguments = {name: pyfuncitem.funcargs[name] for name in names}
    call = isolated(*marker.args, **{"report_dir": None, **marker.kwargs})(pyfuncitem.obj)
    try:
        call(**arguments)
    except MemoryLimitExceeded as exc:
        report: Any = exc.report
        if report is not None:
            pyfuncitem.add_report_section("call", "isolator report", str(report))
        raise
    return True
