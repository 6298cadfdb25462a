"""From what a user passed to what the engine runs with: the options of a call or a pool
gathered into value objects, checked once.

``isolated(max_mem="512MB", forensics="deep")`` and
``isolated(limits=Limits(max_mem="512MB"), reporting=Reporting(forensics="deep"))`` give
the same ``CallSettings``; giving one option both ways is an error, not a silent choice.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._errors import ConfigurationError
from .options import (
    CallOptions,
    LimitOptions,
    ReportingOptions,
    RetryOptions,
    check,
    declared,
    own,
)
from .values import Limits, Reporting


class CallSettings(NamedTuple):
    """The normalised options every call (or every unit of a pool) runs under."""

    limits: Limits
    reporting: Reporting
    preload: tuple[str, ...]
    retry: Any  # a RetryPolicy, or None: no retries (kept untyped: it imports tenacity)
    learn: bool = True  # the zygote preloads what these tasks import, for the next ones


def settle(where: str, options: dict[str, Any], limits: Limits | None,
           reporting: Reporting | None, group: type = CallOptions
           ) -> tuple[CallSettings, dict[str, Any]]:
    """The call settings in ``options`` and the value objects, and the normalised rest
    of ``group``'s own options (a pool's)."""
    table = declared(group)
    for name in options:
        if name not in table:
            check(group, where, {name: None})  # raises: unknown, with the likely meant
    chosen_limits = _whole(where, "limits", Limits, limits, LimitOptions, options)
    chosen_reporting = _whole(where, "reporting", Reporting, reporting, ReportingOptions,
                              options)
    retry = {name: options[name] for name in declared(RetryOptions) if name in options}
    rest = {}
    for name in own(group, LimitOptions, ReportingOptions, RetryOptions):
        option = table[name][1]
        rest[name] = option.check(name, options.get(name, option.default))
    preload = rest.pop("preload")
    learn = preload is not False  # preload=False: the zygote learns nothing either
    settings = CallSettings(chosen_limits, chosen_reporting, preload or (),
                            _retry(where, retry), learn)
    return settings, rest


def _whole(where: str, name: str, kind: type[Any], given: Any, group: type,
           options: dict[str, Any]) -> Any:
    keywords = {key: options[key] for key in declared(group) if key in options}
    if given is None:
        return kind(**keywords)
    if not isinstance(given, kind):
        raise ConfigurationError(f"{where}({name}={given!r}): expected a {kind.__name__}, "
                                 f"e.g. {kind.__name__}({next(iter(declared(group)))}=...)")
    if keywords:
        raise ConfigurationError(
            f"{where}() got {', '.join(keywords)} both in {name}= and as keywords: give "
            "each option once")
    return given


def _retry(where: str, options: dict[str, Any]) -> Any:
    if not any(value is not None for value in options.values()):
        return None
    values = check(RetryOptions, where, options)
    from .retry import make_retry_policy  # tenacity: only for the users of retries

    return make_retry_policy(**values)
