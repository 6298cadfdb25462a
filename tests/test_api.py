"""The front door: ``__all__`` is sorted, true, and every public name is documented."""

from __future__ import annotations

import pickle
import types
from pathlib import Path

import pytest

import isolator
from isolator import _errors

DOCS = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def test_all_is_sorted_and_complete() -> None:
    assert isolator.__all__ == sorted(isolator.__all__)
    for name in isolator.__all__:
        assert getattr(isolator, name) is not None
    public = {
        n for n in dir(isolator)
        if not n.startswith("_") and not isinstance(getattr(isolator, n), types.ModuleType)
    }
    assert public - {"annotations", "TYPE_CHECKING", "Any"} <= set(isolator.__all__)


@pytest.mark.parametrize("name", isolator.__all__)
def test_every_public_name_has_a_docstring_and_a_docs_entry(name: str) -> None:
    obj = getattr(isolator, name)
    assert (obj.__doc__ or "").strip(), f"{name} has no docstring"
    assert f"`{name}" in DOCS.read_text(), f"{name} is missing from docs/api.md"


def test_unknown_attribute_raises() -> None:
    with pytest.raises(AttributeError):
        isolator.no_such_name


EXCEPTIONS = [
    _errors.ConfigurationError("bad"),
    _errors.SerializationError("nope"),
    _errors.PoolClosed("closed"),
    _errors.WorkerStartupError("slow"),
    _errors.WorkerLost("gone", pid=12, exitcode=3, signal=None),
    _errors.MemoryLimitExceeded("big", limit=10, peak=20, kind="hard", pid=5, signal="SIGKILL"),
    _errors.TaskTimeout("late", timeout=1.5, pid=7),
]


@pytest.mark.parametrize("exc", EXCEPTIONS, ids=lambda e: type(e).__name__)
def test_every_exception_pickles_with_its_facts(exc: BaseException) -> None:
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is type(exc)
    assert str(copy) == str(exc)
    assert vars(copy) == vars(exc)


def test_exceptions_subclass_the_builtin_with_the_same_meaning() -> None:
    assert issubclass(isolator.ConfigurationError, ValueError)
    assert issubclass(isolator.MemoryLimitExceeded, MemoryError)
    assert issubclass(isolator.MemoryLimitExceeded, isolator.WorkerLost)
    assert issubclass(isolator.TaskTimeout, TimeoutError)
    assert issubclass(isolator.PoolClosed, RuntimeError)
    for name in ("ConfigurationError", "SerializationError", "WorkerLost", "TaskTimeout"):
        assert issubclass(getattr(isolator, name), isolator.IsolatorError)
