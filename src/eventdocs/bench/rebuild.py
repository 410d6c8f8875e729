"""Append a workload in batches, then rebuild its projections with ``replay``.

This is the workload the eventsourcing peer runs too. The rebuild folds every
document's events and writes its history rows and master row; its limit is
reading and decoding the same log rows, in the same ``(id, seq)`` order,
with raw ``sqlite3`` and :func:`eventdocs.events.decode_event`. Its floor is
SQLite's own work: writing the same folded rows and creating the same
indexes, in one thread, with nothing read or folded meanwhile
(:func:`write_floor_rate`): no rebuild into these tables can be faster.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from eventdocs.bench.append import open_bench_store, raw_insert_rate, remove_sqlite
from eventdocs.bench.data import RESOURCE, Workload, batches, log_rows
from eventdocs.bench.measure import Timer, rate
from eventdocs.events import Draft, decode_event
from eventdocs.projections.replay import replay
from eventdocs.storage.sqlite.rebuild import RebuildPlan, read_folded
from eventdocs.times import SystemClock

__all__ = [
    "WorkloadRun",
    "raw_read_rate",
    "rebuild_only",
    "workload_limits",
    "workload_run",
    "write_floor_rate",
]


class WorkloadRun(msgspec.Struct, frozen=True):
    """Seconds to append ``events`` in calls of ``batch``, and to rebuild them."""

    events: int
    documents: int
    batch: int
    append_seconds: float
    rebuild_seconds: float
    rebuild_again_seconds: float | None = None
    phases: dict[str, float] = {}  # where the first rebuild's time went (SQLite)

    @property
    def append_rate(self) -> float:
        return rate(self.events, self.append_seconds)

    @property
    def rebuild_rate(self) -> float:
        return rate(self.events, self.rebuild_seconds)


async def rebuild_only(url: str, workload: Workload) -> WorkloadRun:
    """Load ``workload``'s events as recorded (no append path), then time one rebuild."""
    from eventdocs.bench.data import recorded

    store = await open_bench_store(url)
    try:
        await store.load_stream(recorded(workload, recorded_at=SystemClock().now()))
        with Timer() as rebuilding:
            count = await replay(store, RESOURCE, now=SystemClock().now())
        assert count == workload.events, (count, workload.events)
        phases = dict(getattr(store, "rebuild_timings", {}))
    finally:
        await store.close()
    return WorkloadRun(
        workload.events, workload.documents, 0, 0.0, rebuilding.seconds, None, phases
    )


async def workload_run(
    url: str,
    workload: Workload,
    *,
    batch: int,
    again: bool = False,
    progress: Callable[[int], None] | None = None,
) -> WorkloadRun:
    """Append ``workload`` in calls of ``batch`` events (one writer), then replay it.

    ``again`` replays a second time over the projection the first one wrote
    (what ``eventdocs replay`` does on a live store: empty it, then rebuild).
    """
    drafts = list(workload.drafts())
    calls: list[list[Draft]] = list(batches(drafts, batch))
    store = await open_bench_store(url)
    try:
        with Timer() as appending:
            for call in calls:
                await store.append(RESOURCE, call)
        with Timer() as rebuilding:
            count = await replay(store, RESOURCE, now=SystemClock().now(), progress=progress)
        assert count == workload.events, (count, workload.events)
        phases = dict(getattr(store, "rebuild_timings", {}))
        seconds_again = None
        if again:
            with Timer() as t:
                await replay(store, RESOURCE, now=SystemClock().now())
            seconds_again = t.seconds
    finally:
        await store.close()
    return WorkloadRun(
        workload.events,
        workload.documents,
        batch,
        appending.seconds,
        rebuilding.seconds,
        seconds_again,
        phases,
    )


def raw_read_rate(path: Path) -> float:
    """Events/s reading the log's JSON in ``(id, seq)`` order and decoding each."""
    conn = sqlite3.connect(path)
    try:
        with Timer() as t:
            count = 0
            cursor = conn.execute(f'SELECT data FROM "{RESOURCE}_revisions" ORDER BY id, seq')
            while rows := cursor.fetchmany(5000):
                for (data,) in rows:
                    decode_event(data)
                count += len(rows)
    finally:
        conn.close()
    return rate(count, t.seconds)


def workload_limits(directory: Path, workload: Workload, batch: int, db: Path) -> dict[str, float]:
    """Raw limits of the workload: insert in commits of ``batch``; read+decode ``db``;
    SQLite's floor for writing ``db``'s rebuild."""
    rows = log_rows(workload, recorded_at=SystemClock().now())
    return {
        "insert": raw_insert_rate(directory / "raw_workload.db", rows, batch),
        "read_decode": raw_read_rate(db),
        "write_floor": write_floor_rate(db, directory),
    }


def write_floor_rate(db: Path, directory: Path) -> float:
    """Events/s of SQLite writing ``db``'s rebuild and nothing else.

    The log of ``db`` is read and folded into the rebuild's chunks first (not
    timed); then, timed, one thread writes them into an empty store of the
    same schema as the rebuild does (fresh tables, a commit per chunk, the
    swap creating every index), without fsync or WAL checkpoints. The rebuild
    does this work and more (reading, folding, syncing), so this rate bounds
    it from above on the same machine.
    """
    path = directory / "write_floor.db"
    asyncio.run(_empty_store(path))
    now = SystemClock().now()
    source = sqlite3.connect(db)
    try:
        plan = RebuildPlan(source, RESOURCE)
        (max_seq,) = source.execute(f"SELECT max(seq) FROM {plan.log}").fetchone()
    finally:
        source.close()
    chunks: queue.Queue[Any] = queue.Queue()
    read_folded(str(db), plan, max_seq=max_seq, now=now, out=chunks, stop=threading.Event())
    folded = []
    while (item := chunks.get_nowait()) is not None:
        if isinstance(item, BaseException):
            raise item
        folded.append(item)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.executescript(
            "PRAGMA journal_mode=WAL; PRAGMA cache_size=-65536; PRAGMA synchronous=OFF;"
            " PRAGMA wal_autocheckpoint=0;"
        )
        with Timer() as t:
            conn.execute("BEGIN IMMEDIATE")
            plan.start(conn)
            conn.execute("COMMIT")
            for chunk in folded:
                conn.execute("BEGIN IMMEDIATE")
                plan.write(conn, chunk)
                conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            plan.swap(conn, max_seq=max_seq, now=now, clock=lambda: now)
            conn.execute("COMMIT")
    finally:
        conn.close()
        remove_sqlite(path)
    return rate(sum(chunk.events for chunk in folded), t.seconds)


async def _empty_store(path: Path) -> None:
    store = await open_bench_store(str(path))
    await store.close()
