"""The batch journal: a SQLite file that makes ``isolator map`` lose nothing.

Every finished input is committed to the journal before its line is appended to the
output file. On start, the output file is rebuilt from the journal (written to a temporary
file and renamed over it), so a crash between the two steps, or in the middle of a line,
leaves every input in the output exactly once after the next run. The journal also
records which batch it belongs to, so an output file of another batch is never touched.

Commits are durable against the process dying (SQLite's WAL with synchronous=NORMAL),
not against a power cut: after one, the last few finished inputs may run again, but no
input is ever lost or written twice.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

SCHEMA = 1


class JournalError(Exception):
    """The journal cannot be used; the message says why and what to do."""


class Journal:
    """Finished rows of one batch, keyed by input index."""

    def __init__(self, path: str, identity: dict[str, Any]) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self._db.execute("CREATE TABLE IF NOT EXISTS rows (idx INTEGER PRIMARY KEY, row TEXT)")
            found = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"the journal {path} is unreadable ({exc}); move it aside to "
                               "start the batch again") from exc
        wanted = {"schema": str(SCHEMA), "batch": json.dumps(identity, sort_keys=True)}
        if not found:
            self._db.executemany("INSERT INTO meta VALUES (?, ?)", wanted.items())
        elif found != wanted:
            self._db.close()
            raise JournalError(f"the journal {path} belongs to another batch "
                               f"({found.get('batch', 'unknown')}); give another --journal")

    def done(self) -> set[int]:
        return {idx for (idx,) in self._db.execute("SELECT idx FROM rows")}

    def rows(self) -> Iterator[str]:
        for (row,) in self._db.execute("SELECT row FROM rows ORDER BY idx"):
            yield row

    def record(self, idx: int, row: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO rows VALUES (?, ?)", (idx, row))

    def close(self) -> None:
        self._db.close()


def rebuild(out: str, journal: Journal) -> None:
    """Write ``out`` anew from the journal: every finished row once, in input order."""
    temporary = f"{out}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as fh:
        for row in journal.rows():
            fh.write(row + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, out)
