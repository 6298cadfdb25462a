"""Every option isolator takes, declared once.

Each option is one key of a ``TypedDict`` below: its annotation is what a user may pass
(type checkers see it through ``**options: Unpack[...]``) and its ``Option`` is the rest
of the declaration: the default, what it means, how a value is checked and normalised,
and the command-line flag that sets it, if any. From this one declaration come the
keyword options of ``isolated``, ``IsolatedExecutor`` and ``IsolatedPool`` and their
signatures in ``help()``, their validation, the value objects ``Limits`` and
``Reporting`` (``values``), the command line's flags (``cli``) and the option tables of
docs/api.md (``docs``); tests keep each of them equal to it.

Options are normalised once, where the user gives them (as tenacity and httpx do):
everything downstream receives frozen values in bytes and seconds.
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
import typing
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, TypedDict

from .._errors import ConfigurationError
from .._units import parse_size
from .escalation import escalate_memory
from .recycle import recycle_base

if TYPE_CHECKING:
    import inspect

CgroupMode = Literal["auto"] | bool
ForensicsLevel = Literal["off", "types", "default", "deep"]
FORENSICS_LEVELS: tuple[str, ...] = ("off", "types", "default", "deep")


class Default:
    """A default worked out later, with a readable repr for signatures and docs."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text

    def __reduce__(self) -> tuple[Any, ...]:
        return (_default_named, (self._text,))


def _default_named(text: str) -> Default:
    return DEFAULT_REPORT_DIR if text == repr(DEFAULT_REPORT_DIR) else Default(text)


#: ``report_dir``'s default: ``$ISOLATOR_REPORT_DIR``, else ``./isolator-reports``,
#: looked up when a report is written. Its repr is the Python that says so, so that a
#: signature showing it (``help()``, the docs) still reads, and highlights, as Python.
DEFAULT_REPORT_DIR = Default("os.environ.get('ISOLATOR_REPORT_DIR') or './isolator-reports'")


class Flag(NamedTuple):
    """How the command line sets an option: ``--max-mem SIZE``."""

    name: str
    metavar: str | None = None  # None: a switch (store_true)
    parse: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None


class Option(NamedTuple):
    """One option's declaration (its name and type are the TypedDict key it annotates)."""

    default: Any
    doc: str
    check: Callable[[str, Any], Any]  # (name, value) -> normalised value, or raise
    flag: Flag | None = None


# -- checks: (option name, user value) -> normalised value ------------------------------

def _size(name: str, value: Any) -> int | None:
    return None if value is None else parse_size(value, name=name)


#: The smallest cap isolator takes. The cap counts what a child holds of its own (the
#: interpreter's and the preloaded modules' pages are the zygote's), but a child still
#: makes a few MiB of its own before the task's first line (its copies of the pages it
#: writes, the unpickled task) and needs room below the cap to report a breach; under
#: 16 MiB outcomes would be decided by those, not by the task.
MIN_CAP = 16 << 20


def _cap(name: str, value: Any) -> int | None:
    size = _size(name, value)
    if size is not None and size < MIN_CAP:
        raise ConfigurationError(
            f"{name}={value!r} is below the smallest cap, {MIN_CAP >> 20} MiB: a child "
            f"needs a few MiB of its own to start the task and room to report a breach "
            f"(give a size such as '64MiB', or None for no cap)")
    return size


def _seconds(name: str, value: Any, *, optional: bool = True) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name}={value!r} must be a number of seconds"
                                 + (" or None" if optional else ""))
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name}={value!r} must be a positive number of seconds")
    return float(value)


def _positive_seconds(name: str, value: Any) -> float:
    seconds = _seconds(name, value, optional=False)
    assert seconds is not None
    return seconds


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name}={value!r}; expected True or False")
    return value


def _one_of(*accepted: Any) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        if not any(value is a or (type(value) is type(a) and value == a) for a in accepted):
            raise ConfigurationError(f"{name}={value!r}; expected one of "
                                     f"{', '.join(map(repr, accepted))}")
        return value
    return check


def _modules(name: str, value: Any) -> tuple[str, ...] | bool:
    if value is False:
        return False
    if isinstance(value, str) or not isinstance(value, (list, tuple)) \
            or not all(isinstance(m, str) for m in value):
        raise ConfigurationError(f"{name}={value!r}; expected a list of module names, "
                                 "e.g. ['numpy', 'mypkg.jobs']")
    for module in value:
        if not _importable(module):
            raise ConfigurationError(f"{name}: no module named {module!r} can be imported "
                                     "here (the zygote imports from the caller's sys.path)")
    return tuple(value)


def _importable(module: str) -> bool:
    """Whether ``module`` exists, found as an import would (its parent package is
    imported to look inside it; the module itself is not)."""
    import importlib.util

    if module in sys.modules:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that is missing, or not a package
        return False


def _directory(name: str, value: Any) -> str | Default | None:
    if value is None or value is DEFAULT_REPORT_DIR:
        return value
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigurationError(f"{name}={value!r}; expected a path or None")
    return os.fspath(value)


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([smhdw])\s*$")
KEEP_FORMS = ("a count of reports (1000), an age ('30d'; s, m, h, d or w), both (1000, "
              "'30d') or '1000,30d', or None (or 'all') to keep every report")


class Retention(NamedTuple):
    """``report_keep`` normalised: the ``newest`` reports, none older than ``age``
    seconds (None: no such bound)."""

    newest: int | None
    age: float | None


def _keep(name: str, value: Any) -> Retention | None:
    if value is None or isinstance(value, Retention):
        return value
    if isinstance(value, str) and value.strip().lower() == "all":  # the command line's None
        return None
    parts: list[Any]
    if isinstance(value, str):
        parts = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, tuple) and len(value) == 2:
        parts = [part for part in value if part is not None]
    else:
        parts = [value]
    count: int | None = None
    age: float | None = None
    for part in parts:
        if isinstance(part, str) and part.strip().isdigit():
            part = int(part)
        if isinstance(part, int) and not isinstance(part, bool) and part >= 1 and count is None:
            count = part
            continue
        match = _AGE.match(part) if isinstance(part, str) else None
        if match is None or age is not None or float(match[1]) <= 0:
            raise ConfigurationError(f"{name}={value!r}; expected {KEEP_FORMS}")
        age = float(match[1]) * _AGE_UNITS[match[2]]
    if count is None and age is None:
        raise ConfigurationError(f"{name}={value!r}; expected {KEEP_FORMS}")
    return Retention(count, age)


def _callable(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise ConfigurationError(f"{name}={value!r} is not callable")
    return value


def _strategy(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise ConfigurationError(f"{name}={value!r} is not a tenacity strategy")
    return value


def _escalation(name: str, value: Any) -> Any:
    if value is not None and not isinstance(value, escalate_memory):
        raise ConfigurationError(f"{name}={value!r}; expected escalate_memory(...)")
    return value


def _recycle(name: str, value: Any) -> Any:
    if value is not None and not isinstance(value, recycle_base):
        raise ConfigurationError(f"{name}={value!r}; expected a policy such as "
                                 "recycle_after_tasks(100) | recycle_on_growth('200MB')")
    return value


# -- the declaration -------------------------------------------------------------------

class LimitOptions(TypedDict, total=False):
    """What a task may use: memory caps, times, and the layers that enforce them."""

    max_mem: Annotated[int | str | None, Option(
        None,
        "the hard cap for the child's whole process tree: an int of bytes or a string such "
        "as `\"512MB\"`, `\"1.5GB\"`, `\"256MiB\"`. **Every unit is a power of 1024** "
        "(KB = KiB = 1024 bytes). Past it the tree is killed (`MemoryLimitExceeded`, kind "
        "`\"hard\"`). None: no cap. At least 16 MiB: a child makes a few MiB of its own "
        "before the task runs, and needs room to report.",
        _cap, Flag("--max-mem", "SIZE"))]
    soft_mem: Annotated[int | str | None, Option(
        None,
        "where the child is interrupted with `MemoryLimitExceeded` (kind `\"soft\"`) at the "
        "line it is running, so it can still report. Default: `max_mem` less an eighth of "
        "it, at most 64 MiB less. Must not exceed `max_mem`.",
        _cap, Flag("--soft-mem", "SIZE"))]
    timeout: Annotated[float | None, Option(
        None,
        "seconds a task may run; past it the tree is killed (SIGTERM, `kill_grace`, "
        "SIGKILL) and `TaskTimeout` raised. None: no limit.",
        _seconds, Flag("--timeout", "S", float))]
    rlimit_data: Annotated[bool, Option(
        False,
        "also set `RLIMIT_DATA` in the child to `max_mem` past the data segment it starts "
        "with, so a too-large allocation fails before any page is touched (kind "
        "`\"rlimit\"`). It counts reserved, untouched memory too.",
        _flag, Flag("--rlimit-data"))]
    cgroup: Annotated[CgroupMode, Option(
        False,
        "`False`, `\"auto\"` or `True`: put each child in a kernel memory cgroup limited to "
        "`max_mem` where one is writable (zero overshoot, kind `\"kernel-oom\"`). `True` "
        "fails with `ConfigurationError` where none is.",
        _one_of("auto", True, False))]
    kill_grace: Annotated[float, Option(
        0.5, "seconds between SIGTERM and SIGKILL on a timeout or cancellation.",
        _positive_seconds)]
    startup_timeout: Annotated[float, Option(
        30.0, "seconds a child has to complete its handshake.", _positive_seconds)]


class ReportingOptions(TypedDict, total=False):
    """What is recorded about a breach, and where it goes."""

    report_dir: Annotated[str | os.PathLike[str] | None, Option(
        DEFAULT_REPORT_DIR,
        "where post-mortem reports are written (a folder per report; the default is "
        "looked up each time one is written); None keeps them in memory only "
        "(`exc.report`).",
        _directory, Flag("--report-dir", "DIR"))]
    on_report: Annotated[Callable[[Any], object] | None, Option(
        None,
        "called with each `Report` once it is written (in isolator's reporting thread; an "
        "exception from it is logged).",
        _callable)]
    forensics: Annotated[ForensicsLevel, Option(
        "default",
        "what the child records about its heap on a breach: `\"default\"`, `\"deep\"` "
        "(heapy's partition and memray's native allocation sites too), `\"types\"` (type "
        "names and sizes only, no values from the data) or `\"off\"`.",
        _one_of(*FORENSICS_LEVELS), Flag("--forensics", "LEVEL", choices=FORENSICS_LEVELS))]
    report_keep: Annotated[int | str | tuple[int | None, str | None] | None, Option(
        (1000, "30d"),
        "how many reports `report_dir` keeps: after each report is written, those beyond "
        "the newest count, and those older than the age, are removed (never one still "
        "being written, nor a folder not named as a report). A count (`1000`), an age "
        "(`\"30d\"`; `s`, `m`, `h`, `d`, `w`), both (`(1000, \"30d\")`, or `\"1000,30d\"` "
        "on the command line), or None (`all` on the command line) to keep every report.",
        _keep, Flag("--report-keep", "KEEP"))]


class RetryOptions(TypedDict, total=False):
    """Whether a failed task runs again, when, and with how much memory."""

    retry: Annotated[Any, Option(
        None,
        "a tenacity retry strategy (`retry_if_exception_type(...)`, combined with `|` and "
        "`&`), or isolator's `retry_if_memory_exceeded()` / `retry_if_worker_lost()`.",
        _strategy)]
    stop: Annotated[Any, Option(
        None, "a tenacity stop strategy; default `stop_after_attempt(3)` when retrying.",
        _strategy)]
    wait: Annotated[Any, Option(
        None, "a tenacity wait strategy; default no wait.", _strategy)]
    escalate: Annotated[escalate_memory | None, Option(
        None,
        "`escalate_memory(factor, ceiling)`: each attempt after a memory breach gets a "
        "larger cap. Alone, it implies `retry=retry_if_memory_exceeded()`.",
        _escalation)]


class CallOptions(LimitOptions, ReportingOptions, RetryOptions, total=False):
    """The options of ``isolated``: limits, reporting, retries, and preloading."""

    preload: Annotated[Sequence[str] | Literal[False], Option(
        (),
        "module names the zygote imports once, so that children start with them loaded; "
        "the module of the task's function is preloaded without being named, and so is "
        "what earlier tasks of the same function imported (the zygote learns it). "
        "`False`: nothing is preloaded beyond the function's module, nor learned.",
        _modules)]


class PoolOptions(CallOptions, total=False):
    """The options of both pools: ``isolated``'s and how the pool schedules its units."""

    memory_budget: Annotated[int | str | None, Option(
        None,
        "units whose caps add up to more than this never run at once (default: four "
        "fifths of the memory available when the pool is made).",
        _size)]
    recycle: Annotated[recycle_base | None, Option(
        None,
        "reuse workers, replacing each when the policy says so (`recycle_after_tasks(500) "
        "| recycle_on_growth(\"200MB\")`); None: a fresh process per unit unless "
        "`max_tasks_per_child` says otherwise.",
        _recycle)]
    progress: Annotated[Callable[[Any], None] | None, Option(
        None,
        "called with each future as it completes (in isolator's callback thread; an "
        "exception from it is logged; `shutdown(wait=True)` waits for the last call).",
        _callable)]


GROUPS: dict[str, type] = {
    "limits": LimitOptions, "reporting": ReportingOptions, "retry": RetryOptions,
    "call": CallOptions, "pool": PoolOptions,
}


@functools.cache
def declared(group: type) -> dict[str, tuple[Any, Option]]:
    """``{name: (annotation, Option)}`` of a group, in declaration order."""
    hints = typing.get_type_hints(group, include_extras=True)
    found: dict[str, tuple[Any, Option]] = {}
    for name, hint in hints.items():
        option = next(m for m in hint.__metadata__ if isinstance(m, Option))
        found[name] = (hint.__origin__, option)
    return found


def own(group: type, *parents: type) -> tuple[str, ...]:
    """The names ``group`` declares beyond those of ``parents``."""
    inherited = {name for parent in parents for name in declared(parent)}
    return tuple(name for name in declared(group) if name not in inherited)


def default_soft_limit(max_mem: int) -> int:
    """The soft limit leaves an eighth of the cap (at most 64 MiB) as reporting headroom."""
    return max_mem - min(max_mem // 8, 64 * 1024**2)


def check(group: type, where: str, options: dict[str, Any]) -> dict[str, Any]:
    """Every option of ``group`` normalised, defaults filled in; ConfigurationError that
    names a bad option and what it accepts, or an unknown one and the likely meant."""
    table = declared(group)
    for name in options:
        if name not in table:
            raise ConfigurationError(_unknown(where, name, table))
    return {name: option.check(name, options.get(name, option.default))
            for name, (_, option) in table.items()}


def _unknown(where: str, name: str, table: dict[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(name, table, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{where}() got an unexpected option {name!r}{hint} (the options: {', '.join(table)})"


# -- the declaration as text: signatures, help() and the docs ------------------------------

def signature(fn: Callable[..., Any], group: type) -> inspect.Signature:
    """``fn``'s signature with its ``**options`` spelled out, one keyword-only parameter per
    declared option with its default, so ``inspect.signature``, ``help()`` and the docs
    show every option and its default rather than ``**options``."""
    import inspect

    explicit = inspect.signature(fn)
    shown = [p for p in explicit.parameters.values() if p.kind is not p.VAR_KEYWORD]
    shown += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option.default,
                                annotation=_type_text(annotation))
              for name, (annotation, option) in declared(group).items()]
    return explicit.replace(parameters=shown)


def _type_text(annotation: Any) -> str:
    """An option's type as its declaration spells it (``int | str | None``), not as
    ``typing`` prints it (``Union[...]``, ``collections.abc.Callable``)."""
    import inspect
    import re
    import types

    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(map(_type_text, typing.get_args(annotation)))
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__qualname__
    return re.sub(r"\b(?:collections\.abc|typing|isolator(?:\.\w+)*)\.", "",
                  inspect.formatannotation(annotation))


def show_options(fn: Any, group: type) -> None:
    """Give ``fn`` (a function, or a class's ``__init__``) the signature above."""
    # Not in the zygote, which imports this module when a task's module imports
    # isolator: nobody reads a signature there, and inspect would add ast, dis and
    # tokenize to every child forked from it.
    if "isolator._child.zygote" not in sys.modules:
        fn.__signature__ = signature(fn, group)


def docstring(group: type, *names: str) -> str:
    """An "Options" section for a docstring, from the declaration (``help()`` shows it)."""
    import textwrap

    table = declared(group)
    lines = ["Options:", ""]
    for name in names or tuple(table):
        _, option = table[name]
        text = option.doc.replace("`", "").replace("**", "")
        lines.append(f"{name} = {option.default!r}")
        lines.extend(textwrap.wrap(text, 80, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines)


def markdown(group: type, *names: str) -> str:
    """A docs/api.md table of options, from the declaration."""
    table = declared(group)
    rows = ["| option | default | meaning |", "|---|---|---|"]
    for name in names or tuple(table):
        _, option = table[name]
        meaning = option.doc.replace("|", "\\|")  # a pipe would end the cell
        rows.append(f"| `{name}` | `{option.default!r}` | {meaning} |")
    return "\n".join(rows)
