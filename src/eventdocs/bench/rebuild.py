"""Append a workload in batches, then rebuild its projections with ``replay``.

This is the workload the eventsourcing peer runs too. The rebuild folds every
document's events and writes its history rows and master row; its limit is
reading and decoding the same log rows, in the same ``(id, seq)`` order,
with raw ``sqlite3`` and :func:`eventdocs.events.decode_event`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import msgspec

from eventdocs.bench.append import open_bench_store, raw_insert_rate
from eventdocs.bench.data import RESOURCE, Workload, batches, log_rows
from eventdocs.bench.measure import Timer, rate
from eventdocs.events import Draft, decode_event
from eventdocs.projections.replay import replay
from eventdocs.times import SystemClock

__all__ = [
    "WorkloadRun",
    "raw_read_rate",
    "rebuild_only",
    "workload_limits",
    "workload_run",
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
    """Raw limits of the workload: insert in commits of ``batch``; read+decode ``db``."""
    rows = log_rows(workload, recorded_at=SystemClock().now())
    return {
        "insert": raw_insert_rate(directory / "raw_workload.db", rows, batch),
        "read_decode": raw_read_rate(db),
    }
