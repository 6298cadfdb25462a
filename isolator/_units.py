"""Memory sizes: the only place user input like ``"512MB"`` becomes bytes.

Every unit is a power of 1024, whether it is spelled the SI way (KB, MB, GB, TB) or
the IEC way (KiB, MiB, GiB, TiB): memory caps are compared with the kernel's page
counts, which are binary, and a user writing "512MB" means the same thing as "512MiB".
"""

from __future__ import annotations

import math
import re

from ._errors import ConfigurationError

_FACTORS = {
    "": 1,
    "B": 1,
    "K": 1024,
    "KB": 1024,
    "KIB": 1024,
    "M": 1024**2,
    "MB": 1024**2,
    "MIB": 1024**2,
    "G": 1024**3,
    "GB": 1024**3,
    "GIB": 1024**3,
    "T": 1024**4,
    "TB": 1024**4,
    "TIB": 1024**4,
}
_SIZE = re.compile(r"^\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[a-zA-Z]*)\s*$")

ACCEPTED_FORMS = (
    "a positive int of bytes (536870912) or a string such as '512MB', '1.5GB', "
    "'256MiB', '100KB' (B, KB/KiB, MB/MiB, GB/GiB, TB/TiB; all powers of 1024)"
)


def parse_size(value: object, *, name: str = "max_mem") -> int:
    """Return ``value`` as a positive number of bytes, or raise ConfigurationError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigurationError(f"{name}={value!r} is not a size; expected {ACCEPTED_FORMS}")
    if isinstance(value, (int, float)):
        return _positive(value, value, name)
    match = _SIZE.match(value)
    unit = match.group("unit").upper() if match else None
    if match is None or unit not in _FACTORS:
        raise ConfigurationError(f"{name}={value!r} is not a size; expected {ACCEPTED_FORMS}")
    return _positive(float(match.group("num")) * _FACTORS[unit], value, name)


def _positive(amount: float, original: object, name: str) -> int:
    if not math.isfinite(amount) or amount < 1:
        raise ConfigurationError(
            f"{name}={original!r} must be at least one byte; expected {ACCEPTED_FORMS}"
        )
    return int(amount)


def format_size(nbytes: float) -> str:
    """Render bytes for people: ``format_size(268435456) == '256.0 MiB'``."""
    amount = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(amount) < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")
