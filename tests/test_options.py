"""Options are checked where they are given, with messages that say what is accepted."""

from __future__ import annotations

from typing import Any

import pytest

from isolator import ConfigurationError, isolated, parse_size
from isolator._model.options import default_soft_limit

KiB, MiB, GiB = 1024, 1024**2, 1024**3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512MB", 512 * MiB),
        ("1.5GB", int(1.5 * GiB)),
        ("256MiB", 256 * MiB),
        ("100KB", 100 * KiB),
        ("100kib", 100 * KiB),
        (" 2 GiB ", 2 * GiB),
        ("4096", 4096),
        (1234, 1234),
    ],
)
def test_sizes_are_powers_of_1024(text: Any, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["lots", "-1MB", 0, "12 parsecs", -5, "", "MB", True, 0.5,
                                 float("nan"), "1e3MB", [1]])
def test_bad_max_mem_fails_when_the_decorator_is_applied(bad: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        isolated(max_mem=bad)
    assert "512MB" in str(info.value) or "max_mem" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": -1},
        {"timeout": "soon"},
        {"timeout": True},
        {"soft_mem": "1GB", "max_mem": "512MB"},
        {"soft_mem": "100MB"},
        {"cgroup": "maybe"},
        {"rlimit_data": "yes"},
        {"kill_grace": 0},
        {"preload": "numpy"},
    ],
)
def test_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        isolated(**options)


def test_default_soft_limit_keeps_an_eighth_up_to_64_mib() -> None:
    assert default_soft_limit(64 * MiB) == 56 * MiB
    assert default_soft_limit(4 * GiB) == 4 * GiB - 64 * MiB


def test_options_are_normalised_once() -> None:
    fn = isolated(max_mem="1GB", timeout=2)(len)
    assert fn.options.max_mem == GiB
    assert fn.options.timeout == 2.0


# -- one declaration: the value objects, the entry points, help(), the CLI, the docs ---------

import inspect  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from isolator import IsolatedExecutor, IsolatedPool, Limits, Reporting  # noqa: E402
from isolator._model.options import (  # noqa: E402
    CallOptions,
    LimitOptions,
    PoolOptions,
    ReportingOptions,
    declared,
)

ROOT = Path(__file__).resolve().parent.parent


def test_the_value_objects_hold_exactly_the_declared_options() -> None:
    assert list(Limits.__slots__) == list(declared(LimitOptions))
    assert list(Reporting.__slots__) == list(declared(ReportingOptions))
    limits = Limits(max_mem="1GB", timeout=2)
    assert (limits.max_mem, limits.soft_mem, limits.timeout) == (GiB, GiB - 64 * MiB, 2.0)
    assert limits == Limits(max_mem=GiB, timeout=2.0) and hash(limits) == hash(Limits(
        max_mem=GiB, timeout=2.0))
    with pytest.raises(AttributeError):
        limits.max_mem = 5  # type: ignore[misc]
    assert limits.replace(timeout=5).timeout == 5.0
    import pickle

    assert pickle.loads(pickle.dumps(limits)) == limits
    assert pickle.loads(pickle.dumps(Reporting())).report_dir is Reporting().report_dir


@pytest.mark.parametrize("name", list(declared(PoolOptions)))
def test_every_entry_point_takes_every_option_it_declares(name: str) -> None:
    _, option = declared(PoolOptions)[name]
    given = {name: option.default}
    if name in declared(CallOptions):
        isolated(**given)  # type: ignore[misc]
    IsolatedExecutor(1, **given)  # type: ignore[misc]
    IsolatedPool(1, **given)  # type: ignore[misc]


@pytest.mark.parametrize("make", [
    lambda: isolated(max_memory="1GB"),  # type: ignore[call-overload]
    lambda: IsolatedExecutor(1, max_memory="1GB"),  # type: ignore[call-arg]
    lambda: IsolatedPool(1, max_memory="1GB"),  # type: ignore[call-arg]
    lambda: isolated(memory_budget="1GB"),  # type: ignore[call-overload]
])
def test_an_unknown_option_fails_with_the_one_meant(make: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"did you mean 'max_mem'|unexpected option"):
        make()


def test_options_are_given_whole_or_as_keywords_each_once() -> None:
    whole = isolated(limits=Limits(max_mem="1GB"), reporting=Reporting(forensics="types"))(len)
    keywords = isolated(max_mem="1GB", forensics="types")(len)
    assert whole.options == keywords.options and whole.reporting == keywords.reporting
    with pytest.raises(ConfigurationError, match="both in limits= and as keywords"):
        isolated(limits=Limits(max_mem="1GB"), max_mem="2GB")
    with pytest.raises(ConfigurationError, match="expected a Limits"):
        isolated(limits={"max_mem": "1GB"})  # type: ignore[call-overload]
    shared = Limits(max_mem="256MB", timeout=60)
    with IsolatedExecutor(1, limits=shared) as ex, IsolatedPool(1, limits=shared) as pool:
        assert ex.statistics().submitted == pool.statistics().submitted == 0


def test_help_lists_every_option_with_its_default() -> None:
    for documented, group in ((isolated, CallOptions), (IsolatedExecutor, PoolOptions),
                              (IsolatedPool, PoolOptions)):
        text = documented.__doc__ or ""
        for name, (_, option) in declared(group).items():
            assert f"{name} = {option.default!r}" in text, (documented, name)
    assert "\\x00" not in str(inspect.signature(isolated))


def test_signatures_spell_out_every_option_with_a_readable_default() -> None:
    # help(), IDEs and the docs read inspect.signature: each option is a keyword-only
    # parameter there, its default the declared one, its repr a Python expression.
    for documented, group in ((isolated, CallOptions), (IsolatedExecutor, PoolOptions),
                              (IsolatedPool, PoolOptions), (Limits, LimitOptions),
                              (Reporting, ReportingOptions)):
        parameters = inspect.signature(documented).parameters
        assert all(p.kind is not p.VAR_KEYWORD for p in parameters.values()), documented
        for name, (_, option) in declared(group).items():
            assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, (documented, name)
            assert parameters[name].default is option.default, (documented, name)
            compile(repr(option.default), f"<{name}'s default>", "eval")


def test_the_command_line_flags_come_from_the_declaration() -> None:
    from isolator.cli import build_parser
    from isolator.cli.commands import cap_options

    flagged = {name: option.flag for group in (LimitOptions, ReportingOptions)
               for name, (_, option) in declared(group).items() if option.flag is not None}
    assert {"max_mem", "timeout", "report_dir", "forensics"} <= set(flagged)
    args = build_parser().parse_args(["run", "m:f", "--max-mem", "1GB", "--timeout", "3",
                                      "--forensics", "types", "--rlimit-data"])
    options = cap_options(args)
    assert options == {"max_mem": "1GB", "timeout": 3.0, "forensics": "types",
                       "rlimit_data": True}
    assert isolated(**options)(len).options.max_mem == GiB
    for command in ("run", "map", "exec"):
        help_text = build_parser()._subparsers._group_actions[0].choices[command].format_help()  # type: ignore[union-attr]
        for flag in flagged.values():
            assert flag.name in help_text, (command, flag.name)


def test_docs_api_md_is_generated_from_the_declaration() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "options.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
