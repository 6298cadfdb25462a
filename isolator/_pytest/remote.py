"""In the pytest process: a test made into an :class:`IsolatedTest`, and its failure made
into the exception pytest reports, with the child's frames of the test as its traceback.

What comes back from the child is the test's exception, its frames there (file, line,
function, see ``child``) and the child's formatted traceback. The frames are rebuilt here
as a real traceback: each is a frame of a one-line code object compiled under the test
file's name at the failing line, so pytest shows the source, the ``>`` line and the
``E`` lines as for a test run in its own process, and cuts isolator's and
``concurrent.futures``' frames away, since the traceback holds none of them.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
from types import FrameType, ModuleType, TracebackType
from typing import Any

import pytest

from .. import RemoteTraceback
from .child import FRAMES, Frame, IsolatedTest, LeakSpec, Outcome, TestSpec

_INI = ("assertion_text_diff_style", "truncation_limit_lines", "truncation_limit_chars")


def _rewritten(module: ModuleType | None) -> bool:
    from _pytest.assertion.rewrite import AssertionRewritingHook

    return isinstance(getattr(getattr(module, "__spec__", None), "loader", None),
                      AssertionRewritingHook)


def _explain_settings(config: pytest.Config) -> tuple[int, dict[str, Any], str]:
    try:
        verbosity = config.get_verbosity(pytest.Config.VERBOSITY_ASSERTIONS)
    except (AttributeError, ValueError):  # an older pytest
        verbosity = config.getoption("verbose", 0)
    ini = {}
    for name in _INI:
        try:
            ini[name] = config.getini(name)
        except ValueError:  # not a setting of this pytest
            pass
    return verbosity, ini, str(config.getoption("assertmode", "rewrite"))


def isolated_test(item: pytest.Function, leak: LeakSpec | None) -> Any:
    """What to send to the child for ``item``: an IsolatedTest, or the test function as
    it is when pickle cannot send it by reference (isolator then sends it as it can,
    by value: its asserts are then not rewritten)."""
    function = item.obj
    try:
        pickled = pickle.dumps(function, protocol=5)
    except Exception:  # noqa: BLE001 - any reason: isolator's own pickling is tried
        if leak is not None:
            pytest.fail(f"{item.nodeid}: isolated_leaks needs a test function that pickles "
                        "by reference (a module-level function or a method)", pytrace=False)
        return function
    name = getattr(function, "__module__", None) or ""
    module = sys.modules.get(name)
    origin = getattr(getattr(module, "__spec__", None), "origin", None)
    rewrite = origin is not None and _rewritten(module)
    others = tuple(n for n, m in list(sys.modules.items()) if n != name and _rewritten(m))
    spec = TestSpec(
        module=name,
        origin=origin if rewrite else None,
        rewritten=others if rewrite else (),
        function=pickled,
        explain=_explain_settings(item.config) if rewrite else None,
        showlocals=bool(item.config.getoption("showlocals", False)),
        leak=leak,
    )
    return IsolatedTest(spec, function, getattr(function, "__qualname__", item.name))


class _Here(Exception):
    pass


def _frame(frame: Frame) -> FrameType:
    """A real frame whose code claims ``frame``'s file, line and function name."""
    first = min(frame.firstlineno, frame.lineno)
    # The raise spans two lines so that its position says nothing of columns: pytest and
    # the traceback module draw no carets under the line, which is the test's, not ours.
    code = compile("\n" * (frame.lineno - first) + "raise (\n_Here)", frame.filename, "exec")
    code = code.replace(co_firstlineno=first, co_name=frame.name, co_qualname=frame.name)
    shown = {name: _Repr(text) for name, text in (frame.locals or {}).items()}
    try:
        exec(code, {"_Here": _Here, "__name__": "isolated"}, shown)  # noqa: S102
    except _Here as here:
        tb = here.__traceback__
        assert tb is not None and tb.tb_next is not None
        return tb.tb_next.tb_frame
    raise AssertionError("unreachable: the code raises")


class _Repr(str):
    """A local's repr made in the child, shown as it is by ``--showlocals``."""

    def __repr__(self) -> str:
        return str(self)


def traceback_of(frames: list[Frame]) -> TracebackType | None:
    """The frames (outermost first) as a traceback of this process."""
    tb = None
    for frame in reversed(frames):
        made = _frame(frame)
        tb = TracebackType(tb, made, made.f_lasti, frame.lineno)
    return tb


def _definition(item: pytest.Function) -> list[Frame]:
    code = getattr(getattr(item.obj, "__func__", item.obj), "__code__", None)
    if code is None:
        return []
    return [Frame(code.co_filename, code.co_firstlineno, code.co_name, code.co_firstlineno,
                  None)]


_ENGINE_FRAME = re.compile(r'  File "' + re.escape(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))) + r'/[^"]*", line \d+, in [^\n]*\n(?:    [^\n]*\n)*')


def without_isolator(text: str) -> str:
    """The child's formatted traceback without isolator's frames."""
    return _ENGINE_FRAME.sub("", text)


def for_pytest(exc: BaseException, item: pytest.Function) -> BaseException:
    """The exception to report for ``exc`` raised by the isolated call of ``item``."""
    frames, chained = getattr(exc, "__dict__", {}).pop(FRAMES, (None, False))
    remote = exc.__cause__
    if isinstance(exc, Outcome):
        made = _outcome(exc)
        exc, chained = made, False
    tb = traceback_of(frames or _definition(item))
    if chained and isinstance(remote, RemoteTraceback):
        exc.__cause__ = RemoteTraceback(without_isolator(remote.tb))
    else:
        exc.__cause__ = None
    exc.__suppress_context__ = True
    return exc.with_traceback(tb)


def _outcome(outcome: Outcome) -> BaseException:
    # pytest makes its outcome exceptions by raising them.
    try:
        if outcome.kind == "skip":
            pytest.skip(outcome.message)
        elif outcome.kind == "xfail":
            pytest.xfail(outcome.message)
        elif outcome.kind == "exit":
            pytest.exit(outcome.message)
        pytest.fail(outcome.message, pytrace=outcome.pytrace)
    except BaseException as made:  # noqa: BLE001 - caught to be returned, raised later
        return made
