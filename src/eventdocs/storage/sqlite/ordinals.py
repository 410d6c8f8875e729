"""Each event's place in its document's log, so a document's event count is one seek.

The log's ``n`` column numbers a document's events 1, 2, 3… in seq order:
the count of ``/revisions`` is the ``n`` of the document's latest event, not
a count over its history. The index on ``(id, n)`` holds the seq too, so a
document's latest event (what its guard checks, and the number the next
event takes) is read from the index alone: the number costs a column and a
wider index entry, not another B-tree write. Appends, loads and imports number their
events here; a store written before the column existed is numbered once.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Iterable

import msgspec

from eventdocs.storage.sqlite.schema import _Sql

__all__ = ["VERSION", "Heads", "Ordinals", "number_events", "numbered"]

_ids = msgspec.json.Encoder().encode
VERSION = 3  # PRAGMA user_version from which every event has its n, indexed with its id


class Heads:
    """The latest event (seq, ``n``) of the documents appended to last, as committed:
    the single writer's memory of them, so a document written again soon costs no
    seek. Bounded: the least recently written go first. Whatever writes the log
    other than the writer's appends (a load, an import) forgets its resource."""

    def __init__(self, capacity: int = 1 << 17) -> None:
        self.capacity = capacity
        # An OrderedDict drops its oldest entry in O(1). A dict does not: deleting
        # from its front leaves holes that the next ``next(iter(...))`` walks over
        # again, so once full, every commit got slower until the dict was resized
        # (the live projection benchmark's lag rose with it).
        self.known: OrderedDict[tuple[str, str], tuple[int, int]] = OrderedDict()

    def get(self, resource: str, id: str) -> tuple[int, int] | None:
        return self.known.get((resource, id))

    def commit(self, resource: str, last: dict[str, tuple[int, int]]) -> None:
        """``last`` were committed: remember them as the most recent."""
        known = self.known
        for id, head in last.items():
            key = (resource, id)
            known[key] = head
            known.move_to_end(key)
        while len(known) > self.capacity:
            known.popitem(last=False)

    def forget(self, resource: str) -> None:
        self.known = OrderedDict((k, v) for k, v in self.known.items() if k[0] != resource)


class Ordinals:
    """The latest event of each document a transaction appends to: its seq and ``n``,
    from the writer's :class:`Heads` or one seek the first time, moved along as
    events are added."""

    def __init__(
        self, conn: sqlite3.Connection, sql: _Sql, known: Heads | None = None, resource: str = ""
    ) -> None:
        self.conn, self.sql = conn, sql
        self.known, self.resource = known, resource
        self.last: dict[str, tuple[int, int]] = {}

    def prefetch(self, ids: Iterable[str]) -> None:
        """Read the latest event of each of ``ids`` not known yet, in one statement:
        a batch of appends pays one call into SQLite, not one per document."""
        wanted = []
        for i in dict.fromkeys(ids):
            if i in self.last:
                continue
            head = None if self.known is None else self.known.get(self.resource, i)
            if head is None:
                wanted.append(i)
            else:
                self.last[i] = head
        if not wanted:
            return
        found = {i: (seq, n) for i, seq, n in self.conn.execute(self.sql.heads_n, (_ids(wanted),))}
        for i in wanted:
            self.last[i] = found.get(i, (0, 0))

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
    statement per log (a window over the ``id`` index, in seq order); the index
    on ``id`` then becomes one on ``(id, n)``, which answers a head alone.
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
        index = f'"{r}_revisions_id"'  # on id alone before: on (id, n), a head is the index's
        conn.execute(f"DROP INDEX IF EXISTS {index}")
        conn.execute(f"CREATE INDEX {index} ON {log} (id, n)")
    conn.execute(f"PRAGMA user_version = {VERSION}")


def numbered(conn: sqlite3.Connection) -> bool:
    """Whether this file's events carry their ``n``, indexed (a read-only open of
    an older file counts and orders by seq instead)."""
    return bool(conn.execute("PRAGMA user_version").fetchone()[0] >= VERSION)
