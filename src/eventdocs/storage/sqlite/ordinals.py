"""Each event's place in its document's log, so a document's event count is one seek.

The log's ``n`` column numbers a document's events 1, 2, 3… in seq order:
the count of ``/revisions`` is the ``n`` of the document's latest event, not
a count over its history. The append that writes an event knows its
document's latest event already (its guard reads it), so the number costs a
column, not another B-tree write. Appends, loads and imports number their
events here; a store written before the column existed is numbered once.
"""

from __future__ import annotations

import sqlite3

from eventdocs.storage.sqlite.schema import _Sql

__all__ = ["VERSION", "Ordinals", "number_events", "numbered"]

VERSION = 2  # PRAGMA user_version from which every event has its n


class Ordinals:
    """The latest event of each document a transaction appends to: its seq and ``n``,
    read by one seek the first time and moved along as events are added."""

    def __init__(self, conn: sqlite3.Connection, sql: _Sql) -> None:
        self.conn, self.sql = conn, sql
        self.last: dict[str, tuple[int, int]] = {}

    def head(self, id: str) -> int:
        """The seq of ``id``'s latest event (0 when it has none)."""
        return self._last(id)[0]

    def add(self, id: str, seq: int) -> int:
        """The ``n`` of event ``seq``, the next of document ``id``."""
        n = self._last(id)[1] + 1
        self.last[id] = (seq, n)
        return n

    def _last(self, id: str) -> tuple[int, int]:
        found = self.last.get(id)
        if found is None:
            row = self.conn.execute(self.sql.head, (id,)).fetchone()
            found = self.last[id] = (row[0], row[1]) if row else (0, 0)
        return found


def number_events(conn: sqlite3.Connection) -> None:
    """Give every event of a store written before the ``n`` column its number.

    Once per file (``PRAGMA user_version``), in the opening transaction, one
    statement per log: a window over the ``id`` index, in seq order.
    """
    if conn.execute("PRAGMA user_version").fetchone()[0] >= VERSION:
        return
    for (r,) in conn.execute("SELECT name FROM eventdocs_resources").fetchall():
        log = f'"{r}_revisions"'
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({log})")}
        if "n" not in columns:
            conn.execute(f"ALTER TABLE {log} ADD COLUMN n INTEGER")
        conn.execute(
            f"UPDATE {log} SET n = w.n FROM (SELECT seq, row_number() OVER"
            f" (PARTITION BY id ORDER BY seq) AS n FROM {log}) AS w WHERE {log}.seq = w.seq"
        )
    conn.execute(f"PRAGMA user_version = {VERSION}")


def numbered(conn: sqlite3.Connection) -> bool:
    """Whether this file's events carry their ``n`` (a read-only open of an older
    file counts instead)."""
    return bool(conn.execute("PRAGMA user_version").fetchone()[0] >= VERSION)
