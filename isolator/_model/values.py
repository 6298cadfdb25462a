"""``Limits`` and ``Reporting``: options as value objects, as httpx's ``Timeout`` is one.

A user may pass them whole (``isolated(limits=Limits(max_mem="512MB"))``, shared by
several functions and pools) or give their options as keywords; either way they are
normalised here, once, and frozen. Their fields are the options declared in ``options``
(a test keeps them equal).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, ClassVar, Unpack

from .._errors import ConfigurationError
from .options import (
    CgroupMode,
    Default,
    ForensicsLevel,
    LimitOptions,
    ReportingOptions,
    Retention,
    check,
    declared,
    default_soft_limit,
    show_options,
)

Self = typing.TypeVar("Self", bound="_Value")


class _Value:
    """A frozen record of one option group's normalised values."""

    __slots__ = ()
    _group: ClassVar[type]

    def __init__(self, **options: Any) -> None:
        for name, value in check(self._group, type(self).__name__, options).items():
            object.__setattr__(self, name, value)
        self._settle()

    def _settle(self) -> None:
        """Checks and defaults that involve several options."""

    def _items(self) -> tuple[tuple[str, Any], ...]:
        return tuple((name, getattr(self, name)) for name in declared(self._group))

    def replace(self: Self, **changes: Any) -> Self:
        """A copy with ``changes`` (checked like the constructor's options)."""
        return type(self)(**{**dict(self._items()), **changes})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen; use .replace({name}=...)")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._items() == other._items()

    def __hash__(self) -> int:
        return hash(self._items())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self._items())
        return f"{type(self).__name__}({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self._items()))


def _rebuild(cls: type[_Value], items: tuple[tuple[str, Any], ...]) -> _Value:
    value = object.__new__(cls)
    for name, item in items:
        object.__setattr__(value, name, item)
    return value


class Limits(_Value):
    """What a task may use, normalised: sizes in bytes, times in seconds.

    ``soft_mem`` is where the child gets a catchable ``MemoryLimitExceeded`` so it can
    still report; ``max_mem`` is where the engine kills the whole process tree.
    """

    __slots__ = tuple(declared(LimitOptions))
    _group = LimitOptions
    max_mem: int | None
    soft_mem: int | None
    timeout: float | None
    rlimit_data: bool
    cgroup: CgroupMode
    kill_grace: float
    startup_timeout: float

    def __init__(self, **options: Unpack[LimitOptions]) -> None:
        super().__init__(**options)

    def _settle(self) -> None:
        hard, soft = self.max_mem, self.soft_mem
        if soft is not None and hard is None:
            raise ConfigurationError("soft_mem needs max_mem: the soft limit sits below the cap")
        if soft is not None and hard is not None and soft > hard:
            raise ConfigurationError(
                f"soft_mem ({soft} bytes) must not exceed max_mem ({hard} bytes)")
        if hard is not None and soft is None:
            object.__setattr__(self, "soft_mem", default_soft_limit(hard))

    def with_cap(self, cap: int) -> Limits:
        """The same limits under another cap, its soft limit at the default distance."""
        return self.replace(max_mem=cap, soft_mem=default_soft_limit(cap))


class Reporting(_Value):
    """What is recorded about a breach and where the report goes, normalised."""

    __slots__ = tuple(declared(ReportingOptions))
    _group = ReportingOptions
    report_dir: str | Default | None
    on_report: Callable[[Any], object] | None
    forensics: ForensicsLevel
    report_keep: Retention | None

    def __init__(self, **options: Unpack[ReportingOptions]) -> None:
        super().__init__(**options)


show_options(Limits.__init__, LimitOptions)
show_options(Reporting.__init__, ReportingOptions)
