"""Time travel reads: ``get`` as of a time against history depth, and a query as of a time.

Both go through the document API (:class:`eventdocs.documents.Documents`),
as the HTTP layer does. Their limits are the same reads without time travel:
``get`` of the master row, and the same query on the master collection.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

import msgspec

from eventdocs.bench.append import open_bench_store
from eventdocs.bench.data import RESOURCE, TAGS, batches, item_spec
from eventdocs.bench.measure import summary
from eventdocs.events import Draft
from eventdocs.projections.replay import replay
from eventdocs.query import Filter, Query, SortKey
from eventdocs.service import Service
from eventdocs.storage import EventStore
from eventdocs.times import ManualClock

__all__ = ["AsOfRun", "QueryRun", "asof_run", "query_run"]

_SECOND = 1_000_000
_T0 = 1_600_000_000_000_000


class AsOfRun(msgspec.Struct, frozen=True):
    """Latency in µs of ``get(as_of=…)`` per history depth, and of the master ``get``."""

    depths: list[int]
    asof: dict[int, dict[str, float]]
    master: dict[int, dict[str, float]]

    @property
    def ratio(self) -> float:
        """p50 at the deepest history over p50 at the shallowest."""
        return self.asof[max(self.depths)]["p50"] / self.asof[min(self.depths)]["p50"]


class QueryRun(msgspec.Struct, frozen=True):
    """Latency in µs of one query on the master and as of a time, over ``documents``."""

    documents: int
    history_rows: int
    query: str
    master: dict[str, float]
    asof: dict[str, float]
    total_master: int
    total_asof: int

    @property
    def ratio(self) -> float:
        return self.asof["p50"] / self.master["p50"]


def _service(store: EventStore, clock: ManualClock) -> Service:
    return Service(store, [item_spec()], clock=clock, background=False)


async def asof_run(
    url: str, depths: Sequence[int], *, samples: int = 1000, seed: int = 3
) -> AsOfRun:
    """For each depth, one document with that many revisions a second apart; read it
    as of uniformly random times in its life, and now."""
    rng = random.Random(seed)
    clock = ManualClock(_T0 + (max(depths) + 10) * _SECOND)
    store = await open_bench_store(url)
    service = _service(store, clock)
    asof: dict[int, dict[str, float]] = {}
    master: dict[int, dict[str, float]] = {}
    try:
        for depth in depths:
            doc_id = f"deep{depth:06d}"
            drafts = [
                Draft(action="create", id=doc_id, body={"title": doc_id, "n": 0}, toa=_T0),
                *(
                    Draft(action="update", id=doc_id, body={"n": k}, toa=_T0 + k * _SECOND)
                    for k in range(1, depth)
                ),
            ]
            for call in batches(drafts, 1000):
                await store.append(RESOURCE, call)
        await replay(store, RESOURCE, now=clock.now())
        await service.start()
        docs = service.documents(RESOURCE)
        for depth in depths:
            doc_id = f"deep{depth:06d}"
            times = [_T0 + rng.randrange(depth * _SECOND) for _ in range(samples)]
            asof_us, master_us = [], []
            for when in times:
                start = time.perf_counter()
                await docs.get(doc_id, as_of=when)
                asof_us.append((time.perf_counter() - start) * 1e6)
            for _ in range(samples):
                start = time.perf_counter()
                await docs.get(doc_id)
                master_us.append((time.perf_counter() - start) * 1e6)
            asof[depth], master[depth] = summary(asof_us), summary(master_us)
    finally:
        await service.stop()
    return AsOfRun(list(depths), asof, master)


async def query_run(
    url: str, documents: int, revisions: int, *, samples: int = 50, seed: int = 5
) -> QueryRun:
    """Query ``documents`` documents of ``revisions`` revisions each (a second apart per
    round), on the master and as of the middle of their history."""
    rng = random.Random(seed)
    clock = ManualClock(_T0 + (revisions + 1) * 10_000 * _SECOND)
    store = await open_bench_store(url)
    service = _service(store, clock)
    ids = [f"doc{i:09d}" for i in range(documents)]
    round_gap = 10_000 * _SECOND  # rounds of writes far apart: "as of" lands between them
    try:
        for r in range(revisions):
            drafts = (
                Draft(
                    action="create" if r == 0 else "update",
                    id=doc_id,
                    body={"n": rng.randrange(1_000_000)}
                    | ({"title": doc_id, "tag": TAGS[i % len(TAGS)]} if r == 0 else {}),
                    toa=_T0 + r * round_gap + i,
                )
                for i, doc_id in enumerate(ids)
            )
            for call in batches(drafts, 5000):
                await store.append(RESOURCE, call)
        await replay(store, RESOURCE, now=clock.now())
        await service.start()
        docs = service.documents(RESOURCE)
        query = Query(
            filters=(Filter("tag", "equal", TAGS[3], "text"),),
            sort=(SortKey("n", descending=True, kind="integer"),),
            limit=50,
        )
        middle = _T0 + (revisions // 2) * round_gap - 1
        master_us, asof_us = [], []
        total_master = total_asof = 0
        for _ in range(samples):
            start = time.perf_counter()
            total_master = (await docs.query(query)).total
            master_us.append((time.perf_counter() - start) * 1e6)
            start = time.perf_counter()
            total_asof = (await docs.query(query, as_of=middle)).total
            asof_us.append((time.perf_counter() - start) * 1e6)
    finally:
        await service.stop()
    return QueryRun(
        documents,
        documents * revisions,
        "tag = t3, sort n desc, limit 50, with total",
        summary(master_us),
        summary(asof_us),
        total_master,
        total_asof,
    )
