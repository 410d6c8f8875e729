"""The SQLite rebuild: a resource's history and master built beside the live ones, then swapped.

Three threads overlap: a reader streams the log in ``(id, seq)`` order on a
connection of its own and folds each document (:func:`document_rows`, which
is :func:`eventdocs.fold.step` applied as :func:`eventdocs.fold.fold`
applies it); the writer thread inserts each folded chunk into fresh tables
(``eventdocs_rebuild_<r>``, ``eventdocs_rebuild_<r>_history``) that have no
secondary index yet, so every insert is an append in key order; the event
loop only passes chunks along, so a server keeps answering meanwhile. Each
chunk is its own short writer transaction: appends interleave with the
build, and the live tables stay what readers and the projector use.

The swap is one writer transaction: the documents written since the build
started (and writes that came due since its valid time) are folded again
into the fresh tables, the live tables are dropped, the fresh ones renamed,
their indexes created, the checkpoint set. A rebuild killed at any point
before that commit leaves the live projection as it was; the fresh tables
it left are dropped at the next open (:func:`drop_leftovers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import operator
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

import msgspec

from eventdocs.events import Cancel, Event, decode_event
from eventdocs.fold import MISSING, DocState, step
from eventdocs.projections.bitemporal import document_timeline
from eventdocs.projections.projector import in_effect
from eventdocs.projections.views import Change, View
from eventdocs.storage.contract import Checkpoint, Document
from eventdocs.storage.sqlite.schema import _CHECKPOINT, _decode, _encode, _storage_error

__all__ = ["PREFIX", "RebuildPlan", "document_rows", "drop_leftovers"]

PREFIX = "eventdocs_rebuild_"
_ORDER = operator.attrgetter("toa", "seq")
_CHUNK = 5000  # events per writer transaction
_PAGE = 1000  # documents per read of the log
# id, doc, rev, updated, seq, valid_to (master rows), known_from, end_known (history rows),
# known_to (closed rows)
Row = tuple[Any, ...]


def drop_leftovers(conn: sqlite3.Connection) -> None:
    """Drop the fresh tables of a rebuild that never swapped (killed, failed)."""
    names = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB ?", (PREFIX + "*",)
    ).fetchall()
    for (name,) in names:
        conn.execute(f'DROP TABLE IF EXISTS "{name}"')


def document_rows(
    doc_id: str, events: list[Event], now: int
) -> tuple[list[Row], Row | None, list[Row]]:
    """The history rows, the master row (at valid time ``now``) and the closed rows
    of one document.

    When the document's events were recorded in valid-time order (no backdated
    write before a later one, no cancel: nearly always), each applied state is a
    row valid until the next one's TOA, believed from its event's
    ``recorded_at``, its end known from the next one's: :func:`eventdocs.fold.step`
    applied as :func:`eventdocs.fold.fold` applies it, without per-event results.
    Otherwise the rows are those of
    :func:`eventdocs.projections.bitemporal.document_timeline`. A property test
    holds both equal to what :func:`eventdocs.projections.replay.expected_rows`
    derives.
    """
    events.sort(key=_ORDER)  # order_key's order, computed in C
    if any(type(e) is Cancel for e in events) or any(
        a.seq > b.seq for a, b in itertools.pairwise(events)
    ):
        return _revised_rows(doc_id, events, now)
    state: DocState = MISSING
    rows: list[Row] = []
    master: Row | None = None
    for event in events:
        state, failure = step(state, event)
        if failure is not None:
            continue
        toa, recorded = event.toa, event.recorded_at
        if rows:  # the row before is valid until this one's TOA, known since it came
            b = rows[-1]
            rows[-1] = (doc_id, b[1], b[2], b[3], b[4], toa, b[6], recorded)
        doc = None if state.data is None else _encode(state.data).decode()
        rows.append((doc_id, doc, state.rev, toa, event.seq, None, recorded, None))
        if toa <= now:
            master = None if doc is None else (doc_id, doc, state.rev, toa, event.seq, None)
    return rows, master, []


def _revised_rows(
    doc_id: str, events: list[Event], now: int
) -> tuple[list[Row], Row | None, list[Row]]:
    timeline = document_timeline(doc_id, events)
    rows = [_row(d)[:8] for d in timeline.rows]
    live = in_effect(timeline.rows, now)
    master = None if live is None or live.data is None else (*_row(live)[:5], None)
    return rows, master, [_row(d) for d in timeline.closed]


def _row(d: Document) -> Row:
    doc = None if d.data is None else _encode(d.data).decode()
    return (d.id, doc, d.rev, d.updated, d.seq, d.valid_to, d.known_from, d.end_known, d.known_to)


class _Chunk:
    """One writer transaction's worth of folded rows."""

    __slots__ = ("closed", "events", "history", "masters")

    def __init__(self) -> None:
        self.history: list[Row] = []
        self.masters: list[Row] = []
        self.closed: list[Row] = []
        self.events = 0


_decode_events = msgspec.json.Decoder(list[Event]).decode
# Rows per INSERT statement (at most 9 parameters each, under SQLite's 32,766): one step, so
# one GIL release and reacquire for all of them, not one per row while the fold holds the GIL.
_INSERT_ROWS = 3600
_COLUMNS = "id, doc, rev, updated, seq, valid_to, known_from, end_known, known_to"


def _inserts(
    conn: sqlite3.Connection, table: str, rows: list[Row], cache: dict[tuple[str, int], str]
) -> None:
    """Insert ``rows`` with multi-row INSERTs: binding holds the GIL, the step does not."""
    if not rows:
        return
    width = len(rows[0])
    columns = ", ".join(_COLUMNS.split(", ")[:width])
    for i in range(0, len(rows), _INSERT_ROWS):
        part = rows[i : i + _INSERT_ROWS]
        sql = cache.get((table, len(part)))
        if sql is None:
            values = ", ".join([f"({', '.join('?' * width)})"] * len(part))
            sql = cache[(table, len(part))] = f'INSERT INTO "{table}" ({columns}) VALUES {values}'
        conn.execute(sql, [value for row in part for value in row])


class RebuildPlan:
    """The statements of one resource's rebuild, read from the live schema."""

    def __init__(self, conn: sqlite3.Connection, resource: str) -> None:
        r = resource
        self.resource = r
        self.log = f'"{r}_revisions"'
        self.live = (r, f"{r}_history", f"{r}_superseded")
        self.fresh = (f"{PREFIX}{r}", f"{PREFIX}{r}_history", f"{PREFIX}{r}_superseded")
        tables = dict(
            conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN (?, ?, ?)",
                self.live,
            ).fetchall()
        )
        self.create = [
            tables[live].replace(f'CREATE TABLE "{live}"', f'CREATE TABLE "{fresh}"', 1)
            for live, fresh in zip(self.live, self.fresh, strict=True)
        ]
        # Every index of the live tables (declared fields, valid times), made again after
        # the swap: on tables filled in key order, one sort each instead of random inserts.
        self.indexes = [
            sql
            for (sql,) in conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN (?, ?, ?)"
                " AND sql IS NOT NULL",
                self.live,
            )
        ]
        master, history, closed = (f'"{name}"' for name in self.fresh)
        self.statements: dict[tuple[str, int], str] = {}
        # Where the time went, in seconds: for ``eventdocs bench`` and the profile.
        self.timings: dict[str, float] = {"read_fold": 0.0, "insert": 0.0}
        self.drop_doc = (
            f"DELETE FROM {history} WHERE id = ?",
            f"DELETE FROM {master} WHERE id = ?",
            f"DELETE FROM {closed} WHERE id = ?",
        )

    def start(self, conn: sqlite3.Connection) -> None:
        """Create the fresh tables (dropping any a killed rebuild left)."""
        for name in self.fresh:
            conn.execute(f'DROP TABLE IF EXISTS "{name}"')
        for sql in self.create:
            conn.execute(sql)

    def write(self, conn: sqlite3.Connection, chunk: _Chunk) -> None:
        started = time.perf_counter()
        _inserts(conn, self.fresh[1], chunk.history, self.statements)
        _inserts(conn, self.fresh[0], chunk.masters, self.statements)
        _inserts(conn, self.fresh[2], chunk.closed, self.statements)
        self.timings["insert"] += time.perf_counter() - started

    def swap(
        self,
        conn: sqlite3.Connection,
        *,
        max_seq: int,
        now: int,
        clock: Callable[[], int],
        views: Sequence[View] = (),
    ) -> tuple[int, int]:
        """Catch the fresh tables up with the log, make them the live ones; the checkpoint.

        Runs in one writer transaction, so no append comes in between: the
        documents with events after ``max_seq``, and those with a write that
        came due after ``now``, are folded again from their whole log. ``views``
        are rebuilt from the new master rows in the same transaction.
        """
        # The last event's recorded_at is the latest: the writer never records one earlier.
        tail = conn.execute(
            f"SELECT seq, recorded_at FROM {self.log} ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        last, recorded = tail or (0, now)
        at = max(clock(), recorded, now)
        touched = conn.execute(
            f"SELECT id FROM {self.log} WHERE seq > ?1"
            f" UNION SELECT id FROM {self.log} WHERE toa > ?2 AND toa <= ?3",
            (max_seq, now, at),
        ).fetchall()
        chunk = _Chunk()
        for (doc_id,) in touched:
            events = [
                decode_event(d)
                for (d,) in conn.execute(f"SELECT data FROM {self.log} WHERE id = ?", (doc_id,))
            ]
            for statement in self.drop_doc:
                conn.execute(statement, (doc_id,))
            rows, master, closed = document_rows(doc_id, events, at)
            chunk.history += rows
            chunk.closed += closed
            if master is not None:
                chunk.masters.append(master)
        # Masters not touched were folded at ``now``; nothing of theirs came due since.
        self.write(conn, chunk)
        marks = [time.perf_counter()]
        for live, fresh in zip(self.live, self.fresh, strict=True):
            conn.execute(f'DROP TABLE "{live}"')
            conn.execute(f'ALTER TABLE "{fresh}" RENAME TO "{live}"')
        marks.append(time.perf_counter())
        for sql in self.indexes:
            conn.execute(sql)
        marks.append(time.perf_counter())
        for view in views:
            self.rebuild_view(conn, view, Checkpoint(last, at))
        marks.append(time.perf_counter())
        self.timings["drop_rename"] = marks[1] - marks[0]
        self.timings["views"] = marks[3] - marks[2]
        self.timings["indexes"] = marks[2] - marks[1]
        self.timings["caught_up"] = len(touched)
        conn.execute(
            "INSERT OR REPLACE INTO eventdocs_checkpoints VALUES (?, ?, ?)",
            (self.resource, last, at),
        )
        return last, at

    def rebuild_view(self, conn: sqlite3.Connection, view: View, checkpoint: Checkpoint) -> None:
        """Fold every master row of ``view``'s sources into it; replace its rows.

        The same fold as :func:`eventdocs.projections.views.rebuild_view` (each
        document a change from nothing), inside the swap's transaction, so the
        view's checkpoints are its sources' at once. A view whose code raises
        fails the rebuild, as it fails ``rebuild_view``.
        """
        rows: dict[str, Any] = {}
        marks = []
        for source in view.sources:
            if source == self.resource:
                marks.append((source, checkpoint))
            else:
                found = conn.execute(_CHECKPOINT, (source,)).fetchone()
                marks.append((source, Checkpoint(*found) if found else Checkpoint()))
            known = conn.execute("SELECT 1 FROM eventdocs_resources WHERE name = ?", (source,))
            if not known.fetchone():
                continue
            for doc_id, doc in conn.execute(f'SELECT id, doc FROM "{source}" ORDER BY id'):
                change = Change(source, doc_id, None, _decode(doc))
                touched = {key: rows.get(key) for key in view.keys(change)}
                view.apply(touched, change)
                rows.update(touched)
        table = f'"view_{view.name}"'
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, obj TEXT)")
        conn.execute(f"DELETE FROM {table}")
        conn.executemany(
            f"INSERT INTO {table} VALUES (?, ?)",
            [(k, _encode(v).decode()) for k, v in rows.items() if v is not None],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO eventdocs_view_checkpoints VALUES (?, ?, ?, ?)",
            [(view.name, source, cp.seq, cp.toa) for source, cp in marks],
        )


def read_folded(
    path: str,
    plan: RebuildPlan,
    *,
    max_seq: int,
    now: int,
    out: queue.Queue[_Chunk | BaseException | None],
    stop: threading.Event,
) -> None:
    """The reader thread: stream the log by document, fold, put chunks on ``out``."""
    try:
        # One leading slash: "//tmp/x" (from sqlite:////tmp/x) would be a URI authority.
        uri = f"file:{quote('/' + os.path.abspath(path).lstrip('/'))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        try:
            conn.execute("PRAGMA cache_size=-65536")
            chunk = _Chunk()
            started = time.thread_time()
            for doc_id, data in _documents(conn, plan.log, max_seq):
                events = _decode_events(data)
                rows, master, closed = document_rows(doc_id, events, now)
                chunk.history += rows
                if closed:
                    chunk.closed += closed
                if master is not None:
                    chunk.masters.append(master)
                chunk.events += len(events)
                if chunk.events >= _CHUNK:
                    plan.timings["read_fold"] = time.thread_time() - started
                    out.put(chunk)
                    chunk = _Chunk()
                    if stop.is_set():
                        return
            plan.timings["read_fold"] = time.thread_time() - started
            out.put(chunk)
        finally:
            conn.close()
        out.put(None)
    except BaseException as exc:  # handed to the loop, which raises it
        out.put(_storage_error(exc) if isinstance(exc, sqlite3.Error) else exc)


def _documents(conn: sqlite3.Connection, log: str, max_seq: int) -> Iterator[Any]:
    """``(id, JSON array of its events)`` of every document, in id order.

    One row per document (any event order: the fold sorts them), so one step
    and one decode per document, not per event. Read a page of documents per
    statement: no snapshot is held for the whole rebuild, so the WAL the
    build writes is checkpointed as it goes instead of growing to the size of
    the new tables (page lookups in a long WAL get slower with its length).
    """
    sql = (
        f"SELECT id, '[' || group_concat(data) || ']' FROM {log}"
        " WHERE id > ? AND seq <= ? GROUP BY id ORDER BY id LIMIT ?"
    )
    after = ""
    while page := conn.execute(sql, (after, max_seq, _PAGE)).fetchall():
        yield from page
        after = page[-1][0]


async def rebuild(
    path: str,
    resource: str,
    call: Callable[..., Any],
    *,
    now: int,
    clock: Callable[[], int],
    progress: Callable[[int], None] | None = None,
    timings: dict[str, float] | None = None,
    views: Sequence[View] = (),
) -> int:
    """Rebuild ``resource``'s projection of the SQLite file at ``path``; events folded.

    ``call(run, sync=...)`` runs ``run(conn)`` in a writer transaction (the
    store's ``_call``); ``timings`` gets the seconds each phase took; ``views``
    are rebuilt in the swap's transaction.
    """
    timings = {} if timings is None else timings
    plan: RebuildPlan = await call(lambda c: RebuildPlan(c, resource), sync=None)
    max_seq: int = await call(
        lambda c: c.execute(f"SELECT coalesce(max(seq), 0) FROM {plan.log}").fetchone()[0],
        sync=None,
    )
    await call(plan.start)
    chunks: queue.Queue[_Chunk | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()
    reader = threading.Thread(
        target=read_folded,
        args=(path, plan),
        kwargs={"max_seq": max_seq, "now": now, "out": chunks, "stop": stop},
        name="eventdocs-rebuild-reader",
        daemon=True,
    )
    started = time.perf_counter()
    reader.start()
    total = 0
    writing: asyncio.Future[Any] | None = None
    try:
        while True:
            item = await asyncio.to_thread(chunks.get)
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            if writing is not None:
                await writing
            writing = asyncio.ensure_future(call(_writer_of(plan, item)))
            total += item.events
            if progress is not None and item.events:
                progress(item.events)
        if writing is not None:
            await writing
        plan.timings["build"] = time.perf_counter() - started
        await call(lambda c: plan.swap(c, max_seq=max_seq, now=now, clock=clock, views=views))
        plan.timings["swap"] = time.perf_counter() - started - plan.timings["build"]
    except BaseException:
        with contextlib.suppress(Exception):  # else the next open drops them
            await call(lambda c: [c.execute(f'DROP TABLE IF EXISTS "{n}"') for n in plan.fresh])
        raise
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            try:
                chunks.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.01)
    timings.update(plan.timings)
    return total


def _writer_of(plan: RebuildPlan, chunk: _Chunk) -> Callable[[sqlite3.Connection], None]:
    return lambda conn: plan.write(conn, chunk)
