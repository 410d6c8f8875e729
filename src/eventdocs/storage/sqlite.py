"""The SQLite store: the embedded default, one database file in WAL mode.

Writes go through one writer thread that owns the write connection. Appends
are group-committed: the writer drains every queued request, runs them in one
transaction, commits once with ``synchronous=FULL`` (one fsync for all of them)
and then resolves the callers' futures in one hop to their event loop.
Projection writes share that thread but commit with ``synchronous=NORMAL``: in
WAL that skips the fsync, and a projection lost to a power failure takes its
checkpoint with it, so the projector simply redoes it.

Reads use a second connection directly on the event loop thread: they are
short index lookups, and a hop to a thread would cost more than they take.
WAL lets them run while the writer commits; each read sees the last commit.

Queries are compiled to SQL over ``json_extract``/``json_type`` with bound
parameters and reproduce :func:`eventdocs.query.matches` and
:func:`~eventdocs.query.sort_documents` exactly: type guards keep ``1`` from
equalling ``true`` or ``"1"``, ``i*`` operators go through Python's
``str.lower`` and ``decimal`` fields through an order-preserving text key.
One process owns a store file at a time (seqs are cached by the writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

import msgspec

from eventdocs.errors import (
    DeclarationError,
    InvalidRequest,
    NotFound,
    StorageError,
    StoreUnavailable,
)
from eventdocs.events import Cancel, Draft, Event, decode_event, encode_event
from eventdocs.query import Filter, Query, SortKey, decimal_sort_key
from eventdocs.storage.contract import Appended, Checkpoint, Document, IndexSpec, ProjectionBatch
from eventdocs.times import Clock, SystemClock

__all__ = ["SQLiteStore"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = re.compile(r"^(eventdocs_|view_)|_(revisions|history)$")
_MIN_TIME = -(2**62)
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS eventdocs_resources (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS eventdocs_checkpoints (
    resource TEXT PRIMARY KEY, seq INTEGER NOT NULL, toa INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS eventdocs_keys (
    resource TEXT, key TEXT, seqs TEXT NOT NULL, PRIMARY KEY (resource, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS eventdocs_view_checkpoints (
    view TEXT, resource TEXT, seq INTEGER NOT NULL, toa INTEGER NOT NULL,
    PRIMARY KEY (view, resource)) WITHOUT ROWID;
"""
_RESOURCE_SCHEMA = """
CREATE TABLE IF NOT EXISTS "{r}_revisions" (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL, action TEXT NOT NULL, toa INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL, target INTEGER, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS "{r}_revisions_id" ON "{r}_revisions" (id);
CREATE INDEX IF NOT EXISTS "{r}_revisions_toa" ON "{r}_revisions" (toa, seq);
CREATE INDEX IF NOT EXISTS "{r}_revisions_target" ON "{r}_revisions" (target)
    WHERE target IS NOT NULL;
CREATE TABLE IF NOT EXISTS "{r}" (
    id TEXT PRIMARY KEY, doc TEXT, rev INTEGER NOT NULL, updated INTEGER NOT NULL,
    seq INTEGER NOT NULL, valid_to INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS "{r}_history" (
    id TEXT, rev INTEGER, updated INTEGER NOT NULL, seq INTEGER NOT NULL, valid_to INTEGER,
    doc TEXT, PRIMARY KEY (id, rev)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS "{r}_history_at" ON "{r}_history" (id, updated, seq);
INSERT OR IGNORE INTO eventdocs_resources (name) VALUES ('{r}');
"""
_DOC = "id, doc, rev, updated, seq, valid_to"
# Writes not cancelled by a cancel of the same document recorded before they took effect.
_DUE = (
    'FROM "{r}_revisions" AS e WHERE e.toa > ? AND e.toa <= ? AND e.seq <= ?3'
    " AND e.action != 'cancel' AND NOT EXISTS (SELECT 1 FROM \"{r}_revisions\" AS c"
    " WHERE c.target = e.seq AND c.seq <= ?3 AND c.id = e.id AND c.toa < e.toa)"
)
# No index on the valid times alone: a replay writes history in id order, and an index
# on times would turn that into random inserts (6x slower); SQLite scans the (id, rev)
# key in order instead, testing plain columns. (id, updated, seq) is in id order too.
_ALIVE = "updated <= ?1 AND (valid_to IS NULL OR valid_to > ?1) AND doc IS NOT NULL"


class _Sql:
    """Every statement of one resource, formatted once."""

    def __init__(self, r: str) -> None:
        log, h = f'"{r}_revisions"', f'"{r}_history"'
        self.insert_event = f"INSERT INTO {log} VALUES (?, ?, ?, ?, ?, ?, ?)"
        self.tail = f"SELECT seq, recorded_at FROM {log} ORDER BY seq DESC LIMIT 1"
        self.by_seqs = f"SELECT data FROM {log} WHERE seq IN (SELECT value FROM json_each(?))"
        self.read_log = f"SELECT data FROM {log} WHERE seq > ? ORDER BY seq LIMIT ?"
        self.read_event = f"SELECT data FROM {log} WHERE seq = ?"
        self.read_document = f"SELECT data FROM {log} WHERE id = ? ORDER BY seq"
        # The index on id holds the rowid (seq) too, so it serves (id, seq) order.
        self.by_document = f"SELECT data FROM {log} WHERE id > ? ORDER BY id, seq LIMIT ?"
        self.heads = (
            f"SELECT id, toa, seq FROM {log} WHERE id IN (SELECT value FROM json_each(?))"
            " AND seq <= ? AND action != 'cancel' ORDER BY toa, seq"
        )
        self.last_seq = f"SELECT coalesce(max(seq), 0) FROM {log}"
        due = _DUE.format(r=r)
        self.read_due = f"SELECT e.data {due} ORDER BY e.toa, e.seq LIMIT ?4"
        self.next_toa = f"SELECT min(e.toa) {due}"
        self.count_due = f"SELECT count(*) {due}"
        self.del_history = f"DELETE FROM {h} WHERE id = ? AND rev >= ?"
        self.link_history = (
            f"UPDATE {h} SET valid_to = ?3 WHERE id = ?1"
            f" AND rev = (SELECT max(rev) FROM {h} WHERE id = ?1 AND rev < ?2)"
        )
        self.put_history = f"INSERT INTO {h} ({_DOC}) VALUES (?, ?, ?, ?, ?, ?)"
        self.upsert = (
            f'INSERT INTO "{r}" ({_DOC}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET'
            " doc = excluded.doc, rev = excluded.rev, updated = excluded.updated,"
            " seq = excluded.seq, valid_to = excluded.valid_to"
        )
        self.delete = f'DELETE FROM "{r}" WHERE id = ?'
        self.reset = (f"DELETE FROM {h}", f'DELETE FROM "{r}"')
        self.get = f'SELECT {_DOC} FROM "{r}" WHERE id = ?'
        self.scan = f'SELECT {_DOC} FROM "{r}" WHERE id > ? ORDER BY id LIMIT ?'
        self.history = f"SELECT {_DOC} FROM {h} WHERE id = ? ORDER BY rev"
        self.tails = (
            f"SELECT id, doc, max(rev), updated, seq, valid_to FROM {h}"
            " WHERE id IN (SELECT value FROM json_each(?)) GROUP BY id"
        )
        # (updated, seq) order is rev order within a document; the index makes a read
        # at a valid time one seek, however deep the history.
        self.history_at = (
            f"SELECT {_DOC} FROM {h} WHERE id = ? AND updated <= ?"
            " ORDER BY updated DESC, seq DESC LIMIT 1"
        )
        self.scan_history = f"SELECT {_DOC} FROM {h} WHERE id > ? ORDER BY id, rev LIMIT ?"
        self.master_from = f'FROM "{r}" WHERE 1'
        self.alive_from = f"FROM {h} WHERE {_ALIVE}"


def _name(name: str, what: str) -> str:
    if not _NAME.fullmatch(name):
        raise DeclarationError(f"{what} name {name!r} must match [A-Za-z_][A-Za-z0-9_]*")
    return name


_CHECKPOINT = "SELECT seq, toa FROM eventdocs_checkpoints WHERE resource = ?"


def _checkpoint(c: sqlite3.Connection, resource: str) -> Checkpoint:
    """The stored checkpoint, read inside the writer's transaction."""
    row = c.execute(_CHECKPOINT, (resource,)).fetchone()
    return Checkpoint(*row) if row else Checkpoint()


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


# -- query compilation ----------------------------------------------------------


def _decimal_key(d: Decimal) -> str:
    return decimal_sort_key(d) or "n"


def _decimal_arg(value: Any) -> str | None:
    """The key of a value coerced as :func:`eventdocs.query` does for ``decimal``."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "b1" if value else "b0"
    try:
        return _decimal_key(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None


def _sql_decimal(value: Any, json_type: str | None) -> str | None:
    if json_type in ("true", "false"):
        return "b1" if json_type == "true" else "b0"
    if json_type in ("object", "array"):
        return None
    return _decimal_arg(value)


def _sql_lower(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) else None


def _operand(field: str) -> tuple[str, str]:
    """SQL for the field's value and its JSON type (the literal must match the index)."""
    if field == "id":
        return "id", "'text'"
    parts = field.split(".")
    if any('"' in p for p in parts):
        raise DeclarationError(f"field {field!r} cannot be queried")
    path = "$" + "".join(f".{p}" if _NAME.fullmatch(p) else f'."{p}"' for p in parts)
    path = "'" + path.replace("'", "''") + "'"
    return f"json_extract(doc, {path})", f"json_type(doc, {path})"


def _class(arg: Any) -> tuple[str, Any] | None:
    """The JSON types a Python argument is comparable with, and its bound value."""
    if isinstance(arg, bool):
        return "IN ('true', 'false')", int(arg)
    if isinstance(arg, Decimal):
        integral = arg.is_finite() and arg == arg.to_integral_value()
        arg = int(arg) if integral else float(arg)
    if isinstance(arg, int | float):
        return None if arg != arg else ("IN ('integer', 'real')", arg)  # NaN equals nothing
    if isinstance(arg, str):
        return "= 'text'", arg
    if isinstance(arg, dict | list):
        return ("= 'object'" if isinstance(arg, dict) else "= 'array'"), _json(arg)
    return None


_CMP = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _in(v: str, t: str, args: Sequence[Any], params: list[Any]) -> str:
    groups: dict[str, list[Any]] = {}
    for arg in args:
        c = _class(arg)
        if c is not None:
            groups.setdefault(c[0], []).append(c[1])
    terms = []
    for guard, values in groups.items():
        params.extend(values)
        terms.append(f"({t} {guard} AND {v} IN ({', '.join('?' * len(values))}))")
    return "(" + " OR ".join(terms) + ")" if terms else "0"


def _text_op(op: str, x: str, t: str, arg: str, params: list[Any]) -> str:
    if op == "equal":
        params.append(arg)
        return f"({t} = 'text' AND {x} = ?)"
    if not arg:
        return f"({t} = 'text')"
    if op == "prefix":
        params.extend((len(arg), arg))
        return f"({t} = 'text' AND substr({x}, 1, ?) = ?)"
    if op == "suffix":
        params.extend((-len(arg), arg))
        return f"({t} = 'text' AND substr({x}, ?) = ?)"
    params.append(arg)
    return f"({t} = 'text' AND instr({x}, ?) > 0)"


def _filter(f: Filter, params: list[Any]) -> str:
    """SQL true exactly where :func:`eventdocs.query.matches` passes ``f``."""
    v, t = _operand(f.field)
    op, arg = f.op, f.value
    if f.kind == "decimal":
        return _decimal_filter(f"eventdocs_decimal({v}, {t})", op, arg, params)
    if op == "null":
        return f"({v} IS NULL)" if arg else f"({v} IS NOT NULL)"
    if op in ("in", "notin"):
        cond = _in(v, t, arg, params)
        return cond if op == "in" else f"({v} IS NULL OR NOT {cond})"
    if op == "inot":
        if not isinstance(arg, str):
            return f"({v} IS NULL OR {t} = 'text')"
        params.append(arg.lower())
        return f"({v} IS NULL OR {t} != 'text' OR eventdocs_lower({v}) != ?)"
    if op in ("equal", "not") or op in _CMP:
        c = _class(arg)
        if c is None or (op in _CMP and c[0] in ("= 'object'", "= 'array'")):
            return "1" if op == "not" else "0"
        params.append(c[1])
        cond = f"({t} {c[0]} AND {v} {_CMP.get(op, '=')} ?)"
        return f"({v} IS NULL OR NOT {cond})" if op == "not" else cond
    if op in ("iequal", "prefix", "iprefix", "suffix", "isuffix", "contains", "icontains"):
        if not isinstance(arg, str):
            return "0"
        if op.startswith("i"):
            return _text_op(op[1:], f"eventdocs_lower({v})", t, arg.lower(), params)
        if op == "prefix" and arg:  # a range lets an index on the field narrow the scan
            last = ord(arg[-1]) + 1
            if last > 0x10FFFF or 0xD800 <= last < 0xE000:
                params.append(arg)
                return f"({v} >= ? AND {_text_op(op, v, t, arg, params)})"
            params.extend((arg, arg[:-1] + chr(last)))
            return f"({v} >= ? AND {v} < ? AND {_text_op(op, v, t, arg, params)})"
        return _text_op(op, v, t, arg, params)
    raise ValueError(f"unknown operator {op!r}")


def _decimal_filter(k: str, op: str, arg: Any, params: list[Any]) -> str:
    if op == "null":
        return f"({k} IS NULL)" if arg else f"({k} IS NOT NULL)"
    if op in ("in", "notin"):
        keys = [key for key in map(_decimal_arg, arg) if key not in (None, "n")]
        params.extend(keys)
        cond = f"{k} IN ({', '.join('?' * len(keys))})" if keys else "0"
        return cond if op == "in" else f"({k} IS NULL OR NOT {cond})"
    if op == "inot":
        return f"({k} IS NULL)"  # a coerced decimal is never text
    key = _decimal_arg(arg)
    if key is None or key == "n" or (op not in _CMP and op not in ("equal", "not")):
        return "1" if op == "not" else "0"
    params.append(key)
    if op == "equal":
        return f"({k} = ?)"
    if op == "not":
        return f"({k} IS NULL OR {k} != ?)"
    low, high = ("b", "c") if key.startswith("b") else ("0", "5")  # compare within a type
    return f"({k} {_CMP[op]} ? AND {k} >= '{low}' AND {k} < '{high}')"


def _order(keys: Sequence[SortKey]) -> str:
    """ORDER BY: Python's type order (None, bool, dict, number, list, str), then id."""
    terms = []
    for key in keys:
        v, t = _operand(key.field)
        way = " DESC" if key.descending else ""
        if key.kind == "decimal":
            terms.append(f"eventdocs_decimal({v}, {t}){way}")
        elif key.field == "id":
            terms.append(f"id{way}")
        else:
            rank = (
                f"CASE {t} WHEN 'true' THEN 1 WHEN 'false' THEN 1 WHEN 'object' THEN 2"
                " WHEN 'integer' THEN 3 WHEN 'real' THEN 3 WHEN 'array' THEN 4"
                " WHEN 'text' THEN 5 ELSE 0 END"
            )
            terms += [f"{rank}{way}", f"{v}{way}"]
    return ", ".join([*terms, "id"])


def _compile(source: str, query: Query, params: list[Any]) -> tuple[str, str]:
    """The COUNT and the page statements of ``query`` over ``source`` (``FROM … WHERE …``)."""
    body = " AND ".join([source, *(_filter(f, params) for f in query.filters)])
    page = f"SELECT {_DOC} {body} ORDER BY {_order(query.sort)} LIMIT ? OFFSET ?"
    return f"SELECT count(*) {body}", page


# -- the writer thread --------------------------------------------------------------


class _Job:
    """A request to the writer; ``result``/``error`` are set there, read on the loop."""

    __slots__ = ("error", "future", "loop", "result")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.result: Any = None
        self.error: BaseException | None = None


class _Append(_Job):
    __slots__ = ("drafts", "key", "now", "resource")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        resource: str,
        drafts: list[Draft],
        key: str | None,
        now: int,
    ) -> None:
        super().__init__(loop)
        self.resource, self.drafts, self.key, self.now = resource, drafts, key, now


class _Call(_Job):
    """Any other write: ``run`` inside a transaction, ``after`` once it committed."""

    __slots__ = ("after", "run", "sync")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        run: Callable[[sqlite3.Connection], Any],
        after: Callable[[], None] | None,
        sync: str | None,
    ) -> None:
        super().__init__(loop)
        self.run, self.after, self.sync = run, after, sync


def _settle(jobs: list[_Job]) -> None:
    for job in jobs:
        if not job.future.done():
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.result)


class _Writer:
    """Owns the write connection; commits every drained batch at once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.commits = 0
        self.tails: dict[str, tuple[int, int]] = {}  # resource -> (last seq, last recorded_at)
        self.inserts: dict[tuple[str, int], str] = {}
        self.sync = ""
        self.conn: sqlite3.Connection | None = None
        # A daemon: a store never closed must not hang the exit; unacknowledged is not lost.
        self.thread = threading.Thread(
            target=self.main, name="eventdocs-sqlite-writer", daemon=True
        )

    def main(self) -> None:
        running = True
        while running:
            batch: list[_Job] = []
            job = self.queue.get()
            while True:
                if job is None:
                    running = False
                else:
                    batch.append(job)
                try:
                    job = self.queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self.process(batch)
        if self.conn is not None:
            self.conn.close()

    def process(self, batch: list[_Job]) -> None:
        conn = self.conn
        try:
            if conn is None:  # the first job opens the connection in this thread
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, cached_statements=512
                )
                # A larger WAL between checkpoints copies a page rewritten by many commits once.
                conn.executescript(
                    "PRAGMA journal_mode=WAL; PRAGMA cache_size=-65536;"
                    " PRAGMA wal_autocheckpoint=10000;"
                )
                self.conn = conn
            calls = [j for j in batch if isinstance(j, _Call)]
            appends = [j for j in batch if isinstance(j, _Append)]
            # Appends must reach the disk; other writes can be redone from the log.
            syncs = {c.sync for c in calls}
            sync = (
                "FULL" if appends or "FULL" in syncs else "NORMAL" if syncs - {None} else self.sync
            )
            if sync != self.sync:
                conn.execute(f"PRAGMA synchronous={sync}")
                self.sync = sync
            conn.execute("BEGIN IMMEDIATE")
            for call in calls:
                conn.execute("SAVEPOINT call")
                try:
                    call.result = call.run(conn)
                except Exception as exc:  # only this call fails; the batch goes on
                    conn.execute("ROLLBACK TO call")
                    call.error = _storage_error(exc) if isinstance(exc, sqlite3.Error) else exc
                conn.execute("RELEASE call")
            tails = self.append(conn, appends)
            conn.execute("COMMIT")
            self.commits += 1
        except Exception as exc:
            self.tails.clear()
            if conn is not None and conn.in_transaction:
                conn.rollback()
            if len(batch) > 1:  # find the one that failed: each alone
                for job in batch:
                    job.result = job.error = None
                    self.process([job])
                return
            batch[0].error = _storage_error(exc) if isinstance(exc, sqlite3.Error) else exc
        else:
            self.tails.update(tails)
            for call in calls:
                if call.after is not None and call.error is None:
                    call.after()
        self.resolve(batch)

    def resolve(self, batch: list[_Job]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in batch:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                loop.call_soon_threadsafe(_settle, jobs)

    def append(self, conn: sqlite3.Connection, appends: list[_Append]) -> dict[str, Any]:
        """Assign seqs and recorded_at and insert every append's events; no commit."""
        tails: dict[str, tuple[int, int]] = {}
        rows: dict[str, list[Any]] = {}
        keys: list[tuple[str, str, str]] = []
        seen: dict[tuple[str, str], list[Event]] = {}
        for job in appends:
            r = job.resource
            if job.key is not None:
                hit = seen.get((r, job.key)) or self.replay(conn, r, job.key)
                if hit is not None:
                    job.result = Appended(hit, replayed=True)
                    continue
            seq, last = tails.get(r) or self.tails.get(r) or self.tail(conn, r)
            recorded = job.now if job.now > last else last
            events = []
            out = rows.get(r) or rows.setdefault(r, [])
            for d in job.drafts:
                seq += 1
                e = d.record(r, seq, recorded)
                events.append(e)
                target = d.target if d.action == "cancel" else None
                out += (seq, d.id, d.action, e.toa, recorded, target, encode_event(e).decode())
            tails[r] = (seq, recorded)
            if job.key is not None:
                seen[(r, job.key)] = events
                keys.append((r, job.key, _encode([e.seq for e in events]).decode()))
            job.result = Appended(events)
        for r, params in rows.items():
            # One multi-row INSERT per chunk: one step, one GIL release, not one per row.
            for i in range(0, len(params), 7 * 500):
                chunk = params[i : i + 7 * 500]
                conn.execute(self.insert(r, len(chunk) // 7), chunk)
        if keys:
            conn.executemany("INSERT INTO eventdocs_keys VALUES (?, ?, ?)", keys)
        return tails

    def insert(self, resource: str, n: int) -> str:
        sql = self.inserts.get((resource, n))
        if sql is None:
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * n)
            sql = self.inserts[(resource, n)] = (
                f'INSERT INTO "{resource}_revisions" VALUES {values}'
            )
        return sql

    def tail(self, conn: sqlite3.Connection, resource: str) -> tuple[int, int]:
        row = conn.execute(_Sql(resource).tail).fetchone()
        return (row[0], row[1]) if row else (0, _MIN_TIME)

    def replay(self, conn: sqlite3.Connection, resource: str, key: str) -> list[Event] | None:
        found = conn.execute(
            "SELECT seqs FROM eventdocs_keys WHERE resource = ? AND key = ?", (resource, key)
        ).fetchone()
        if found is None:
            return None
        data = conn.execute(_Sql(resource).by_seqs + " ORDER BY seq", found).fetchall()
        return [decode_event(d) for (d,) in data]


class SQLiteStore:
    """Every resource in one SQLite file; see the module docstring for the design."""

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock | None = None) -> None:
        self.path = os.fspath(path)
        self.clock = clock or SystemClock()
        self._writer: _Writer | None = None
        self._reader: sqlite3.Connection | None = None
        self._sql: dict[str, _Sql] = {}
        self._views: set[str] = set()

    @property
    def commits(self) -> int:
        """Transactions the writer committed so far (group commit shares them)."""
        return self._writer.commits if self._writer else 0

    # -- plumbing ---------------------------------------------------------------

    async def _call(
        self,
        run: Callable[[sqlite3.Connection], Any],
        after: Callable[[], None] | None = None,
        sync: str | None = "NORMAL",
    ) -> Any:
        if self._writer is None:
            raise StorageError("the store is not open")
        job = _Call(asyncio.get_running_loop(), run, after, sync)
        self._writer.queue.put(job)
        return await job.future

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._reader is None:
            raise StorageError("the store is not open")
        try:
            return self._reader.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _storage_error(exc) from exc

    def _res(self, resource: str) -> _Sql:
        try:
            return self._sql[resource]
        except KeyError:
            raise NotFound(f"unknown resource {resource!r}") from None

    def _events(self, sql: str, params: Sequence[Any]) -> list[Event]:
        return [decode_event(d) for (d,) in self._rows(sql, params)]

    async def pragma(self, name: str) -> Any:
        """A pragma's value on the write connection (for diagnostics and tests)."""
        _name(name, "pragma")
        return await self._call(lambda c: c.execute(f"PRAGMA {name}").fetchone()[0], sync=None)

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        self._writer = _Writer(self.path)
        self._writer.thread.start()
        await self._call(partial(_run_script, _SCHEMA.split(";")))
        try:
            self._reader = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, cached_statements=512
            )
            self._reader.executescript("PRAGMA query_only=1; PRAGMA cache_size=-32768;")
            self._reader.create_function("eventdocs_lower", 1, _sql_lower, deterministic=True)
            self._reader.create_function("eventdocs_decimal", 2, _sql_decimal, deterministic=True)
        except sqlite3.Error as exc:
            raise _storage_error(exc) from exc
        for (name,) in self._rows("SELECT name FROM eventdocs_resources"):
            self._sql[name] = _Sql(name)
        tables = self._rows("SELECT name FROM sqlite_master WHERE name GLOB 'view_*'")
        self._views.update(name.removeprefix("view_") for (name,) in tables)

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.queue.put(None)
            await asyncio.to_thread(writer.thread.join)
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def ensure_resource(self, resource: str, indexes: Sequence[IndexSpec] = ()) -> None:
        r = _name(resource, "resource")
        if _RESERVED.search(r):
            raise DeclarationError(f"resource name {r!r} is reserved for the store's own tables")
        script = _RESOURCE_SCHEMA.format(r=r).split(";")
        for spec in indexes:
            if spec.field != "id" and spec.kind != "decimal":  # decimals sort by a function
                index = f"{r}__{spec.field}".replace('"', "")
                operand = _operand(spec.field)[0]
                script.append(f'CREATE INDEX IF NOT EXISTS "{index}" ON "{r}" ({operand})')
                # The same field on the history, with the valid time, serves a
                # filter at a past or future time without visiting every revision.
                script.append(
                    f'CREATE INDEX IF NOT EXISTS "{index}_at" ON "{r}_history" ({operand}, updated)'
                )

        def after() -> None:
            self._sql[r] = _Sql(r)

        await self._call(partial(_run_script, script), after)

    async def resources(self) -> list[str]:
        return [name for (name,) in self._rows("SELECT name FROM eventdocs_resources ORDER BY 1")]

    # -- the log ------------------------------------------------------------------

    async def append(
        self, resource: str, drafts: Sequence[Draft], *, idempotency_key: str | None = None
    ) -> Appended:
        self._res(resource)
        if self._writer is None:
            raise StorageError("the store is not open")
        loop = asyncio.get_running_loop()
        job = _Append(loop, resource, list(drafts), idempotency_key, self.clock.now())
        self._writer.queue.put(job)
        result: Appended = await job.future
        return result

    async def load(self, resource: str, events: Sequence[Event]) -> None:
        sql, writer = self._res(resource), self._writer
        rows = [
            (e.seq, e.id, e.__struct_config__.tag, e.toa, e.recorded_at,
             e.target if isinstance(e, Cancel) else None, encode_event(e).decode())
            for e in events
        ]  # fmt: skip

        def run(c: sqlite3.Connection) -> None:
            assert writer is not None
            writer.tails.pop(resource, None)  # appends in this batch must see these events
            last = writer.tail(c, resource)[0]
            if [row[0] for row in rows] != list(range(last + 1, last + 1 + len(rows))):
                raise InvalidRequest(f"imported seqs must continue the log at {last + 1}")
            c.executemany(sql.insert_event, rows)

        await self._call(run, sync="FULL")

    async def find_idempotent(self, resource: str, key: str) -> list[Event] | None:
        sql = self._res(resource)
        rows = self._rows("SELECT seqs FROM eventdocs_keys WHERE resource = ? AND key = ?",
                          (resource, key))  # fmt: skip
        return self._events(sql.by_seqs + " ORDER BY seq", rows[0]) if rows else None

    async def read_log(self, resource: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        return self._events(self._res(resource).read_log, (after, limit))

    async def read_log_by_document(
        self, resource: str, *, after: str = "", limit: int = 1000
    ) -> list[Event]:
        return self._events(self._res(resource).by_document, (after, limit))

    async def read_event(self, resource: str, seq: int) -> Event | None:
        events = self._events(self._res(resource).read_event, (seq,))
        return events[0] if events else None

    async def read_document(self, resource: str, id: str) -> list[Event]:
        return self._events(self._res(resource).read_document, (id,))

    async def read_due(
        self,
        resource: str,
        *,
        after_toa: int,
        until_toa: int,
        max_seq: int,
        limit: int | None = None,
    ) -> list[Event]:
        params = (after_toa, until_toa, max_seq, -1 if limit is None else limit)
        return self._events(self._res(resource).read_due, params)

    async def count_due(
        self, resource: str, *, after_toa: int, until_toa: int, max_seq: int
    ) -> int:
        count: int = self._rows(self._res(resource).count_due, (after_toa, until_toa, max_seq))[0][
            0
        ]
        return count

    async def read_heads(
        self, resource: str, ids: Sequence[str], *, max_seq: int
    ) -> dict[str, tuple[int, int]]:
        rows = self._rows(self._res(resource).heads, (_json(list(ids)), max_seq))
        return {id: (toa, seq) for id, toa, seq in rows}  # in (toa, seq) order: the last wins

    async def next_toa(self, resource: str, *, after_toa: int, max_seq: int) -> int | None:
        toa: int | None = self._rows(self._res(resource).next_toa, (after_toa, 2**62, max_seq))[0][
            0
        ]
        return toa

    async def last_seq(self, resource: str) -> int:
        seq: int = self._rows(self._res(resource).last_seq)[0][0]
        return seq

    # -- projections -------------------------------------------------------------

    async def read_checkpoint(self, resource: str) -> Checkpoint:
        self._res(resource)
        rows = self._rows(_CHECKPOINT, (resource,))
        return Checkpoint(*rows[0]) if rows else Checkpoint()

    async def write_projection(self, resource: str, batch: ProjectionBatch) -> bool:
        sql = self._res(resource)
        views = [(_name(v, "view"), w) for v, w in batch.views.items()]

        def run(c: sqlite3.Connection) -> bool:
            if not batch.fits(_checkpoint(c, resource)):
                return False
            writes = batch.history
            # One executemany per statement, unless a document comes twice: then in order.
            groups = (
                [writes] if len({w.id for w in writes}) == len(writes) else [[w] for w in writes]
            )
            for group in groups:
                c.executemany(sql.del_history, [(w.id, w.from_rev) for w in group])
                c.executemany(
                    sql.link_history,
                    [
                        (w.id, w.from_rev, w.rows[0].updated if w.rows else None)
                        for w in group
                        if w.from_rev > 1
                    ],
                )
                c.executemany(
                    sql.put_history,
                    [
                        (w.id, _json(d.data), d.rev, d.updated, d.seq, n.updated if n else None)
                        for w in group
                        for d, n in zip(w.rows, [*w.rows[1:], None], strict=False)
                    ],
                )
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
                    [(view, r, cp.seq, cp.toa) for r, cp in write.checkpoint.items()],
                )
            cp = batch.checkpoint
            c.execute(
                "INSERT OR REPLACE INTO eventdocs_checkpoints VALUES (?, ?, ?)",
                (resource, cp.seq, cp.toa),
            )
            return True

        written: bool = await self._call(run, lambda: self._views.update(v for v, _ in views))
        return written

    async def reset_projection(self, resource: str, *, base: Checkpoint | None = None) -> bool:
        sql = self._res(resource)

        def run(c: sqlite3.Connection) -> bool:
            if base is not None and _checkpoint(c, resource) != base:
                return False
            for statement in sql.reset:
                c.execute(statement)
            c.execute("DELETE FROM eventdocs_checkpoints WHERE resource = ?", (resource,))
            return True

        done: bool = await self._call(run)
        return done

    async def get(self, resource: str, id: str) -> Document | None:
        rows = self._rows(self._res(resource).get, (id,))
        return _document(rows[0]) if rows else None

    def _query(self, source: str, query: Query, params: list[Any]) -> tuple[int, list[Document]]:
        count, page = _compile(source, query, params)
        if self._reader is None:
            raise StorageError("the store is not open")
        try:
            self._reader.execute("BEGIN")  # one snapshot for the total and the page
            try:
                total = self._reader.execute(count, params).fetchone()[0]
                rows = self._reader.execute(page, [*params, query.limit, query.offset]).fetchall()
            finally:
                self._reader.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _storage_error(exc) from exc
        return total, [_document(row) for row in rows]

    async def query(self, resource: str, query: Query) -> tuple[int, list[Document]]:
        return self._query(self._res(resource).master_from, query, [])

    async def scan(self, resource: str, *, after: str = "", limit: int = 1000) -> list[Document]:
        return [_document(row) for row in self._rows(self._res(resource).scan, (after, limit))]

    async def read_history(self, resource: str, id: str) -> list[Document]:
        return [_document(row) for row in self._rows(self._res(resource).history, (id,))]

    async def history_tails(self, resource: str, ids: Sequence[str]) -> dict[str, Document]:
        rows = self._rows(self._res(resource).tails, (_json(list(ids)),))
        return {row[0]: _document(row) for row in rows}

    async def history_at(self, resource: str, id: str, *, toa: int) -> Document | None:
        rows = self._rows(self._res(resource).history_at, (id, toa))
        return _document(rows[0]) if rows else None

    async def query_history(
        self, resource: str, query: Query, *, toa: int
    ) -> tuple[int, list[Document]]:
        return self._query(self._res(resource).alive_from, query, [toa])

    async def scan_history(
        self, resource: str, *, after: str = "", limit: int = 1000
    ) -> list[Document]:
        sql = self._res(resource)
        rows = self._rows(sql.scan_history, (after, limit + 1))
        if len(rows) > limit:  # drop the document the limit cut, or read all of the first
            cut = rows[-1][0]
            rows = [row for row in rows if row[0] != cut] or self._rows(sql.history, (cut,))
        return [_document(row) for row in rows]

    # -- views --------------------------------------------------------------------

    async def ensure_view(self, view: str) -> None:
        v = _name(view, "view")
        table = f'"view_{v}"'
        await self._call(
            lambda c: (
                c.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, obj TEXT)")
                and None
            ),
            lambda: self._views.add(v),
        )

    async def read_view(self, view: str, keys: Sequence[str] | None = None) -> dict[str, Any]:
        if _name(view, "view") not in self._views:
            return {}
        if keys is None:
            rows = self._rows(f'SELECT key, obj FROM "view_{view}"')
        else:
            rows = self._rows(
                f'SELECT key, obj FROM "view_{view}" WHERE key IN (SELECT value FROM json_each(?))',
                (_json(list(keys)),),
            )
        return {key: _decode(obj) for key, obj in rows}

    async def view_checkpoints(self, view: str) -> dict[str, Checkpoint]:
        rows = self._rows(
            "SELECT resource, seq, toa FROM eventdocs_view_checkpoints WHERE view = ?", (view,)
        )
        return {r: Checkpoint(seq, toa) for r, seq, toa in rows}

    async def reset_view(self, view: str) -> None:
        v = _name(view, "view")
        table = f'"view_{v}"'

        def run(c: sqlite3.Connection) -> None:
            c.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, obj TEXT)")
            c.execute(f"DELETE FROM {table}")
            c.execute("DELETE FROM eventdocs_view_checkpoints WHERE view = ?", (v,))

        await self._call(run, lambda: self._views.add(v))
