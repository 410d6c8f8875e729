"""Writers racing on the same documents: every answer is the truth (SPEC section 8).

Hypothesis draws a few documents and a batch of writes (creates with client
ids, updates and deletes with or without ``If-Match``, bulk updates,
reverts, scheduled writes) that all start at once on one store, memory or a
SQLite file, so their decisions and appends interleave in the writer; and on
two MongoDB stores on one database, as two processes would. After
the batch: each write that raised appended nothing, each that answered is
one event that the fold applies (a scheduled ``If-Match`` may fail at its
TOA, and only by it), the log holds exactly the answered events, and
``verify`` finds every projection equal to the fold.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventdocs.documents import BulkTarget, Documents, WriteResult
from eventdocs.errors import EventdocsError
from eventdocs.events import Event
from eventdocs.fields import Integer, Text
from eventdocs.fold import PRECONDITION, fold
from eventdocs.projections.replay import verify
from eventdocs.resources import Resource
from eventdocs.service import Service
from eventdocs.storage import open_store
from eventdocs.times import ManualClock
from mongotest import needs_server

SECOND = 1_000_000


class Note(Resource):
    name = "note"
    version = 1

    class schema:
        id = Text(required=True, nonnull=True)
        title = Text()
        n = Integer()


IDS = st.sampled_from(["a", "b", "c"])
MATCH = st.none() | st.integers(1, 3)
LATER = st.none() | st.just(5 * SECOND)
WRITES = st.one_of(
    st.tuples(st.just("create"), IDS, st.integers(0, 9), LATER, st.none()),
    st.tuples(st.just("update"), IDS, st.integers(0, 9), LATER, MATCH),
    st.tuples(st.just("delete"), IDS, st.just(0), LATER, MATCH),
    st.tuples(st.just("bulk"), IDS, st.integers(0, 9), LATER, MATCH),
    st.tuples(st.just("revert"), IDS, st.integers(1, 3), st.none(), MATCH),
)


async def write(docs: Documents, op: tuple[str, str, int, int | None, int | None], now: int) -> Any:
    kind, doc, n, later, match = op
    toa = None if later is None else now + later
    if kind == "create":
        return await docs.create({"id": doc, "n": n}, toa=toa)
    if kind == "update":
        return await docs.update(doc, {"n": n}, toa=toa, if_match=match)
    if kind == "delete":
        return await docs.delete(doc, toa=toa, if_match=match)
    if kind == "revert":
        return await docs.revert(doc, to_revision=n, if_match=match)
    items = await docs.bulk("update", [BulkTarget(doc, match), BulkTarget("c")], {"n": n}, toa=toa)
    return [i.result if i.result is not None else i.error for i in items]


def applied(log: list[Event], event: Event) -> bool:
    known = [e for e in log if e.seq <= event.seq]
    result = {r.event.seq: r for r in fold(known, as_of=event.toa).results}[event.seq]
    if result.outcome == "applied":
        return True
    scheduled = event.toa > event.recorded_at
    return scheduled and str(result.reason).startswith(PRECONDITION)


async def decide(services: list[Service], setup: list[Any], batch: list[Any]) -> None:
    """Run ``setup``, then ``batch`` at once spread over ``services``; check every answer."""
    clock, store = services[0].clock, services[0].store
    docs = [service.documents("note") for service in services]
    for op in setup:
        with contextlib.suppress(EventdocsError):
            await write(docs[0], op, clock.now())
    before = await store.last_seq("note")
    answers = await asyncio.gather(
        *(write(docs[i % len(docs)], op, clock.now()) for i, op in enumerate(batch)),
        return_exceptions=True,
    )
    results: list[WriteResult] = []
    for answer in answers:
        if isinstance(answer, list):
            results += [a for a in answer if isinstance(a, WriteResult)]
        elif isinstance(answer, WriteResult):
            results.append(answer)
        else:
            assert isinstance(answer, EventdocsError), answer
    log = await store.read_log("note", limit=10_000)
    assert sorted(e.seq for e in log if e.seq > before) == sorted(r.event.seq for r in results), (
        "the log holds exactly the answered writes"
    )
    for result in results:
        assert applied([e for e in log if e.id == result.event.id], result.event)
    for service in services:
        await service.scheduler.run_once()
    assert await verify(store, ["note"]) == []


async def race(backend: str, setup: list[Any], batch: list[Any]) -> None:
    clock = ManualClock()
    with tempfile.TemporaryDirectory() as tmp:
        url = "memory:" if backend == "memory" else str(Path(tmp) / "store.db")
        service = Service(
            open_store(url, clock=clock), [Note.spec()], clock=clock, background=False
        )
        await service.start()
        try:
            await decide([service], setup, batch)
        finally:
            await service.stop()


async def race_on_mongodb(setup: list[Any], batch: list[Any]) -> None:
    """Two stores on one database, as two processes: each decides its share of the batch."""
    from eventdocs.storage.mongodb import MongoStore
    from mongotest import discard, fresh_url

    clock, url = ManualClock(), fresh_url()
    services = [
        Service(MongoStore(url, clock=clock), [Note.spec()], clock=clock, background=False)
        for _ in range(2)
    ]
    for service in services:
        await service.start()
    try:
        await decide(services, setup, batch)
        log = await services[0].store.read_log("note", limit=10_000)
        assert [e.seq for e in log] == list(range(1, len(log) + 1)), "a race cost seqs"
    finally:
        await services[1].stop()
        await services[0].scheduler.stop()
        store = services[0].store
        assert isinstance(store, MongoStore)
        await discard(store)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    backend=st.sampled_from(["memory", "sqlite"]),
    setup=st.lists(WRITES, max_size=4),
    batch=st.lists(WRITES, min_size=2, max_size=8),
)
def test_racing_writers_are_each_decided_once(
    backend: str, setup: list[Any], batch: list[Any]
) -> None:
    asyncio.run(race(backend, setup, batch))


@needs_server
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(setup=st.lists(WRITES, max_size=4), batch=st.lists(WRITES, min_size=2, max_size=8))
def test_racing_writers_on_two_mongodb_stores_are_each_decided_once(
    setup: list[Any], batch: list[Any]
) -> None:
    asyncio.run(race_on_mongodb(setup, batch))
