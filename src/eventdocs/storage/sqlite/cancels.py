"""Which write a cancel took: the fold's rule, applied once, when the cancel is written.

A cancel takes its TOA when it is recorded, so whether it cancels its target
(:func:`eventdocs.fold.cancel_failure`) is known then and never changes. The
log's ``target`` column records that outcome: the write the cancel took, or
NULL when it took none (the event's own ``target`` stays in its data). The
queries of due and next writes then only select: a write is cancelled when a
row's ``target`` is its seq. Appends, imports and the upgrade of a store
written before this column meant that all decide here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Container, Mapping

from eventdocs.events import Cancel, Event, decode_event
from eventdocs.fold import cancel_failure
from eventdocs.storage.sqlite.schema import _Sql

__all__ = ["Taking", "decide_cancels", "taken"]

_VERSION = 1  # PRAGMA user_version from which the target column holds decisions


def taken(
    conn: sqlite3.Connection,
    sql: _Sql,
    cancel: Cancel,
    fresh: Mapping[int, Event] = {},
    fresh_taken: Container[int] = (),
) -> int | None:
    """The write ``cancel`` cancels, or ``None``, by the fold's rule.

    ``fresh`` are events of the same transaction not inserted yet, and
    ``fresh_taken`` the writes their cancels took.
    """
    target = fresh.get(cancel.target)
    if target is None:
        found = conn.execute(sql.read_event, (cancel.target,)).fetchone()
        target = None if found is None else decode_event(found[0])
    cancelled = cancel.target in fresh_taken or bool(
        conn.execute(sql.cancels, (f"[{cancel.target}]",)).fetchone()
    )
    return None if cancel_failure(cancel, target, cancelled=cancelled) else cancel.target


class Taking:
    """The writes a transaction's cancels take, its events added in seq order
    before they are inserted (a batch of appends, a loaded chunk)."""

    def __init__(self, conn: sqlite3.Connection, sql: _Sql) -> None:
        self.conn, self.sql = conn, sql
        self.fresh: dict[int, Event] = {}
        self.took: set[int] = set()

    def add(self, event: Event) -> int | None:
        """The write ``event`` takes, if it is a cancel that takes one."""
        target = None
        if isinstance(event, Cancel):
            target = taken(self.conn, self.sql, event, self.fresh, self.took)
            if target is not None:
                self.took.add(target)
        self.fresh[event.seq] = event
        return target


def decide_cancels(conn: sqlite3.Connection) -> None:
    """Record every cancel's outcome in a store written before ``target`` held it.

    Once per file (``PRAGMA user_version``), in the opening transaction: each
    log's cancels are read by the partial index on ``target``, in seq order, so
    an earlier cancel's outcome is known to the later ones.
    """
    if conn.execute("PRAGMA user_version").fetchone()[0] >= _VERSION:
        return
    for (r,) in conn.execute("SELECT name FROM eventdocs_resources").fetchall():
        sql, log = _Sql(r), f'"{r}_revisions"'
        rows = conn.execute(f"SELECT data FROM {log} WHERE target IS NOT NULL ORDER BY seq")
        cancels = [decode_event(data) for (data,) in rows.fetchall()]
        conn.execute(f"UPDATE {log} SET target = NULL WHERE target IS NOT NULL")
        for cancel in cancels:
            if isinstance(cancel, Cancel) and (took := taken(conn, sql, cancel)) is not None:
                conn.execute(f"UPDATE {log} SET target = ? WHERE seq = ?", (took, cancel.seq))
    conn.execute(f"PRAGMA user_version = {_VERSION}")
