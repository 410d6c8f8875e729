"""The writer thread: owns the write connection and group-commits appends.

The writer drains every queued request, runs them in one transaction, commits
once with ``synchronous=FULL`` (one fsync for all of them) and then resolves
the callers' futures in one hop to their event loop. Projection writes share
that thread but commit with ``synchronous=NORMAL``: in WAL that skips the
fsync, and a projection lost to a power failure takes its checkpoint with it,
so the projector simply redoes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

from eventdocs.errors import KeyReused, LimitExceeded, Stale
from eventdocs.events import Draft, Event, decode_event, encode_event
from eventdocs.storage.contract import Appended, Guard, Tip
from eventdocs.storage.pending import Pending
from eventdocs.storage.sqlite.cancels import Taking
from eventdocs.storage.sqlite.checkpointer import Checkpointer
from eventdocs.storage.sqlite.ordinals import Heads, Ordinals
from eventdocs.storage.sqlite.projection import project_tips
from eventdocs.storage.sqlite.schema import (
    _MIN_TIME,
    _encode,
    _Sql,
    _storage_error,
)
from eventdocs.times import MAX_TIME, Clock


class _Job:
    """A request to the writer; ``result``/``error`` are set there, read on the loop."""

    __slots__ = ("error", "future", "loop", "result")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.result: Any = None
        self.error: BaseException | None = None


class _Append(_Job):
    __slots__ = ("drafts", "fingerprint", "guards", "key", "resource", "tips")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        resource: str,
        drafts: list[Draft],
        key: str | None,
        fingerprint: str | None,
        guards: Sequence[Guard],
        tips: Sequence[Tip] = (),
    ) -> None:
        super().__init__(loop)
        self.resource, self.drafts, self.key = resource, drafts, key
        self.fingerprint, self.guards, self.tips = fingerprint, guards, tips


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


def holds(guard: Guard, recorded: int, heads: Ordinals) -> bool:
    """Whether ``guard`` still holds for an append recorded at ``recorded``."""
    if guard.before is not None and recorded >= guard.before:
        return False
    return heads.head(guard.id) == guard.head


def _settle(jobs: list[_Job]) -> None:
    for job in jobs:
        if not job.future.done():
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.result)


class _Writer:
    """Owns the write connection; commits every drained batch at once."""

    def __init__(self, path: str, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        # WAL checkpoints beside this thread instead of in its commits (a file only).
        self.checkpointer = None if path == ":memory:" else Checkpointer(path)
        self.statements: dict[str, _Sql] = {}
        self.queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.commits = 0
        self.tails: dict[str, tuple[int, int]] = {}  # resource -> (last seq, last recorded_at)
        self.inserts: dict[tuple[str, int], str] = {}
        self.pending: dict[str, Pending] = {}  # built on first use per resource
        self.heads = Heads()  # the latest event of documents written lately
        self.written: dict[str, dict[str, tuple[int, int]]] = {}  # this batch's, until commit
        self.pending_limits: dict[str, int] = {}
        self.sync = ""
        self.conn: sqlite3.Connection | None = None
        # A daemon: a store never closed must not hang the exit; unacknowledged is not lost.
        self.thread = threading.Thread(
            target=self.main, name="eventdocs-sqlite-writer", daemon=True
        )

    def main(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.start()
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
        if self.checkpointer is not None:
            self.checkpointer.stop()

    def process(self, batch: list[_Job]) -> None:
        conn = self.conn
        try:
            if conn is None:  # the first job opens the connection in this thread
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, cached_statements=512
                )
                # A larger WAL between checkpoints copies a page rewritten by many commits
                # once; with a checkpointer, no commit checkpoints (.checkpointer).
                pages = 0 if self.checkpointer is not None else 10000
                conn.executescript(
                    "PRAGMA journal_mode=WAL; PRAGMA cache_size=-65536;"
                    f" PRAGMA wal_autocheckpoint={pages};"
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
            if self.checkpointer is not None:
                self.checkpointer.committed()
        except Exception as exc:
            self.tails.clear()
            self.written.clear()
            self.pending.clear()  # it may hold appends rolled back: rebuilt on next use
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
            for r, last in self.written.items():
                self.heads.commit(r, last)
            self.written.clear()
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
        """Decide and insert every append; no commit.

        An append whose idempotency key is known replays (or fails with
        ``KeyReused``); one whose guards fail is ``Stale``. Either appends
        nothing and leaves the others of the batch as they are. ``recorded_at``
        is read from the clock here, when the append is written, so it never
        precedes a projection step this thread wrote before it.
        """
        tails: dict[str, tuple[int, int]] = {}
        starts: dict[str, int] = {}  # per resource, the last seq before this group
        tipped: dict[str, list[tuple[_Append, list[Event]]]] = {}
        untipped: set[str] = set()  # an append without tips: the projector takes them
        rows: dict[str, list[Any]] = {}
        keys: list[tuple[str, str, str, str | None]] = []
        seen: dict[tuple[str, str], tuple[list[Event], str | None]] = {}
        heads: dict[str, Ordinals] = {}  # per resource, each document's latest event
        taking: dict[str, Taking] = {}  # per resource, what this batch's cancels take
        wanted: dict[str, list[str]] = {}  # one read of the documents' heads per resource
        for job in appends:
            ids = wanted.setdefault(job.resource, [])
            ids += [d.id for d in job.drafts] + [g.id for g in job.guards]
        for r, ids in wanted.items():
            heads[r] = Ordinals(conn, self.sql(r), self.heads, r)
            heads[r].prefetch(ids)
            self.written[r] = heads[r].last  # committed with the batch, or dropped
        for job in appends:
            r = job.resource
            if job.key is not None:
                hit = seen.get((r, job.key)) or self.replay(conn, r, job.key)
                if hit is not None:
                    events, fingerprint = hit
                    if (
                        None not in (fingerprint, job.fingerprint)
                        and fingerprint != job.fingerprint
                    ):
                        job.error = KeyReused()
                    else:
                        job.result = Appended(events, replayed=True)
                    continue
            seq, last = tails.get(r) or self.tails.get(r) or self.tail(conn, r)
            now = self.clock.now()
            recorded = now if now > last else last
            ordinals = heads.get(r) or heads.setdefault(r, Ordinals(conn, self.sql(r)))
            if not all(holds(g, recorded, ordinals) for g in job.guards):
                job.error = Stale(f"{r}: a document changed since the write was decided")
                continue
            limit = self.pending_limits.get(r)
            scheduled = sum(1 for d in job.drafts if d.toa is not None and d.toa > recorded)
            if (
                limit is not None
                and scheduled
                and self.pending_of(conn, r).count(recorded) + scheduled > limit
            ):
                job.error = LimitExceeded(
                    f"{r} already has {limit} scheduled writes pending", "pending_per_resource"
                )
                continue
            events = []
            took_here: list[int | None] = []
            starts.setdefault(r, seq)
            out = rows.get(r) or rows.setdefault(r, [])
            for d in job.drafts:
                seq += 1
                e = d.record(r, seq, recorded)
                events.append(e)
                n = ordinals.add(d.id, seq)
                target = (taking.get(r) or taking.setdefault(r, Taking(conn, self.sql(r)))).add(e)
                took_here.append(target)
                out += (seq, d.id, d.action, e.toa, recorded, target, encode_event(e).decode(), n)
            tails[r] = (seq, recorded)
            if r in self.pending:
                for e, target in zip(events, took_here, strict=True):
                    self.pending[r].add(e, target)
            if job.key is not None:
                seen[(r, job.key)] = (events, job.fingerprint)
                keys.append(
                    (r, job.key, _encode([e.seq for e in events]).decode(), job.fingerprint)
                )
            job.result = Appended(events)
            if len(job.tips) == len(events):
                tipped.setdefault(r, []).append((job, events))
            else:
                untipped.add(r)
        for r, params in rows.items():
            # One multi-row INSERT per chunk: one step, one GIL release, not one per row.
            for i in range(0, len(params), 8 * 500):
                chunk = params[i : i + 8 * 500]
                conn.execute(self.insert(r, len(chunk) // 8), chunk)
        if keys:
            conn.executemany("INSERT INTO eventdocs_keys VALUES (?, ?, ?, ?)", keys)
        for r, jobs in tipped.items():
            pairs = [(tip, e) for job, evs in jobs for tip, e in zip(job.tips, evs, strict=True)]
            if r not in untipped and project_tips(conn, self.sql(r), r, starts[r], pairs):
                for job, events in jobs:
                    job.result = Appended(events, projected=True)
        return tails

    def forget(self, resource: str) -> None:
        """Events were written to ``resource``'s log beside the appends (a load, an
        import): what this thread remembers of it (tail, pending, heads) is read anew."""
        self.tails.pop(resource, None)
        self.pending.pop(resource, None)
        self.heads.forget(resource)

    def pending_of(self, conn: sqlite3.Connection, resource: str) -> Pending:
        """The pending writes of ``resource``, read from the log the first time."""
        pending = self.pending.get(resource)
        if pending is None:
            now = self.clock.now()
            rows = conn.execute(self.sql(resource).pending, (now, MAX_TIME, 2**62)).fetchall()
            pending = self.pending[resource] = Pending(rows)
        return pending

    def sql(self, resource: str) -> _Sql:
        sql = self.statements.get(resource)
        if sql is None:
            sql = self.statements[resource] = _Sql(resource)
        return sql

    def insert(self, resource: str, n: int) -> str:
        sql = self.inserts.get((resource, n))
        if sql is None:
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * n)
            sql = self.inserts[(resource, n)] = (
                f'INSERT INTO "{resource}_revisions" VALUES {values}'
            )
        return sql

    def tail(self, conn: sqlite3.Connection, resource: str) -> tuple[int, int]:
        row = conn.execute(self.sql(resource).tail).fetchone()
        return (row[0], row[1]) if row else (0, _MIN_TIME)

    def replay(
        self, conn: sqlite3.Connection, resource: str, key: str
    ) -> tuple[list[Event], str | None] | None:
        found = conn.execute(
            "SELECT seqs, fingerprint FROM eventdocs_keys WHERE resource = ? AND key = ?",
            (resource, key),
        ).fetchone()
        if found is None:
            return None
        data = conn.execute(self.sql(resource).by_seqs + " ORDER BY seq", found[:1]).fetchall()
        return [decode_event(d) for (d,) in data], found[1]
