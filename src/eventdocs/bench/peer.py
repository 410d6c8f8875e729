"""The peer: the same workload on the ``eventsourcing`` library's SQLite persistence.

Plain aggregates (an ``Item`` created with a body, then updated with a
change), an ``Application`` with ``PERSISTENCE_MODULE=eventsourcing.sqlite``
on a temporary file (WAL; its connections keep SQLite's default
``synchronous=FULL``, checked and recorded). Appending saves the aggregates
touched by each batch of events in one ``save`` (one transaction), as
eventdocs appends each batch in one call. Replaying is done both ways the
library offers, and the faster one is the peer's figure: reading the
application's notification log in order and mutating aggregates in memory,
and ``repository.get`` of every aggregate.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import msgspec
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from eventdocs.bench.append import remove_sqlite
from eventdocs.bench.data import Workload, batches
from eventdocs.bench.measure import Timer, rate

__all__ = ["PeerRun", "peer_run"]


class Item(Aggregate):
    """The eventsourcing twin of the benchmark document."""

    @event("Created")
    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = dict(fields)

    @event("Updated")
    def update(self, fields: dict[str, Any]) -> None:
        self.fields.update(fields)


class PeerRun(msgspec.Struct, frozen=True):
    """Seconds eventsourcing took to append ``events`` in saves of ``batch``, and replay."""

    events: int
    batch: int
    append_seconds: float
    replay_seconds: float
    replay_method: str
    synchronous: int
    replay_seconds_by_method: dict[str, float] = {}

    @property
    def append_rate(self) -> float:
        return rate(self.events, self.append_seconds)

    @property
    def replay_rate(self) -> float:
        return rate(self.events, self.replay_seconds)


def _application(path: Path) -> Application[uuid.UUID]:
    remove_sqlite(path)
    return Application(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": os.fspath(path)}
    )


def _synchronous(app: Application[uuid.UUID]) -> int:
    datastore = app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA synchronous")
        value: int = cursor.fetchone()[0]
    return value


def _replay_notifications(app: Application[uuid.UUID]) -> int:
    aggregates: dict[uuid.UUID, Any] = {}
    start, count = 1, 0
    while notifications := app.recorder.select_notifications(start=start, limit=1000):
        for notification in notifications:
            domain_event = app.mapper.to_domain_event(notification)
            aggregates[domain_event.originator_id] = domain_event.mutate(  # type: ignore[attr-defined]
                aggregates.get(domain_event.originator_id)
            )
        count += len(notifications)
        start = notifications[-1].id + 1
    return count


def _replay_repository(app: Application[uuid.UUID], ids: list[uuid.UUID]) -> int:
    return sum(app.repository.get(i).version for i in ids)


def peer_run(path: Path, workload: Workload, *, batch: int, both: bool = True) -> PeerRun:
    """Append ``workload`` in saves of ``batch`` events, then replay it both ways."""
    bodies = list(workload.bodies())
    app = _application(path)
    try:
        aggregates: dict[str, Item] = {}
        with Timer() as appending:
            for call in batches(bodies, batch):
                touched: dict[str, Item] = {}
                for action, doc_id, body in call:
                    if action == "create":
                        aggregates[doc_id] = Item(body)
                    else:
                        aggregates[doc_id].update(body)
                    touched[doc_id] = aggregates[doc_id]
                app.save(*touched.values())
        ids = [a.id for a in aggregates.values()]
        aggregates.clear()
        seconds: dict[str, float] = {}
        with Timer() as t:
            replayed = _replay_notifications(app)
        assert replayed == workload.events, (replayed, workload.events)
        seconds["notification log"] = t.seconds
        if both:
            with Timer() as t:
                _replay_repository(app, ids)
            seconds["repository.get"] = t.seconds
        sync = _synchronous(app)
    finally:
        app.close()
    method = min(seconds, key=lambda m: seconds[m])
    return PeerRun(
        workload.events, batch, appending.seconds, seconds[method], method, sync, seconds
    )
