"""The SQLite store: the contract over one database file in WAL mode.

Writes go through the writer thread (:mod:`.writer`). Point reads (one index
seek: ``get``, ``history_at``, ``read_head``...) use a connection directly on
the event loop thread, where a hop to a thread would cost more than they
take; reads whose cost grows with the data (queries, a document's log, scans)
run on reader threads (:mod:`.readers`) so they never stall the loop. WAL
lets all of them run while the writer commits; each read sees the last commit.
This module opens the file, writes and reads the log; the reads of the master
collection and the history are :mod:`.reads`.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

from eventdocs.errors import (
    DeclarationError,
    InvalidRequest,
    KeyReused,
    NotFound,
    StorageError,
)
from eventdocs.events import Draft, Event, encode_event
from eventdocs.projections.views import View
from eventdocs.storage.contract import (
    Appended,
    Checkpoint,
    Guard,
    Head,
    IndexSpec,
    ProjectionBatch,
    Tip,
)
from eventdocs.storage.sqlite.cancels import Taking, decide_cancels
from eventdocs.storage.sqlite.compile import _operand
from eventdocs.storage.sqlite.imports import load_log
from eventdocs.storage.sqlite.ordinals import Ordinals, number_events, numbered
from eventdocs.storage.sqlite.owner import Ownership, claim
from eventdocs.storage.sqlite.projection import write_batch
from eventdocs.storage.sqlite.readers import Readers, connect_reader, open_error
from eventdocs.storage.sqlite.reads import Reads
from eventdocs.storage.sqlite.rebuild import drop_leftovers, rebuild
from eventdocs.storage.sqlite.schema import (
    _CHECKPOINT,
    _RESERVED,
    _RESOURCE_SCHEMA,
    _SCHEMA,
    _checkpoint,
    _decode,
    _json,
    _migrate,
    _name,
    _run_script,
    _Sql,
    upgrade_history,
)
from eventdocs.storage.sqlite.writer import _Append, _Call, _Writer
from eventdocs.times import MAX_TIME, Clock, SystemClock


class SQLiteStore(Reads):
    """Every resource in one SQLite file; see the module docstring for the design."""

    # Writes that come due are applied to the master collection in SQL (ProjectionBatch.due).
    applies_due = True

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Clock | None = None, readonly: bool = False
    ) -> None:
        self.path = os.fspath(path)
        self.clock = clock or SystemClock()
        # Read-only: a WAL reader beside the owner; no lock, no writer, nothing created.
        self.readonly = readonly
        self._owner: Ownership | None = None
        self._writer: _Writer | None = None
        self._reader: sqlite3.Connection | None = None
        self._readers: Readers | None = None  # queries, scans: what a client asks for
        self._quick: Readers | None = None  # the projector's and writers' bounded reads
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

    @property
    def reader_threads(self) -> set[int]:
        """The threads that ran reads off the loop so far (for tests)."""
        pools = (self._readers, self._quick)
        return {t for pool in pools if pool is not None for t in pool.threads}

    async def pragma(self, name: str) -> Any:
        """A pragma's value on the write connection (for diagnostics and tests)."""
        _name(name, "pragma")
        return await self._call(lambda c: c.execute(f"PRAGMA {name}").fetchone()[0], sync=None)

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None or self._reader is not None:
            return
        if self.readonly:
            self._open_reader(read_only=True)
            return
        if self.path != ":memory:":
            self._owner = claim(self.path)  # before anything touches the file
        try:
            self._writer = _Writer(self.path, self.clock)
            self._writer.thread.start()
            await self._call(partial(_run_script, _SCHEMA.split(";")))
            await self._call(_migrate)
            await self._call(decide_cancels)  # once per file
            await self._call(number_events)  # once per file
            await self._call(drop_leftovers)  # of a rebuild killed before its swap
            self._open_reader(read_only=False)
        except BaseException:
            await self.close()
            raise

    def _open_reader(self, *, read_only: bool) -> None:
        if read_only and not os.path.exists(self.path):
            raise NotFound(f"no store at {self.path}")
        conn = connect_reader(self.path, read_only=read_only)
        try:
            known = "SELECT 1 FROM sqlite_master WHERE name = 'eventdocs_resources'"
            if not conn.execute(known).fetchone():
                raise StorageError(f"{self.path} is not an eventdocs store")
        except (sqlite3.Error, StorageError) as exc:
            conn.close()
            if isinstance(exc, StorageError):
                raise
            raise open_error(self.path, exc) from exc
        self._reader = conn
        connect = partial(connect_reader, self.path, read_only=read_only)
        self._readers = Readers(connect)
        self._quick = Readers(connect, workers=1)
        counted = numbered(conn)
        for (name,) in self._rows("SELECT name FROM eventdocs_resources"):
            self._sql[name] = _Sql(name, numbered=counted)
        tables = self._rows("SELECT name FROM sqlite_master WHERE name GLOB 'view_*'")
        self._views.update(name.removeprefix("view_") for (name,) in tables)

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.queue.put(None)
            await asyncio.to_thread(writer.thread.join)
        for readers in (self._readers, self._quick):
            if readers is not None:
                await asyncio.to_thread(readers.close)
        self._readers = self._quick = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        owner, self._owner = self._owner, None
        if owner is not None:  # last: the file is closed when another may take it
            owner.release()

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

        def run(conn: sqlite3.Connection) -> None:
            upgrade_history(conn, r)  # first: the script indexes the new columns
            _run_script(script, conn)

        await self._call(run, after)

    async def resources(self) -> list[str]:
        return [name for (name,) in self._rows("SELECT name FROM eventdocs_resources ORDER BY 1")]

    # -- the log ------------------------------------------------------------------

    async def append(
        self,
        resource: str,
        drafts: Sequence[Draft],
        *,
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
        guards: Sequence[Guard] = (),
        tips: Sequence[Tip] = (),
    ) -> Appended:
        self._res(resource)
        if self._writer is None:
            raise StorageError("the store is not open")
        loop = asyncio.get_running_loop()
        job = _Append(loop, resource, list(drafts), idempotency_key, fingerprint, guards, tips)
        self._writer.queue.put(job)
        result: Appended = await job.future
        return result

    async def load(self, resource: str, events: Sequence[Event]) -> None:
        sql, writer = self._res(resource), self._writer

        def run(c: sqlite3.Connection) -> None:
            assert writer is not None
            writer.forget(resource)  # appends in this batch must see these events
            last = writer.tail(c, resource)[0]
            if [e.seq for e in events] != list(range(last + 1, last + 1 + len(events))):
                raise InvalidRequest(f"imported seqs must continue the log at {last + 1}")
            taking, ordinals = Taking(c, sql), Ordinals(c, sql)
            rows = [
                (e.seq, e.id, e.__struct_config__.tag, e.toa, e.recorded_at, taking.add(e),
                 encode_event(e).decode(), ordinals.add(e.id, e.seq))
                for e in events
            ]  # fmt: skip
            c.executemany(sql.insert_event, rows)

        await self._call(run, sync="FULL")

    async def load_stream(self, events: Iterable[Event]) -> dict[str, int]:
        # One writer call, so one transaction (see imports.py).
        writer, stop, created = self._writer, threading.Event(), set[str]()

        def run(c: sqlite3.Connection) -> dict[str, int]:
            assert writer is not None
            return load_log(c, writer, events, known=self._sql, created=created, stop=stop)

        def after() -> None:
            self._sql.update((r, _Sql(r)) for r in created)

        try:
            counts: dict[str, int] = await self._call(run, after, sync="FULL")
        except asyncio.CancelledError:
            stop.set()  # the writer rolls back at the next event
            raise
        return counts

    async def find_idempotent(
        self, resource: str, key: str, *, fingerprint: str | None = None
    ) -> list[Event] | None:
        sql = self._res(resource)
        rows = self._rows(
            "SELECT seqs, fingerprint FROM eventdocs_keys WHERE resource = ? AND key = ?",
            (resource, key),
        )
        if not rows:
            return None
        seqs, stored = rows[0]
        if None not in (fingerprint, stored) and stored != fingerprint:
            raise KeyReused()
        return self._events(sql.by_seqs + " ORDER BY seq", (seqs,))

    async def read_head(self, resource: str, id: str, *, after_toa: int) -> Head:
        sql = self._res(resource)
        head = self._rows(sql.head, (id,))
        if not head:
            return Head()
        return Head(head[0][0], self._rows(sql.next_write, (id, after_toa))[0][0])

    async def read_log(self, resource: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        return await self._read_events(self._res(resource).read_log, (after, limit), quick=True)

    async def read_log_by_document(
        self, resource: str, *, after: str = "", limit: int = 1000
    ) -> list[Event]:
        return await self._read_events(self._res(resource).by_document, (after, limit))

    async def read_event(self, resource: str, seq: int) -> Event | None:
        events = self._events(self._res(resource).read_event, (seq,))
        return events[0] if events else None

    async def read_document(self, resource: str, id: str) -> list[Event]:
        return await self._read_events(self._res(resource).read_document, (id,))

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
        return await self._read_events(self._res(resource).read_due, params, quick=True)

    async def count_due(
        self, resource: str, *, after_toa: int, until_toa: int, max_seq: int
    ) -> int:
        sql = self._res(resource).count_due
        count: int = (await self._read(sql, (after_toa, until_toa, max_seq)))[0][0]
        return count

    async def read_heads(
        self, resource: str, ids: Sequence[str], *, max_seq: int
    ) -> dict[str, tuple[int, int]]:
        rows = await self._read(self._res(resource).heads, (_json(list(ids)), max_seq), quick=True)
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
            return write_batch(c, sql, resource, batch, views)

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

    # -- reads bounded by the answer ------------------------------------------------

    async def read_revisions(
        self,
        resource: str,
        id: str,
        *,
        limit: int,
        offset: int = 0,
        after: tuple[int, int] | None = None,
    ) -> tuple[int, list[Event]]:
        sql = self._res(resource)
        total = (await self._read(sql.count_document, (id,)))[0][0]
        if after is None:
            return total, await self._read_events(sql.revisions, (id, limit, offset))
        return total, await self._read_events(sql.revisions_after, (id, limit, offset, *after))

    async def read_from(self, resource: str, id: str, *, toa: int, seq: int) -> list[Event]:
        return await self._read_events(self._res(resource).read_from, (id, toa, seq), quick=True)

    async def read_cancels(self, resource: str, targets: Sequence[int]) -> list[Event]:
        if not targets:
            return []
        return await self._read_events(
            self._res(resource).cancels, (_json(list(targets)),), quick=True
        )

    # -- scheduled writes ------------------------------------------------------------

    async def set_pending_limit(self, resource: str, limit: int | None) -> None:
        self._res(resource)
        if self._writer is not None:
            if limit is None:
                self._writer.pending_limits.pop(resource, None)
            else:
                self._writer.pending_limits[resource] = limit

    async def count_pending(self, resource: str, *, now: int) -> int:
        sql, writer = self._res(resource), self._writer
        if writer is None:  # read-only: no writer keeps the count
            count: int = (await self._read(sql.count_due, (now, MAX_TIME, 2**62)))[0][0]
            return count
        pending = writer.pending.get(resource)
        if pending is None:
            await self._call(lambda c: writer.pending_of(c, resource), sync=None)
            pending = writer.pending[resource]
        return pending.count(now)

    async def read_pending(
        self,
        resource: str,
        *,
        now: int,
        limit: int,
        offset: int = 0,
        after: tuple[int, int] | None = None,
    ) -> list[Event]:
        sql = self._res(resource)
        if after is None:
            return await self._read_events(sql.pending_page, (now, MAX_TIME, 2**62, limit, offset))
        since = max(now, after[0] - 1)  # the pending writes from the cursor's TOA on
        return await self._read_events(
            sql.pending_after, (since, MAX_TIME, 2**62, limit, offset, *after)
        )

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
            rows = await self._read(f'SELECT key, obj FROM "view_{view}"')
        else:
            rows = await self._read(
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

    # -- rebuild ------------------------------------------------------------------

    async def rebuild_projection(
        self,
        resource: str,
        *,
        now: int,
        progress: Callable[[int], None] | None = None,
        views: Sequence[View] = (),
    ) -> int | None:
        """Rebuild ``resource``'s history and master beside the live ones, then swap
        them in with ``views`` rebuilt (:mod:`.rebuild`); the events folded, or
        ``None`` where that cannot be done (an in-memory database: the generic
        replay does it)."""
        self._res(resource)
        if self._writer is None:
            raise StorageError("the store is not open")
        if self.path == ":memory:" or self.path.startswith("file:"):
            return None
        for view in views:
            await self.ensure_view(view.name)
        self.rebuild_timings: dict[str, float] = {}  # the last rebuild's, for benchmarks
        return await rebuild(
            self.path, resource, self._call, now=now, clock=self.clock.now,
            progress=progress, timings=self.rebuild_timings, views=views,
        )  # fmt: skip
