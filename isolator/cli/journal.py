"""The batch journal: a SQLite file that makes ``isolator map`` lose nothing.

Every finished input is committed to the journal before its line is appended to the
output file. On start, the output file is rebuilt from the journal (written to a temporary
file and renamed over it), so a crash between the two steps, or in the middle of a line,
leaves every input in the output exactly once after the next run. The journal also
records which batch it belongs to, so an output file of another batch is never touched.

A journal that cannot be trusted next to an existing output (empty, truncated, corrupted,
or holding no batch) is refused, never taken for a new batch: that would wipe the output
and run every finished input again.

Commits are durable against the process dying (SQLite's WAL with synchronous=NORMAL),
not against a power cut: after one, the last few finished inputs may run again, but no
input is ever lost or written twice.
"""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.parse
from collections.abc import Iterator
from typing import IO, Any

from .files import private_file, replace_from

SCHEMA = 1


class JournalError(Exception):
    """The journal cannot be used; the message says why and what to do."""


def _connect(path: str) -> sqlite3.Connection:
    # nofollow: SQLite refuses a link at the journal's name (it opens its -wal and -shm
    # files without following links already).
    uri = f"file:{urllib.parse.quote(os.path.abspath(path))}?nofollow=1"
    return sqlite3.connect(uri, uri=True, isolation_level=None)


class Journal:
    """Finished rows of one batch, keyed by input index.

    ``output`` is the batch's output file when it exists already: then the journal must
    be a readable one of this batch, or it is refused (JournalError) and nothing changes.
    """

    def __init__(self, path: str, identity: dict[str, Any], output: str | None = None) -> None:
        self.path = path
        existed = os.path.exists(path)
        if output is not None and existed and os.path.getsize(path) == 0:
            raise JournalError(f"{output} exists but its journal {path} is empty: refusing "
                               "to start the batch again over it (nothing was changed)")
        private_file(path)  # 0600, and not a link
        wanted = {"schema": str(SCHEMA), "batch": json.dumps(identity, sort_keys=True)}
        try:
            self._db = _connect(path)
            if existed:
                problem = self._db.execute("PRAGMA quick_check").fetchone()[0]
                if problem != "ok":
                    raise sqlite3.DatabaseError(problem.splitlines()[0])
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self._db.execute("CREATE TABLE IF NOT EXISTS rows (idx INTEGER PRIMARY KEY, row TEXT)")
            found = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"the journal {path} is unreadable ({exc}); nothing was "
                               "changed; move it aside to start the batch again") from exc
        if not found and output is not None:
            self._db.close()
            raise JournalError(f"the journal {path} records no batch, but {output} exists: "
                               "refusing to start the batch again over it (nothing was changed)")
        if not found:
            self._db.executemany("INSERT INTO meta VALUES (?, ?)", wanted.items())
        elif found != wanted:
            self._db.close()
            raise JournalError(f"the journal {path} belongs to another batch "
                               f"({found.get('batch', 'unknown')}); give another --journal")

    def _read(self, query: str) -> list[Any]:
        try:
            return self._db.execute(query).fetchall()
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"the journal {self.path} is unreadable ({exc})") from exc

    def done(self) -> set[int]:
        return {idx for (idx,) in self._read("SELECT idx FROM rows")}

    def rows(self) -> Iterator[str]:
        for (row,) in self._read("SELECT row FROM rows ORDER BY idx"):
            yield row

    def record(self, idx: int, row: str) -> None:
        try:
            self._db.execute("INSERT OR IGNORE INTO rows VALUES (?, ?)", (idx, row))
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"cannot record input {idx} in the journal {self.path} "
                               f"({exc}); run the same command again to resume") from exc

    def close(self) -> None:
        self._db.close()


def rebuild(out: str, journal: Journal) -> IO[str]:
    """Write ``out`` anew from the journal: every finished row once, in input order.
    Returns the new output file, open for appending the rows still to come."""
    rows = list(journal.rows())  # read first: an unreadable journal changes nothing

    def fill(fh: IO[str]) -> None:
        for row in rows:
            fh.write(row + "\n")

    return replace_from(out, fill)
