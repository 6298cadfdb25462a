"""Task options, normalised once where the user gives them (tenacity and httpx do the same).

Everything downstream receives a frozen ``Limits`` and never re-parses user input.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ._errors import ConfigurationError
from ._units import parse_size

CgroupMode = Literal["auto"] | bool
ForensicsLevel = Literal["off", "types", "default", "deep"]
FORENSICS_LEVELS = ("off", "types", "default", "deep")
_MAX_HEADROOM = 64 * 1024**2
#: ``report_dir``'s default: ``$ISOLATOR_REPORT_DIR``, else ``./isolator-reports``, looked
#: up when a report is written (not a path anyone could mean: it holds a NUL).
DEFAULT_REPORT_DIR = "\0default"


@dataclass(frozen=True)
class Limits:
    """The normalised limits of one task (all sizes in bytes, times in seconds).

    ``soft_mem`` is where the child gets a catchable ``MemoryLimitExceeded`` so it can
    still report; ``max_mem`` is where the supervisor kills the whole process tree.
    """

    max_mem: int | None = None
    soft_mem: int | None = None
    timeout: float | None = None
    rlimit_data: bool = False
    cgroup: CgroupMode = False
    kill_grace: float = 0.5
    startup_timeout: float = 30.0
    preload: tuple[str, ...] = field(default=())
    report_dir: str | None = DEFAULT_REPORT_DIR
    on_report: Callable[[Any], object] | None = None
    forensics: ForensicsLevel = "default"


def default_soft_limit(max_mem: int) -> int:
    """The soft limit leaves an eighth of the cap (at most 64 MiB) as reporting headroom."""
    return max_mem - min(max_mem // 8, _MAX_HEADROOM)


def _seconds(value: object, name: str, *, allow_none: bool = True) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name}={value!r} must be a number of seconds or None")
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name}={value!r} must be a positive number of seconds")
    return float(value)


def make_limits(
    *,
    max_mem: int | str | None = None,
    soft_mem: int | str | None = None,
    timeout: float | None = None,
    rlimit_data: bool = False,
    cgroup: CgroupMode = False,
    kill_grace: float = 0.5,
    startup_timeout: float = 30.0,
    preload: tuple[str, ...] | list[str] = (),
    report_dir: str | os.PathLike[str] | None = DEFAULT_REPORT_DIR,
    on_report: Callable[[Any], object] | None = None,
    forensics: ForensicsLevel = "default",
) -> Limits:
    """Validate user options; ConfigurationError that names the option and what is accepted."""
    hard = None if max_mem is None else parse_size(max_mem, name="max_mem")
    soft = None if soft_mem is None else parse_size(soft_mem, name="soft_mem")
    if soft is not None and hard is None:
        raise ConfigurationError("soft_mem needs max_mem: the soft limit sits below the cap")
    if soft is not None and hard is not None and soft > hard:
        raise ConfigurationError(f"soft_mem ({soft} bytes) must not exceed max_mem ({hard} bytes)")
    if hard is not None and soft is None:
        soft = default_soft_limit(hard)
    if cgroup not in ("auto", True, False):
        raise ConfigurationError(f"cgroup={cgroup!r}; expected 'auto', True or False")
    if not isinstance(rlimit_data, bool):
        raise ConfigurationError(f"rlimit_data={rlimit_data!r}; expected True or False")
    if isinstance(preload, str) or not all(isinstance(m, str) for m in preload):
        raise ConfigurationError(f"preload={preload!r}; expected a list of module names")
    if report_dir is not None and not isinstance(report_dir, (str, os.PathLike)):
        raise ConfigurationError(f"report_dir={report_dir!r}; expected a path or None")
    if on_report is not None and not callable(on_report):
        raise ConfigurationError(f"on_report={on_report!r} is not callable")
    if forensics not in FORENSICS_LEVELS:
        raise ConfigurationError(f"forensics={forensics!r}; expected one of {FORENSICS_LEVELS}")
    return Limits(
        max_mem=hard,
        soft_mem=soft,
        timeout=_seconds(timeout, "timeout"),
        rlimit_data=rlimit_data,
        cgroup=cgroup,
        kill_grace=_seconds(kill_grace, "kill_grace", allow_none=False) or 0.5,
        startup_timeout=_seconds(startup_timeout, "startup_timeout", allow_none=False) or 30.0,
        preload=tuple(preload),
        report_dir=None if report_dir is None else os.fspath(report_dir),
        on_report=on_report,
        forensics=forensics,
    )
