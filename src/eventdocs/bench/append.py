"""Durable append: many writers appending batches, against raw ``executemany``.

Each writer awaits ``store.append`` of ``batch`` creates, ``rounds`` times;
every call returns only once its events are fsynced. The limits are raw
``sqlite3`` inserts of the same JSON rows into a table shaped like the log,
with ``synchronous=FULL``: committed ``writers * batch`` rows at a time (what
perfect group commit could do: one fsync per round of every writer) and all
in one transaction (the insert rate with a single fsync).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from eventdocs.bench.data import RESOURCE, Workload, batches, item_spec, log_rows, raw_log_schema
from eventdocs.bench.measure import Timer, rate
from eventdocs.events import Draft
from eventdocs.storage import EventStore, open_store
from eventdocs.times import SystemClock

__all__ = ["AppendRun", "append_run", "raw_insert_rate", "remove_sqlite", "store_url"]


class AppendRun(msgspec.Struct, frozen=True):
    """``events`` appended by ``writers`` in calls of ``batch`` in ``seconds``."""

    writers: int
    batch: int
    events: int
    seconds: float
    commits: int | None

    @property
    def rate(self) -> float:
        return rate(self.events, self.seconds)

    @property
    def per_commit(self) -> float | None:
        return self.events / self.commits if self.commits else None


def store_url(backend: str, directory: Path, name: str) -> str:
    """The store URL of ``backend`` (``sqlite``, ``memory`` or a ``mongodb://`` URL)."""
    if backend == "sqlite":
        return str(directory / f"{name}.db")
    if backend == "memory":
        return "memory:"
    if backend.startswith(("mongodb://", "mongodb+srv://")):
        return f"{backend.rstrip('/')}/eventdocs_bench_{name}"
    raise ValueError(f"unknown backend {backend!r}: sqlite, memory or a mongodb:// URL")


async def open_bench_store(url: str) -> EventStore:
    """A fresh, opened store with the benchmark resource."""
    store = open_store(url, clock=SystemClock())
    await store.open()
    await store.ensure_resource(RESOURCE, item_spec().indexes())
    return store


def writer_drafts(writers: int, batch: int, rounds: int) -> list[list[list[Draft]]]:
    """Per writer, its ``rounds`` batches of creates (distinct documents)."""
    workload = Workload(documents=writers * batch * rounds, revisions=1)
    calls = list(batches(workload.drafts(), batch))
    return [calls[w::writers] for w in range(writers)]


async def append_run(url: str, *, writers: int, batch: int, rounds: int) -> AppendRun:
    """Append ``writers * batch * rounds`` events concurrently into a fresh store."""
    plan = writer_drafts(writers, batch, rounds)
    store = await open_bench_store(url)
    try:

        async def writer(calls: Sequence[list[Draft]]) -> None:
            for drafts in calls:
                await store.append(RESOURCE, drafts)

        before = getattr(store, "commits", None)
        with Timer() as t:
            await asyncio.gather(*(writer(calls) for calls in plan))
        after = getattr(store, "commits", None)
        commits = after - before if isinstance(after, int) and isinstance(before, int) else None
    finally:
        await store.close()
    return AppendRun(writers, batch, writers * batch * rounds, t.seconds, commits)


def _raw_db(path: Path, table: str) -> sqlite3.Connection:
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    for statement in raw_log_schema(table):
        conn.execute(statement)
    return conn


def raw_insert_rate(path: Path, rows: Sequence[tuple[Any, ...]], commit_size: int) -> float:
    """Rows/s of ``executemany`` committing ``commit_size`` rows at a time, fsync each."""
    conn = _raw_db(path, "raw_revisions")
    sql = "INSERT INTO raw_revisions VALUES (?, ?, ?, ?, ?, ?, ?)"
    try:
        with Timer() as t:
            for start in range(0, len(rows), commit_size):
                conn.execute("BEGIN")
                conn.executemany(sql, rows[start : start + commit_size])
                conn.execute("COMMIT")
    finally:
        conn.close()
        remove_sqlite(path)
    return rate(len(rows), t.seconds)


def remove_sqlite(path: Path) -> None:
    """Delete a SQLite file and the files beside it (WAL, shared memory, owner)."""
    for suffix in ("", "-wal", "-shm", "-owner"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def append_limits(directory: Path, run: AppendRun) -> dict[str, float]:
    """The raw limits of ``run``'s rows: per group-commit round, and in one transaction."""
    rows = log_rows(Workload(documents=run.events, revisions=1), recorded_at=SystemClock().now())
    path = directory / "raw_append.db"
    trials = 3 if len(rows) <= 50_000 else 1  # a ceiling: the best of a few, when cheap
    return {
        "grouped": max(raw_insert_rate(path, rows, run.writers * run.batch) for _ in range(trials)),
        "bulk": max(raw_insert_rate(path, rows, len(rows)) for _ in range(trials)),
    }
