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
