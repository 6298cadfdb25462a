"""The traceback a report keeps (``_child.tracebacks``), as pure logic: real exceptions
raised and chained here, formatted at each forensics level."""

from __future__ import annotations

import pytest

from isolator import MemoryLimitExceeded
from isolator._child.tracebacks import MESSAGE_LIMIT, WITHHELD, for_report


def _raised(fn: object) -> BaseException:
    try:
        fn()  # type: ignore[operator]
    except BaseException as exc:
        return exc
    raise AssertionError("nothing raised")


def _chained() -> None:
    secret = "hun" + "ter2"  # a value: the source lines, which are kept, do not show it
    try:
        raise KeyError(f"password={secret}")
    except KeyError as first:
        raise ValueError("x" * 500) from first


@pytest.mark.parametrize("level", ["types", "default", "deep", "off"])
def test_the_chain_reads_as_python_writes_it(level: str) -> None:
    text = for_report(_raised(_chained), level)
    assert text.index("KeyError") < text.index("direct cause") < text.index("ValueError")
    assert text.count("Traceback (most recent call last):") == 2
    assert "in _chained" in text
    assert "hunter2" not in text if level == "types" else "hunter2" in text
    assert "x" * (MESSAGE_LIMIT + 1) not in text


def test_types_withholds_messages_and_notes_but_keeps_isolators_own() -> None:
    def breach() -> None:
        exc = MemoryLimitExceeded("memory use passed the soft limit below the 64.0 MiB cap",
                                  limit=1, peak=1, kind="soft")
        exc.add_note("secret note")
        raise exc

    text = for_report(_raised(breach), "types")
    assert "passed the soft limit below the 64.0 MiB cap" in text
    assert "secret note" not in text
    assert for_report(_raised(lambda: {}["k"]), "types").rstrip().endswith(f"KeyError: {WITHHELD}")


def test_a_cut_message_says_how_long_it_was_and_notes_are_cut_too() -> None:
    def long() -> None:
        exc = RuntimeError("y" * 1000)
        exc.add_note("z" * 1000)
        raise exc

    text = for_report(_raised(long), "default")
    assert f"{'y' * MESSAGE_LIMIT}... (1,000 characters, cut to {MESSAGE_LIMIT})" in text
    assert f"{'z' * MESSAGE_LIMIT}... (1,000 characters" in text


def test_a_hostile_exception_is_still_formatted() -> None:
    class Liar(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    def cycle() -> None:
        a, b = ValueError("a"), ValueError("b")
        a.__context__, b.__context__ = b, a  # a cycle: each handled during the other
        raise a

    assert "<exception str() failed>" in for_report(_raised(lambda: (_ for _ in ()).throw(
        Liar())), "default")
    text = for_report(_raised(cycle), "default")
    assert text.count("ValueError: a") == 1 and text.count("ValueError: b") == 1


def test_a_suppressed_context_is_left_out() -> None:
    def suppressed() -> None:
        try:
            raise KeyError("hidden")
        except KeyError:
            raise ValueError("shown") from None

    text = for_report(_raised(suppressed), "default")
    assert "shown" in text and "hidden" not in text
