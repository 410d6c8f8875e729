"""What a projection writes into SQLite: a projector's batch, or the tips of an append.

Both run inside the writer's transaction. :func:`write_batch` writes what the
projector computed (history rows, closed rows, master rows, views, the
checkpoint) if the batch still fits the stored checkpoint; :func:`project_tips`
writes immediate writes' rows in the transaction that appends them, when that
gives what the projector would have written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from eventdocs.events import Event
from eventdocs.storage.contract import ProjectionBatch, Tip, ViewWrite
from eventdocs.storage.sqlite.schema import _checkpoint, _json, _Sql
from eventdocs.times import MAX_TIME

__all__ = ["project_tips", "write_batch"]

_PUT_CHECKPOINT = "INSERT OR REPLACE INTO eventdocs_checkpoints VALUES (?, ?, ?)"


def write_batch(
    c: sqlite3.Connection,
    sql: _Sql,
    resource: str,
    batch: ProjectionBatch,
    views: Sequence[tuple[str, ViewWrite]],
) -> bool:
    """Write ``batch``; ``False`` (nothing written) when another step moved first or
    an event it did not read was recorded within the time span it projects."""
    stored = _checkpoint(c, resource)
    if not batch.fits(stored):
        return False
    cp = batch.checkpoint
    if c.execute(sql.unseen, (cp.seq, stored.toa, cp.toa)).fetchone():
        return False
    writes = batch.history
    # One executemany per statement, unless a document comes twice: then in order.
    groups = [writes] if len({w.id for w in writes}) == len(writes) else [[w] for w in writes]
    for group in groups:
        c.executemany(sql.del_history, [(w.id, w.from_rev) for w in group])
        c.executemany(
            sql.put_history,
            [
                (
                    w.id, _json(d.data), d.rev, d.updated, d.seq, d.valid_to,
                    d.known_from, d.end_known,
                )
                for w in group
                for d in w.rows
            ],
        )  # fmt: skip
        c.executemany(sql.drop_closed, [(w.id,) for w in group if w.replace_closed])
        c.executemany(
            sql.put_closed,
            [
                (
                    w.id, _json(d.data), d.rev, d.updated, d.seq, d.valid_to,
                    d.known_from, d.end_known, d.known_to,
                )
                for w in group
                for d in w.closed
            ],
        )  # fmt: skip
    if batch.due is not None:
        _apply_due(c, sql, *batch.due)
    c.executemany(
        sql.upsert,
        [(d.id, _json(d.data), d.rev, d.updated, d.seq, d.valid_to) for d in batch.upserts],
    )
    c.executemany(sql.delete, [(doc_id,) for doc_id in batch.deletes])
    for view, write in views:
        table = f'"view_{view}"'
        c.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, obj TEXT)")
        c.executemany(
            f"INSERT OR REPLACE INTO {table} VALUES (?, ?)",
            [(k, _json(v)) for k, v in write.puts.items()],
        )
        c.executemany(f"DELETE FROM {table} WHERE key = ?", [(k,) for k in write.deletes])
        c.executemany(
            "INSERT OR REPLACE INTO eventdocs_view_checkpoints VALUES (?, ?, ?, ?)",
            [(view, r, at.seq, at.toa) for r, at in write.checkpoint.items()],
        )
    c.execute(_PUT_CHECKPOINT, (resource, cp.seq, cp.toa))
    return True


def project_tips(
    conn: sqlite3.Connection,
    sql: _Sql,
    r: str,
    start: int,
    pairs: Sequence[tuple[Tip, Event]],
) -> bool:
    """Project immediate writes in their append's transaction: one commit, no step.

    Only when the projection had reached the log's end (``start``, the last
    seq before this group) and each document comes once: then every write is
    after everything its document had, so it adds one history row (believed
    from its ``recorded_at``), ends the row before it and sets the master row,
    as the projector would, and the checkpoint moves to the group's last
    event. Writes that came due since the projection's valid time are applied
    first, as a projector step applies them (``ProjectionBatch.due``): their
    rows are in the history since their events were projected, and a tip's
    document has none (its guard held no scheduled write). So under steady
    appends a scheduled write reaches the master collection with the next
    commit, not a step later. Otherwise the projector does it.
    """
    if len({e.id for _, e in pairs}) != len(pairs) or any(
        e.toa != e.recorded_at or tip.id != e.id for tip, e in pairs
    ):
        return False
    stored = _checkpoint(conn, r)
    last = pairs[-1][1]
    if stored.seq != start:
        return False
    at = max(stored.toa, last.recorded_at)
    due = conn.execute(sql.next_toa, (stored.toa, MAX_TIME, stored.seq)).fetchone()[0]
    if due is not None and due <= at:
        _apply_due(conn, sql, stored.toa, at, stored.seq)
    conn.executemany(
        sql.end_row,
        [(e.toa, e.recorded_at, e.id, tip.prior_rev) for tip, e in pairs if tip.prior_rev],
    )
    docs = [(tip, e, _json(tip.data)) for tip, e in pairs]
    conn.executemany(
        sql.put_history,
        [(e.id, doc, tip.rev, e.toa, e.seq, None, e.recorded_at, None) for tip, e, doc in docs],
    )
    conn.executemany(
        sql.upsert,
        [(e.id, doc, tip.rev, e.toa, e.seq, None) for tip, e, doc in docs if doc is not None],
    )
    conn.executemany(sql.delete, [(e.id,) for _, e, doc in docs if doc is None])
    conn.execute(_PUT_CHECKPOINT, (r, last.seq, at))
    return True


def _apply_due(
    c: sqlite3.Connection, sql: _Sql, after_toa: int, until_toa: int, max_seq: int
) -> None:
    """The writes of seq up to ``max_seq`` that came due in ``(after_toa, until_toa]``
    become master rows: each due document's history row in effect at ``until_toa``
    (written when its events were projected), or none."""
    c.execute(sql.apply_due, (after_toa, until_toa, max_seq, until_toa))
    c.execute(sql.drop_due, (after_toa, until_toa, max_seq, until_toa))
