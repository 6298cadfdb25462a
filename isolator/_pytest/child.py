"""The test as the child runs it: imported, asserts rewritten, and its failure made fit
to travel back to the pytest process with the frames that explain it.

An :class:`IsolatedTest` is what the plugin hands to the executor. It pickles as the
test's module and the test function's own pickle, and unpickling it in the child
(:func:`load_test`) imports that module through pytest's assertion rewriting first, so
the function the child calls is the rewritten one (see ``rewrite``). This module is
imported in the child before any test: it imports nothing of pytest itself.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, NamedTuple

#: The attribute of a test's exception that carries its frames back to the pytest
#: process (removed there, once they are made into its traceback).
FRAMES = "_isolator_frames"
_ISOLATOR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class Frame(NamedTuple):
    """One frame of the test's traceback in the child."""

    filename: str
    lineno: int
    name: str
    firstlineno: int
    locals: dict[str, str] | None  # reprs, with ``--showlocals`` only


class LeakSpec(NamedTuple):
    """What ``@pytest.mark.isolated_leaks`` asked for (see ``leaks``)."""

    limit: int
    runs: int
    forensics: str


class TestSpec(NamedTuple):
    """Everything the child needs to run one test as the pytest process would."""

    module: str
    origin: str | None  # the module's file when pytest rewrote it, else None
    rewritten: tuple[str, ...]  # every other module pytest rewrote
    function: bytes  # the test function (a bound method in a class), pickled
    explain: tuple[int, dict[str, Any], str] | None  # verbosity, ini values, assert mode
    showlocals: bool
    leak: LeakSpec | None


class Outcome(Exception):
    """``pytest.skip``/``xfail``/``fail``/``exit`` raised in the child, made portable:
    pytest names those exceptions' classes as builtins, so they cannot be pickled."""

    def __init__(self, kind: str, message: str, pytrace: bool) -> None:
        super().__init__(kind, message, pytrace)
        self.kind, self.message, self.pytrace = kind, message, pytrace


class IsolatedTest:
    """A test function ready to be sent to a child; calling it there runs the test."""

    def __init__(self, spec: TestSpec, function: Callable[..., Any], qualname: str) -> None:
        self.spec = spec
        self.function = function
        # Read by isolator to name the task in reports, and to have the zygote import
        # the test's module once for all its children.
        self.__module__ = spec.module
        self.__qualname__ = qualname

    def __reduce__(self) -> tuple[Any, ...]:
        return (load_test, (self.spec, self.__qualname__))

    def __call__(self, **kwargs: Any) -> None:
        try:
            if self.spec.leak is not None:
                from .leaks import check

                check(self.function, kwargs, self.spec.leak)
            else:
                _no_coroutine(self.function(**kwargs))
        except BaseException as exc:  # every failure goes back, with its frames
            made = portable(exc, self.spec.showlocals)
            if made is exc:
                raise  # as it was: its chain is part of the child's traceback text
            raise made from None


def load_test(spec: TestSpec, qualname: str) -> IsolatedTest:
    """Unpickling an IsolatedTest in the child: the module first, rewritten, then the
    function, found in it."""
    if spec.origin is not None:
        from . import rewrite

        rewrite.import_rewritten(spec.module, spec.origin, spec.rewritten)
        if spec.explain is not None:
            rewrite.explain_comparisons(*spec.explain)
    return IsolatedTest(spec, pickle.loads(spec.function), qualname)


def _no_coroutine(result: object) -> None:
    # The default pytest_pyfunc_call refuses these too: the child has no event loop, and
    # an unawaited coroutine would pass without having run.
    if hasattr(result, "__await__"):
        close = getattr(result, "close", None)
        if close is not None:
            close()
        raise TypeError("an async def test needs an async plugin's wrapper to run in an "
                        "isolated child; it returned an awaitable that nobody awaited")


def portable(exc: BaseException, showlocals: bool) -> BaseException:
    """``exc`` with the test's frames attached (isolator's own left out), or the
    :class:`Outcome` standing for it."""
    outcomes = sys.modules.get("_pytest.outcomes")
    chained = exc.__cause__ is not None or (
        exc.__context__ is not None and not exc.__suppress_context__)
    frames = user_frames(exc.__traceback__, showlocals and not isinstance(exc, MemoryError))
    if outcomes is not None and isinstance(exc, outcomes.OutcomeException):
        kind = {outcomes.Skipped: "skip", outcomes.XFailed: "xfail",
                outcomes.Exit: "exit"}.get(type(exc), "fail")
        exc = Outcome(kind, str(exc.msg or ""), bool(exc.pytrace))
    try:
        setattr(exc, FRAMES, (frames, chained))
    except (AttributeError, TypeError):  # no __dict__: the text traceback will do
        pass
    return exc


def user_frames(tb: TracebackType | None, with_locals: bool) -> list[Frame]:
    """The frames of ``tb`` outside isolator's own files and not hidden from pytest with
    ``__tracebackhide__``, outermost first."""
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        if not code.co_filename.startswith(_ISOLATOR) and not _hidden(tb):
            values = _reprs(tb.tb_frame.f_locals) if with_locals else None
            frames.append(Frame(code.co_filename, tb.tb_lineno or code.co_firstlineno,
                                code.co_name, code.co_firstlineno, values))
        tb = tb.tb_next
    return frames


def _hidden(tb: TracebackType) -> bool:
    # pytest leaves out the frames of helpers that set __tracebackhide__ (a callable one
    # decides from the exception: kept here, as there is no ExceptionInfo to give it).
    frame = tb.tb_frame
    hide = frame.f_locals.get("__tracebackhide__", frame.f_globals.get("__tracebackhide__"))
    return bool(hide) and not callable(hide)


def _reprs(namespace: dict[str, Any]) -> dict[str, str]:
    from _pytest._io.saferepr import saferepr

    return {name: saferepr(value) for name, value in namespace.items() if name[:1] != "@"}
