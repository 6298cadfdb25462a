"""Reports on disk: one private directory per report, files replaced atomically.

Reports hold tracebacks, and tracebacks can hold secrets (paths, arguments in error
messages), so everything is created owner-only: directories 0700, files 0600. Modes
are set explicitly after creation because the umask can only remove bits, and a
directory that already existed is never chmod-ed (it may be the user's, or /tmp).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from typing import Any

from ._retention import writing

ENV_VAR = "ISOLATOR_REPORT_DIR"
# report.json is written last: a directory with a report.json holds a complete report.
_ORDER = ("report.txt", "report.html", "report.json")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def default_report_dir() -> str:
    """``$ISOLATOR_REPORT_DIR`` if set, else ``./isolator-reports`` under the cwd."""
    return os.environ.get(ENV_VAR) or os.path.join(os.getcwd(), "isolator-reports")


def entry_name(started_at: float, short_name: str, pid: int | None) -> str:
    """``20250101-120000-parse_rows-4242``: sorts by time, safe in any file system."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started_at))
    # "<lambda>" and unicode names become plain ASCII; long names are cut.
    name = _UNSAFE.sub("_", short_name).strip("_")[:64] or "task"
    return f"{stamp}-{name}-{pid if pid is not None else 'nopid'}"


def _make_private_dirs(directory: str) -> None:
    missing: list[str] = []
    path = os.path.abspath(directory)
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:  # another writer made it first: theirs, leave its mode
            continue
        os.chmod(path, 0o700)


def _new_entry(directory: str, name: str) -> str:
    # Two reports of the same function and pid in the same second get -2, -3, ...
    for attempt in range(1, 1000):
        path = os.path.join(directory, name if attempt == 1 else f"{name}-{attempt}")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)
        return path
    raise FileExistsError(f"cannot find a free report directory name for {name!r} in {directory}")


def _write_atomic(path: str, text: str) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.",
                                suffix=".tmp", dir=os.path.dirname(path))
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def write(directory: str, name: str, files: dict[str, str]) -> str:
    """Create ``directory/name`` (new, 0700) holding ``files`` (0600); return its path."""
    _make_private_dirs(directory)
    entry = _new_entry(os.path.abspath(directory), name)
    with writing(entry):  # a pruner in another process leaves it alone meanwhile
        for filename in sorted(files, key=lambda f: _ORDER.index(f) if f in _ORDER else -1):
            _write_atomic(os.path.join(entry, filename), files[filename])
    return entry


def read_json(path: str) -> tuple[str, Any]:
    """``(report directory, parsed report.json)`` for a directory or a report.json path."""
    if os.path.isdir(path):
        directory, filename = path, os.path.join(path, "report.json")
    else:
        directory, filename = os.path.dirname(os.path.abspath(path)), path
    with open(filename, encoding="utf-8") as source:
        try:
            data = json.load(source)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{filename} is not valid JSON: {exc}") from exc
    return os.path.abspath(directory), data
