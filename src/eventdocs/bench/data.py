"""The one data generator every benchmark shares: documents, their changes, their events.

A :class:`Workload` is ``documents`` documents with ``revisions`` events each
(a create, then updates), generated deterministically from a seed, so that
eventdocs, the raw SQLite limits and the eventsourcing peer see the same
bodies in the same order: round 0 creates every document, round ``r``
updates every document once (interleaved, like real traffic).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from eventdocs.events import Action, Draft, Event, encode_event
from eventdocs.fields import Enumeration, Float, Integer, Text
from eventdocs.resources import Resource, ResourceSpec

__all__ = [
    "RESOURCE",
    "TAGS",
    "Item",
    "Workload",
    "batches",
    "log_rows",
    "raw_log_schema",
]

RESOURCE = "item"
TAGS = tuple(f"t{i}" for i in range(10))
_WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")


class Item(Resource):
    """The benchmark resource: a small document with an indexed number and tag."""

    name = RESOURCE
    version = 1

    class schema:
        title = Text(required=True, operators=["equal", "prefix"], sortable=True)
        n = Integer(operators=["equal", "gt", "gte", "lt", "lte"], sortable=True)
        tag = Enumeration(TAGS, operators=["equal", "in"])
        price = Float()
        body = Text()


def item_spec() -> ResourceSpec:
    """The compiled benchmark resource."""
    return Item.spec()


@dataclass(frozen=True)
class Workload:
    """``documents`` documents of ``revisions`` events each, from ``seed``."""

    documents: int
    revisions: int = 10
    seed: int = 7

    @property
    def events(self) -> int:
        return self.documents * self.revisions

    def ids(self) -> list[str]:
        """Fixed-width ids, so id order is creation order in every backend."""
        return [f"doc{i:09d}" for i in range(self.documents)]

    def bodies(self) -> Iterator[tuple[Action, str, dict[str, Any]]]:
        """``(action, id, body)`` of every event in append order."""
        rng = random.Random(self.seed)
        ids = self.ids()
        for i, doc_id in enumerate(ids):
            yield (
                "create",
                doc_id,
                {
                    "title": f"item {i}",
                    "n": rng.randrange(1_000_000),
                    "tag": TAGS[i % len(TAGS)],
                    "price": round(rng.uniform(1, 1000), 2),
                    "body": " ".join(rng.choices(_WORDS, k=12)),
                },
            )
        for _ in range(1, self.revisions):
            for doc_id in ids:
                yield (
                    "update",
                    doc_id,
                    {
                        "n": rng.randrange(1_000_000),
                        "price": round(rng.uniform(1, 1000), 2),
                    },
                )

    def drafts(self, *, start_toa: int | None = None, step: int = 0) -> Iterator[Draft]:
        """The events as drafts; with ``start_toa`` each gets its own TOA ``step`` apart."""
        for k, (action, doc_id, body) in enumerate(self.bodies()):
            toa = None if start_toa is None else start_toa + k * step
            yield Draft(action=action, id=doc_id, body=body, toa=toa)


def batches(items: Iterator[Any] | list[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def recorded(workload: Workload, *, recorded_at: int) -> Iterator[Event]:
    """The workload's events as a store would record them (seq from 1)."""
    for seq, draft in enumerate(workload.drafts(), 1):
        yield draft.record(RESOURCE, seq, recorded_at)


def log_rows(workload: Workload, *, recorded_at: int) -> list[tuple[Any, ...]]:
    """The rows of the workload in the SQLite log's column order, JSON encoded."""
    return [
        (e.seq, e.id, e.action, e.toa, e.recorded_at, None, encode_event(e).decode())
        for e in recorded(workload, recorded_at=recorded_at)
    ]


def raw_log_schema(table: str) -> list[str]:
    """A table shaped and indexed like the SQLite store's log, for the raw limits."""
    return [
        f'CREATE TABLE "{table}" (seq INTEGER PRIMARY KEY, id TEXT NOT NULL,'
        " action TEXT NOT NULL, toa INTEGER NOT NULL, recorded_at INTEGER NOT NULL,"
        " target INTEGER, data TEXT NOT NULL)",
        f'CREATE INDEX "{table}_id" ON "{table}" (id)',
        f'CREATE INDEX "{table}_toa" ON "{table}" (toa, seq)',
        f'CREATE INDEX "{table}_target" ON "{table}" (target) WHERE target IS NOT NULL',
    ]
