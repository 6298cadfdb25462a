"""Tasks that breach their cap while an exception holding data is being handled."""

from __future__ import annotations

MiB = 1 << 20
SECRET = "hunter2-token-0123456789"


def breach_while_handling_a_secret(mib: int) -> int:
    """Look a secret up, fail, and run past the cap while handling that failure."""
    try:
        {"known": 1}[f"password={SECRET}"]
    except KeyError:
        held = [bytearray(b"\x01") * MiB for _ in range(mib)]
        return len(held)
    return 0


def breach_while_handling_a_long_message(mib: int) -> int:
    """The same with a 100,000-character message."""
    try:
        raise ValueError("x" * 100_000)
    except ValueError:
        held = [bytearray(b"\x01") * MiB for _ in range(mib)]
        return len(held)
