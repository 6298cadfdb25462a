"""Task options, normalised once where the user gives them (tenacity and httpx do the same).

Everything downstream receives a frozen ``Limits`` and never re-parses user input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ._errors import ConfigurationError
from ._units import parse_size

CgroupMode = Literal["auto"] | bool
_MAX_HEADROOM = 64 * 1024**2


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
    return Limits(
        max_mem=hard,
        soft_mem=soft,
        timeout=_seconds(timeout, "timeout"),
        rlimit_data=rlimit_data,
        cgroup=cgroup,
        kill_grace=_seconds(kill_grace, "kill_grace", allow_none=False) or 0.5,
        startup_timeout=_seconds(startup_timeout, "startup_timeout", allow_none=False) or 30.0,
        preload=tuple(preload),
    )
