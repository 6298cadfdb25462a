"""Files the command line writes, made so that no other user can steer them.

An output may sit in a folder other users can write to (a shared results folder, /tmp).
There, a name can be planted as a symbolic link before isolator opens it, and a write
through it would land in whatever file the link names, with isolator's rights (root's,
for a nightly job). So:

- a folder that users other than its owner (and root) can write to is refused unless the
  user says ``--allow-shared-dir`` (``check_folder``);
- temporary files are made by ``mkstemp`` in the target's own folder (a random name,
  ``O_EXCL``, mode 0600), and renamed over the target, which replaces a link rather
  than follows it (``replace_from``);
- a new file is opened with ``O_CREAT | O_EXCL | O_NOFOLLOW``, which fails on any existing
  name, a dangling link included (``create_new``); an existing one with ``O_NOFOLLOW``;
- everything holding report data (rendered reports, a batch's rows and journal) is 0600,
  whatever the umask.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
import tempfile
from collections.abc import Callable
from typing import IO

PRIVATE = 0o600


class UnsafePath(Exception):
    """An output that cannot be written safely; one line for the user, exit status 2."""


def folder_of(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def _others_in_group(gid: int, owner: int) -> bool:
    """Whether any user but ``owner`` belongs to group ``gid`` (a user-private group,
    as Debian makes one per user, has none)."""
    try:
        group = grp.getgrgid(gid)
    except KeyError:
        return True  # a group nobody can name: assume the worst
    for name in group.gr_mem:
        try:
            if pwd.getpwnam(name).pw_uid != owner:
                return True
        except KeyError:
            return True
    return any(user.pw_gid == gid and user.pw_uid != owner for user in pwd.getpwall())


def shared_reason(folder: str) -> str | None:
    """Why users other than its owner (and root) can write into ``folder``, or None."""
    info = os.stat(folder)
    me = os.geteuid()
    if info.st_uid not in (me, 0):
        return f"it belongs to uid {info.st_uid}"
    if info.st_mode & stat.S_IWOTH:
        return "every user can write to it"
    if info.st_mode & stat.S_IWGRP and _others_in_group(info.st_gid, info.st_uid):
        return f"the users of group {info.st_gid} can write to it"
    return None


def check_folder(path: str, allow_shared: bool, flag: str = "--allow-shared-dir") -> None:
    """Refuse to write ``path`` when its folder is missing, or shared without ``flag``."""
    folder = folder_of(path)
    if not os.path.isdir(folder):
        raise UnsafePath(f"no folder {folder} to write {os.path.basename(path)} in")
    reason = shared_reason(folder)
    if reason is not None and not allow_shared:
        raise UnsafePath(f"{path} would be written in {folder}, a folder other users can write "
                         f"to ({reason}); choose another, or give {flag} (nothing was written)")


def refuse_link(path: str) -> None:
    """Refuse a path that is a symbolic link (dangling or not): isolator never writes
    through one."""
    if os.path.islink(path):
        raise UnsafePath(f"{path} is a symbolic link; isolator does not write through links "
                         "(nothing was written)")


def create_new(path: str) -> int:
    """An fd of a new, empty file at ``path`` (0600), or UnsafePath if the name exists."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                       | os.O_CLOEXEC, PRIVATE)
    except FileExistsError as exc:
        raise UnsafePath(f"{path} exists; choose another name (nothing was overwritten)") \
            from exc


def _temporary(path: str) -> tuple[int, str]:
    """A new private file next to ``path``: a random name, so none can be planted."""
    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                dir=folder_of(path))
    os.fchmod(fd, PRIVATE)  # mkstemp makes 0600 already; say so whatever the platform
    return fd, temp


def write_new(path: str, text: str) -> None:
    """Write ``text`` to ``path``, which must not exist: whole or not at all (written to a
    temporary file, then linked to its name, which fails on any existing name)."""
    fd, temp = _temporary(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temp, path, follow_symlinks=False)
        except FileExistsError as exc:
            raise UnsafePath(f"{path} exists; choose another name (nothing was "
                             "overwritten)") from exc
        except OSError:  # a file system without hard links: a new name, opened O_EXCL
            with os.fdopen(create_new(path), "w", encoding="utf-8") as out:
                out.write(text)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)


def replace_from(path: str, fill: Callable[[IO[str]], None]) -> IO[str]:
    """Write ``path`` anew: ``fill`` writes a temporary file, which then replaces ``path``
    (a link at ``path`` is replaced, never followed). Returns the new file, still open
    for appending, so that later writes go to this very file and not to a name."""
    fd, temp = _temporary(path)
    out = os.fdopen(fd, "a", encoding="utf-8")
    try:
        fill(out)
        out.flush()
        os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        out.close()
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return out


def private_file(path: str) -> None:
    """Make sure ``path`` is a regular file of ours, created 0600 if missing; refuse a
    link or anything else at that name (SQLite would follow a link)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE)
    except OSError as exc:
        if os.path.islink(path):
            refuse_link(path)
        raise UnsafePath(f"cannot open {path}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePath(f"{path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise UnsafePath(f"{path} belongs to uid {info.st_uid}, not to this user")
        os.fchmod(fd, PRIVATE)  # a journal of an older version may be 0644
    finally:
        os.close(fd)
