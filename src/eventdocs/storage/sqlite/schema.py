"""The SQLite schema: tables per resource, every statement formatted once, row codecs."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import msgspec

from eventdocs.errors import (
    DeclarationError,
    StorageError,
    StoreUnavailable,
)
from eventdocs.storage.contract import Checkpoint, Document

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = re.compile(r"^(eventdocs_|view_)|_(revisions|history|superseded)$")
_MIN_TIME = -(2**62)
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS eventdocs_resources (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS eventdocs_checkpoints (
    resource TEXT PRIMARY KEY, seq INTEGER NOT NULL, toa INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS eventdocs_keys (
    resource TEXT, key TEXT, seqs TEXT NOT NULL, fingerprint TEXT,
    PRIMARY KEY (resource, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS eventdocs_view_checkpoints (
    view TEXT, resource TEXT, seq INTEGER NOT NULL, toa INTEGER NOT NULL,
    PRIMARY KEY (view, resource)) WITHOUT ROWID;
"""
_RESOURCE_SCHEMA = """
CREATE TABLE IF NOT EXISTS "{r}_revisions" (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL, action TEXT NOT NULL, toa INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL, target INTEGER, data TEXT NOT NULL, n INTEGER);
CREATE INDEX IF NOT EXISTS "{r}_revisions_id" ON "{r}_revisions" (id, n);
CREATE INDEX IF NOT EXISTS "{r}_revisions_toa" ON "{r}_revisions" (toa, seq);
CREATE INDEX IF NOT EXISTS "{r}_revisions_next" ON "{r}_revisions" (id, toa)
    WHERE action != 'cancel';
CREATE INDEX IF NOT EXISTS "{r}_revisions_target" ON "{r}_revisions" (target)
    WHERE target IS NOT NULL;
CREATE INDEX IF NOT EXISTS "{r}_revisions_valid" ON "{r}_revisions" (id, toa);
CREATE TABLE IF NOT EXISTS "{r}" (
    id TEXT PRIMARY KEY, doc TEXT, rev INTEGER NOT NULL, updated INTEGER NOT NULL,
    seq INTEGER NOT NULL, valid_to INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS "{r}_history" (
    id TEXT, rev INTEGER, updated INTEGER NOT NULL, seq INTEGER NOT NULL, valid_to INTEGER,
    doc TEXT, known_from INTEGER NOT NULL DEFAULT 0, end_known INTEGER,
    PRIMARY KEY (id, rev)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS "{r}_history_at" ON "{r}_history" (id, updated, seq);
CREATE INDEX IF NOT EXISTS "{r}_history_ahead" ON "{r}_history" (updated)
    WHERE known_from < updated;
CREATE INDEX IF NOT EXISTS "{r}_history_ahead_id" ON "{r}_history" (id, updated, seq)
    WHERE known_from < updated;
CREATE TABLE IF NOT EXISTS "{r}_superseded" (
    id TEXT NOT NULL, rev INTEGER NOT NULL, updated INTEGER NOT NULL, seq INTEGER NOT NULL,
    valid_to INTEGER, doc TEXT, known_from INTEGER NOT NULL, end_known INTEGER,
    known_to INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS "{r}_superseded_at" ON "{r}_superseded" (id, updated, seq);
CREATE INDEX IF NOT EXISTS "{r}_superseded_to" ON "{r}_superseded" (known_to);
INSERT OR IGNORE INTO eventdocs_resources (name) VALUES ('{r}');
"""
_DOC = "id, doc, rev, updated, seq, valid_to"
_HDOC = f"{_DOC}, known_from, end_known"  # a history row: its recording interval too
# Believed at ?{k} (known_at) in effect at ?{t} (valid time): the bitemporal index's test,
# :func:`eventdocs.storage.contract.believed` in SQL, on plain columns of each row.
_BELIEVED = (
    "known_from <= ?{k} AND updated <= ?{t}"
    " AND (valid_to IS NULL OR valid_to > ?{t} OR end_known > ?{k})"
)
# Writes no cancel took (by ?3): a cancel's ``target`` column is the write it took, decided
# by the fold's rule when it was written (.cancels); here it is only selected.
_DUE = (
    'FROM "{r}_revisions" AS e WHERE e.toa > ? AND e.toa <= ? AND e.seq <= ?3'
    " AND e.action != 'cancel' AND NOT EXISTS (SELECT 1 FROM \"{r}_revisions\" AS c"
    " WHERE c.target = e.seq AND c.seq <= ?3)"
)
# No index on the valid times alone: a replay writes history in id order, and an index
# on times would turn that into random inserts (6x slower); SQLite scans the (id, rev)
# key in order instead, testing plain columns. (id, updated, seq) is in id order too.
_ALIVE = "updated <= ?1 AND (valid_to IS NULL OR valid_to > ?1) AND doc IS NOT NULL"


class _Sql:
    """Every statement of one resource, formatted once."""

    def __init__(self, r: str, *, numbered: bool = True) -> None:
        log, h = f'"{r}_revisions"', f'"{r}_history"'
        self.insert_event = f"INSERT INTO {log} VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        self.tail = f"SELECT seq, recorded_at FROM {log} ORDER BY seq DESC LIMIT 1"
        self.by_seqs = f"SELECT data FROM {log} WHERE seq IN (SELECT value FROM json_each(?))"
        self.read_log = f"SELECT data FROM {log} WHERE seq > ? ORDER BY seq LIMIT ?"
        self.read_event = f"SELECT data FROM {log} WHERE seq = ?"
        # A document's events in seq order: n order, which the (id, n) index holds (an
        # older file read-only: its index on id alone, which holds the rowid, seq).
        by = "n" if numbered else "seq"
        self.read_document = f"SELECT data FROM {log} WHERE id = ? ORDER BY {by}"
        self.by_document = f"SELECT data FROM {log} WHERE id > ? ORDER BY id, {by} LIMIT ?"
        # One backwards seek per id on (id, toa) where action != 'cancel', not its whole log.
        self.heads = (
            f"SELECT j.value, e.toa, e.seq FROM json_each(?1) AS j JOIN {log} AS e"
            f' ON e.seq = (SELECT seq FROM {log} INDEXED BY "{r}_revisions_next"'
            " WHERE id = j.value AND seq <= ?2 AND action != 'cancel'"
            " ORDER BY toa DESC, seq DESC LIMIT 1)"
        )
        self.last_seq = f"SELECT coalesce(max(seq), 0) FROM {log}"
        # What a write is decided on, and its document's event count (.ordinals): one
        # index seek, however long the history.
        # The index holds (id, n, seq): the latest event's seq and n without the row.
        n = "n" if numbered else "NULL"
        self.head = f"SELECT seq, {n} FROM {log} WHERE id = ? ORDER BY {by} DESC LIMIT 1"
        self.heads_n = (  # the same for a JSON array of ids, one seek each
            f"SELECT j.value, e.seq, e.n FROM json_each(?1) AS j JOIN {log} AS e"
            f" ON e.id = j.value AND e.n = (SELECT max(n) FROM {log} WHERE id = j.value)"
        )
        # The next write that takes effect: one a cancel took never does.
        self.next_write = (
            f"SELECT min(e.toa) FROM {log} AS e WHERE e.id = ?1 AND e.toa > ?2"
            " AND e.action != 'cancel' AND NOT EXISTS (SELECT 1 FROM"
            f' {log} AS c INDEXED BY "{r}_revisions_target" WHERE c.target = e.seq)'
        )
        # An event the projection step did not see, recorded within the time it projects.
        self.unseen = f"SELECT 1 FROM {log} WHERE seq > ? AND recorded_at > ? AND recorded_at <= ?"
        due = _DUE.format(r=r)
        self.read_due = f"SELECT e.data {due} ORDER BY e.toa, e.seq LIMIT ?4"
        self.next_toa = f"SELECT min(e.toa) {due}"
        self.count_due = f"SELECT count(*) {due}"
        # A mass activation in two statements: each due document's master row becomes
        # its history row in effect at ?4 (one seek each), or goes when there is none.
        in_effect = (
            f"(SELECT rev FROM {h} WHERE id = d.id AND updated <= ?4"
            " ORDER BY updated DESC, seq DESC LIMIT 1)"
        )
        self.apply_due = (
            f'INSERT INTO "{r}" ({_DOC}) SELECT x.id, x.doc, x.rev, x.updated, x.seq, NULL'
            f" FROM (SELECT DISTINCT e.id AS id {due}) AS d JOIN {h} AS x"
            f" ON x.id = d.id AND x.rev = {in_effect} WHERE x.doc IS NOT NULL"
            " ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, rev = excluded.rev,"
            " updated = excluded.updated, seq = excluded.seq, valid_to = NULL"
        )
        self.drop_due = (
            f'DELETE FROM "{r}" WHERE id IN (SELECT d.id FROM (SELECT DISTINCT e.id AS id {due})'
            f" AS d LEFT JOIN {h} AS x ON x.id = d.id AND x.rev = {in_effect}"
            " WHERE x.doc IS NULL)"
        )
        self.pending = f"SELECT e.toa, e.seq, e.id {due}"
        self.pending_page = f"SELECT e.data {due} ORDER BY e.toa, e.seq LIMIT ?4 OFFSET ?5"
        # Past a (toa, seq) cursor (?6, ?7): a seek on (toa, seq), not a skip. The caller
        # folds the cursor's TOA into ?1, the range's one lower bound the plan seeks to.
        self.pending_after = (
            f"SELECT e.data {due} AND (e.toa > ?6 OR e.seq > ?7)"
            " ORDER BY e.toa, e.seq LIMIT ?4 OFFSET ?5"
        )
        self.del_history = f"DELETE FROM {h} WHERE id = ? AND rev >= ?"
        self.put_history = f"INSERT INTO {h} ({_HDOC}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        self.end_row = f"UPDATE {h} SET valid_to = ?, end_known = ? WHERE id = ? AND rev = ?"
        self.drop_closed = f'DELETE FROM "{r}_superseded" WHERE id = ?'
        self.put_closed = (
            f'INSERT INTO "{r}_superseded" ({_HDOC}, known_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'
        )
        self.upsert = (
            f'INSERT INTO "{r}" ({_DOC}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET'
            " doc = excluded.doc, rev = excluded.rev, updated = excluded.updated,"
            " seq = excluded.seq, valid_to = excluded.valid_to"
        )
        self.delete = f'DELETE FROM "{r}" WHERE id = ?'
        self.reset = (f"DELETE FROM {h}", f'DELETE FROM "{r}"', f'DELETE FROM "{r}_superseded"')
        self.get = f'SELECT {_DOC} FROM "{r}" WHERE id = ?'
        self.scan = f'SELECT {_DOC} FROM "{r}" WHERE id > ? ORDER BY id LIMIT ?'
        self.history = f"SELECT {_HDOC} FROM {h} WHERE id = ? ORDER BY rev"
        # Per id one seek for its last rev, one for the row: never the whole history.
        self.tails = (
            "SELECT t.id, t.doc, t.rev, t.updated, t.seq, t.valid_to, t.known_from, t.end_known"
            f" FROM json_each(?) AS j JOIN {h} AS t"
            f" ON t.id = j.value AND t.rev = (SELECT max(rev) FROM {h} WHERE id = j.value)"
        )
        # (updated, seq) order is rev order within a document; the index makes a read
        # at a valid time one seek, however deep the history.
        self.history_at = (
            f"SELECT {_HDOC} FROM {h} WHERE id = ? AND updated <= ?"
            " ORDER BY updated DESC, seq DESC LIMIT 1"
        )
        # As believed at a time: the same seek, back past rows recorded later; a row
        # replaced since is in the (mostly empty) superseded table.
        believed = _BELIEVED.format(t=2, k=3)
        # The two rows a get as known at ?3 (valid time ?2) can be: the latest known by
        # then among those in effect by ?3, and among the rows that took effect after ?3
        # (scheduled ones, a partial index). Each seek skips only rows recorded after ?3.
        self.known_by = (
            f"SELECT {_HDOC} FROM {h} WHERE id = ?1 AND updated <= min(?2, ?3)"
            " AND known_from <= ?3 ORDER BY updated DESC, seq DESC LIMIT 1"
        )
        self.known_ahead = (
            f'SELECT {_HDOC} FROM {h} INDEXED BY "{r}_history_ahead_id" WHERE id = ?1'
            " AND known_from < updated AND updated > ?3 AND updated <= ?2 AND known_from <= ?3"
            " ORDER BY updated DESC, seq DESC LIMIT 1"
        )
        self.closed_known = (
            f'SELECT {_HDOC} FROM "{r}_superseded" WHERE id = ?1'
            f" AND known_to > ?3 AND {believed} ORDER BY updated DESC, seq DESC LIMIT 1"
        )
        self.scan_history = f"SELECT {_HDOC} FROM {h} WHERE id > ? ORDER BY id, rev LIMIT ?"
        # A document's events in valid-time order, from the (id, toa) index (seq is the
        # rowid, so the index is in (id, toa, seq) order): pages and re-folds seek.
        self.revisions = f"SELECT data FROM {log} WHERE id = ? ORDER BY toa, seq LIMIT ? OFFSET ?"
        self.revisions_after = (
            f"SELECT data FROM {log} WHERE id = ?1 AND toa >= ?4 AND (toa > ?4 OR seq > ?5)"
            " ORDER BY toa, seq LIMIT ?2 OFFSET ?3"
        )
        self.count_document = (
            f"SELECT coalesce((SELECT max(n) FROM {log} WHERE id = ?), 0)"
            if numbered
            else f"SELECT count(*) FROM {log} WHERE id = ?"  # an older file, read-only
        )
        self.read_from = (
            f"SELECT data FROM {log} WHERE id = ?1 AND toa >= ?2 AND (toa > ?2 OR seq >= ?3)"
            " ORDER BY toa, seq"
        )
        self.cancels = (
            f"SELECT data FROM {log} WHERE target IN (SELECT value FROM json_each(?))"
            " AND target IS NOT NULL ORDER BY seq"  # the cancels that took one of them
        )
        self.history_before = (
            f"SELECT {_HDOC} FROM {h} WHERE id = ?1 AND updated <= ?2"
            " AND (updated < ?2 OR seq < ?3) ORDER BY updated DESC, seq DESC LIMIT 1"
        )
        self.history_span = (
            f"SELECT {_HDOC} FROM {h} WHERE id = ? AND updated >= ? AND updated <= ?"
            " ORDER BY updated, seq"
        )
        self.history_rev = f"SELECT {_HDOC} FROM {h} WHERE id = ? AND rev = ?"
        self.history_at_many = (
            "SELECT r.id, r.doc, r.rev, r.updated, r.seq, r.valid_to, r.known_from, r.end_known"
            f" FROM json_each(?1) AS j JOIN {h} AS r"
            f" ON r.id = j.value AND r.rev = (SELECT rev FROM {h} WHERE id = j.value"
            " AND updated <= ?2 ORDER BY updated DESC, seq DESC LIMIT 1)"
        )
        self.master_from = f'FROM "{r}" WHERE 1'
        self.alive_from = f"FROM {h} WHERE {_ALIVE}"
        believed = _BELIEVED.format(t=1, k=2)
        # Rows in effect by known_at (a seek on the field's valid-time index, as for
        # as_of), and rows recorded by known_at that took effect after it: scheduled
        # ones, few, in a partial index of their own.
        self.known_current = (
            f"FROM {h} WHERE updated <= min(?1, ?2) AND {believed} AND doc IS NOT NULL",
            f'FROM {h} INDEXED BY "{r}_history_ahead" WHERE known_from < updated'
            f" AND updated > ?2 AND {believed} AND doc IS NOT NULL",
        )
        self.ahead_at = (
            f'SELECT 1 FROM {h} INDEXED BY "{r}_history_ahead" WHERE known_from < updated'
            " AND updated > ?1 AND known_from <= ?1 LIMIT 1"
        )
        self.closed_at = (
            f'SELECT 1 FROM "{r}_superseded" WHERE known_to > ?1 AND known_from <= ?1 LIMIT 1'
        )
        self.known_from = (
            f"FROM (SELECT {_DOC} FROM {h} WHERE {believed}"
            f' UNION ALL SELECT {_DOC} FROM "{r}_superseded" WHERE known_to > ?2 AND {believed})'
            " WHERE doc IS NOT NULL"
        )


def _name(name: str, what: str) -> str:
    if not _NAME.fullmatch(name):
        raise DeclarationError(f"{what} name {name!r} must match [A-Za-z_][A-Za-z0-9_]*")
    return name


_CHECKPOINT = "SELECT seq, toa FROM eventdocs_checkpoints WHERE resource = ?"


def _checkpoint(c: sqlite3.Connection, resource: str) -> Checkpoint:
    """The stored checkpoint, read inside the writer's transaction."""
    row = c.execute(_CHECKPOINT, (resource,)).fetchone()
    return Checkpoint(*row) if row else Checkpoint()


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a store written by an older eventdocs up to this schema."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(eventdocs_keys)")}
    if "fingerprint" not in columns:
        conn.execute("ALTER TABLE eventdocs_keys ADD COLUMN fingerprint TEXT")


def _storage_error(exc: sqlite3.Error) -> StorageError:
    """The one place driver errors become eventdocs errors."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return StoreUnavailable(f"sqlite: {text}")
    return StorageError(f"sqlite: {text}")


def _run_script(statements: list[str], conn: sqlite3.Connection) -> None:
    # Not executescript: it would commit the writer's open transaction first.
    for statement in statements:
        if statement.strip():
            conn.execute(statement)


def _json(data: Any) -> str | None:
    return None if data is None else _encode(data).decode()


def _document(row: Any) -> Document:
    return Document(row[0], None if row[1] is None else _decode(row[1]), *row[2:])


def upgrade_history(conn: sqlite3.Connection, r: str) -> None:
    """A history written before it carried recording intervals gets the columns, and
    the resource's checkpoint goes back to zero: its first projection rebuilds it."""
    columns = {row[1] for row in conn.execute(f'PRAGMA table_info("{r}_history")')}
    if columns and "known_from" not in columns:
        conn.execute(f'ALTER TABLE "{r}_history" ADD COLUMN known_from INTEGER NOT NULL DEFAULT 0')
        conn.execute(f'ALTER TABLE "{r}_history" ADD COLUMN end_known INTEGER')
        conn.execute("DELETE FROM eventdocs_checkpoints WHERE resource = ?", (r,))
