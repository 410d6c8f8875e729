"""The invariant, under random histories: every projection equals the fold of the log.

A hypothesis state machine drives the same random writes (immediate,
scheduled, backdated), merge patches, deletes, reverts, cancels, clock jumps,
restarts, crashes between an append and its projection, and two projectors
racing over the same events, through a memory store and a SQLite file store
sharing one manual clock. After every step:
``verify`` finds nothing on either, and both stores hold the same log,
history, master collection and view.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from eventdocs.documents import BulkTarget, Documents, WriteResult
from eventdocs.errors import EventdocsError, NotFound
from eventdocs.events import Cancel, Draft, Event
from eventdocs.fields import Integer, Map, Text
from eventdocs.fold import PRECONDITION, fold
from eventdocs.projections.projector import Projector
from eventdocs.projections.replay import verify
from eventdocs.projections.views import Change, Rows, View
from eventdocs.resources import Resource
from eventdocs.service import Service
from eventdocs.storage import open_store
from eventdocs.storage.contract import EventStore
from eventdocs.times import ManualClock
from mongotest import database_url, needs_server
from stores import dispose

SECOND = 1_000_000


class Note(Resource):
    name = "note"
    version = 1

    class schema:
        id = Text(required=True, nonnull=True)
        title = Text(operators=["equal", "prefix"], sortable=True)
        n = Integer(operators=["gt", "lt"], sortable=True)
        tags = Map(Integer())


class NotesPerTitle(View):
    name = "notes_per_title"
    sources = ("note",)

    def keys(self, change: Change) -> list[str]:
        return [str(d.get("title")) for d in (change.before, change.after) if d is not None]

    def apply(self, rows: Rows, change: Change) -> None:
        for doc, delta in ((change.before, -1), (change.after, 1)):
            if doc is not None:
                key = str(doc.get("title"))
                count = (rows.get(key) or {"count": 0})["count"] + delta
                rows[key] = {"count": count} if count else None


IDS = st.sampled_from(["a", "b", "c", "d"])
TITLES = st.sampled_from(["x", "y", "z"])
BODIES = st.fixed_dictionaries(
    {},
    optional={
        "title": st.none() | TITLES,
        "n": st.integers(-5, 5),
        "tags": st.dictionaries(
            st.sampled_from(["p", "q"]), st.integers(0, 3) | st.none(), max_size=2
        ),
    },
)
OFFSETS = st.none() | st.integers(-30, 30).map(lambda s: s * SECOND)
MATCHES = st.none() | st.integers(0, 4)


class EquivalenceMachine(RuleBasedStateMachine):
    #: The stores compared: ``memory`` (kept across restarts), ``sqlite`` (a file in
    #: a fresh directory), ``mongodb`` (a database of its own per run).
    backends: ClassVar[tuple[str, ...]] = ("memory", "sqlite")
    views: ClassVar[tuple[type[View], ...]] = (NotesPerTitle,)

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="eventdocs-sm-"))
        self.clock = ManualClock()
        self.memory = open_store("memory:", clock=self.clock)
        self.database = f"eventdocs_test_{uuid.uuid4().hex[:12]}"
        self.services: list[Service] = []
        self.run(self._start())

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def _store(self, backend: str) -> EventStore:
        if backend == "memory":
            return self.memory
        if backend == "sqlite":
            return open_store(str(self.dir / "store.db"), clock=self.clock)
        return open_store(database_url(self.database), clock=self.clock)

    async def _start(self) -> None:
        self.services = [
            Service(
                self._store(backend),
                [Note.spec()],
                views=[view() for view in self.views],
                clock=self.clock,
                background=False,
            )
            for backend in self.backends
        ]
        for service in self.services:
            await service.start()

    def teardown(self) -> None:
        for service in self.services:
            self.run(service.stop())
        if "mongodb" in self.backends:
            store = self._store("mongodb")
            self.run(store.open())
            self.run(dispose(store))
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def both(self, op: Callable[[Documents], Awaitable[Any]]) -> None:
        """Run ``op`` on each store; they must succeed alike or fail alike.

        And an answer is the truth: a write that raised appended nothing; one
        that answered appended events the fold applies (at their TOA: an
        immediate write now, a scheduled one in the preview of its TOA).
        """
        outcomes = []
        for service in self.services:
            before = self.run(service.store.last_seq("note"))
            try:
                result = self.run(op(service.documents("note")))
            except EventdocsError as exc:
                outcomes.append(type(exc))
                assert self.run(service.store.last_seq("note")) == before
                continue
            outcomes.append(result)
            written = [r for _, r, _ in result] if isinstance(result, list) else [result]
            for answer in written:
                if isinstance(answer, WriteResult) and not answer.replayed:
                    self.assert_applied(service, answer.event)
        assert all(outcome == outcomes[0] for outcome in outcomes)

    def assert_applied(self, service: Service, event: Event) -> None:
        if isinstance(event, Cancel):
            return
        log = self.run(service.store.read_document("note", event.id))
        known = [e for e in log if e.seq <= event.seq]  # as the log was when it answered
        result = {r.event.seq: r for r in fold(known, as_of=event.toa).results}[event.seq]
        if event.toa > event.recorded_at and getattr(event, "expect_rev", None) is not None:
            # A scheduled If-Match is decided at the TOA: applied, or failed by it alone.
            assert result.outcome == "applied" or str(result.reason).startswith(PRECONDITION)
        else:
            assert result.outcome == "applied", result

    def toa(self, offset: int | None) -> int | None:
        return None if offset is None else self.clock.now() + offset

    @rule(doc=IDS, body=BODIES, offset=OFFSETS)
    def create(self, doc: str, body: dict[str, Any], offset: int | None) -> None:
        self.both(lambda d: d.create({"id": doc, **body}, toa=self.toa(offset)))

    @rule(doc=IDS, body=BODIES, offset=OFFSETS, merge=st.booleans(), match=MATCHES)
    def update(
        self, doc: str, body: dict[str, Any], offset: int | None, merge: bool, match: int | None
    ) -> None:
        self.both(lambda d: d.update(doc, body, merge=merge, toa=self.toa(offset), if_match=match))

    @rule(doc=IDS, offset=OFFSETS, match=MATCHES)
    def delete(self, doc: str, offset: int | None, match: int | None) -> None:
        self.both(lambda d: d.delete(doc, toa=self.toa(offset), if_match=match))

    @rule(ids=st.lists(IDS, min_size=1, max_size=3), body=BODIES, offset=OFFSETS, match=MATCHES)
    def bulk_update(
        self, ids: list[str], body: dict[str, Any], offset: int | None, match: int | None
    ) -> None:
        targets = [BulkTarget(i, match) for i in ids]

        async def bulk(d: Documents) -> list[Any]:
            items = await d.bulk("update", targets, body, toa=self.toa(offset))
            return [(i.id, i.result, type(i.error)) for i in items]

        self.both(bulk)

    @rule(doc=IDS, back=st.integers(-40, 40), known=st.none() | st.integers(0, 40))
    def read_at_a_time(self, doc: str, back: int, known: int | None) -> None:
        # Time travel through the history (and known_at) equals the fold of the log.
        as_of = self.clock.now() - back * SECOND
        known_at = None if known is None else self.clock.now() - known * SECOND
        for service in self.services:
            log = self.run(service.store.read_document("note", doc))
            state = fold(log, as_of=as_of, known_at=known_at).state
            try:
                got = self.run(service.documents("note").get(doc, as_of=as_of, known_at=known_at))
            except NotFound:
                assert state.data is None
                continue
            assert (got.data, got.rev) == (state.data, state.rev)

    @rule(doc=IDS, limit=st.integers(1, 4), offset=st.integers(0, 6))
    def revisions_page(self, doc: str, limit: int, offset: int) -> None:
        # A page of /revisions, computed from the page alone, equals the fold's list cut.
        for service in self.services:
            log = self.run(service.store.read_document("note", doc))
            try:
                total, page = self.run(
                    service.documents("note").revisions_page(doc, limit=limit, offset=offset)
                )
            except NotFound:
                assert log == []
                continue
            results = fold(log, as_of=self.clock.now()).results
            assert total == len(results)
            assert page == results[offset : offset + limit]

    @rule(doc=IDS, rev=st.integers(1, 4), offset=OFFSETS)
    def revert_to_revision(self, doc: str, rev: int, offset: int | None) -> None:
        self.both(lambda d: d.revert(doc, to_revision=rev, toa=self.toa(offset)))

    @rule(doc=IDS, back=st.integers(0, 60))
    def revert_as_of(self, doc: str, back: int) -> None:
        as_of = self.clock.now() - back * SECOND
        self.both(lambda d: d.revert(doc, as_of=as_of))

    @rule(pick=st.integers(0, 5))
    def cancel(self, pick: int) -> None:
        _, pending = self.run(self.services[0].documents("note").scheduled(limit=10))
        seq = pending[pick % len(pending)].seq if pending else 10_000
        self.both(lambda d: d.cancel(seq))

    @rule(seconds=st.integers(0, 40))
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(seconds * SECOND)
        for service in self.services:
            self.run(service.scheduler.run_once())

    @rule(
        due=IDS,
        doc=IDS,
        body=BODIES,
        delete=st.booleans(),
        seconds=st.integers(1, 30),
        later=st.integers(0, 10),
    )
    def write_before_the_scheduler_wakes(
        self, due: str, doc: str, body: dict[str, Any], delete: bool, seconds: int, later: int
    ) -> None:
        # A write comes due, and an immediate write lands before any step applied it:
        # the append's transaction (SQLite's tips) or its projection must apply it.
        # Then the scheduler wakes (it must find nothing it needs to redo).
        toa = self.toa(seconds * SECOND)
        self.both(lambda d: d.delete(due, toa=toa) if delete else d.update(due, body, toa=toa))
        self.clock.advance((seconds + later) * SECOND)
        self.both(lambda d: d.update(doc, body, merge=True))
        for service in self.services:
            self.run(service.scheduler.run_once())

    @rule()
    def restart(self) -> None:
        for service in self.services:
            self.run(service.stop())
        self.services = []
        self.run(self._start())

    @precondition(lambda self: bool(self.services))
    @rule(docs=st.lists(IDS, min_size=1, max_size=3), offset=OFFSETS)
    def crash_between_append_and_projection(self, docs: list[str], offset: int | None) -> None:
        # The appends are durable but the process dies before projecting them;
        # the restart must project them exactly once.
        drafts = [
            Draft(action="create", id=doc, body={"title": "x"}, toa=self.toa(offset))
            for doc in docs
        ]
        for service in self.services:
            self.run(service.store.append("note", drafts))
        self.restart()

    @precondition(lambda self: bool(self.services))
    @rule(
        writes=st.lists(st.tuples(st.sampled_from(["create", "update"]), IDS, BODIES), min_size=1),
        offset=OFFSETS,
    )
    def two_processes_project_at_once(
        self, writes: list[tuple[str, str, dict[str, Any]]], offset: int | None
    ) -> None:
        # Another process appended; it and this one then project the same events at
        # once, each from the checkpoint it read: every change must count once.
        drafts = [
            Draft(action=a, id=doc, body=body, toa=self.toa(offset)) for a, doc, body in writes
        ]

        async def race(service: Service) -> None:
            await service.store.append("note", drafts)
            other = Projector(service.store, self.clock, [view() for view in self.views])
            await asyncio.gather(service.projector.project("note"), other.project("note"))

        for service in self.services:
            self.run(race(service))

    @invariant()
    def master_is_the_fold_at_now(self) -> None:
        # Not at the checkpoint's time: a projector that skipped due writes fails here.
        now = self.clock.now()
        for service in self.services:
            for doc in ("a", "b", "c", "d"):
                log = self.run(service.store.read_document("note", doc))
                state = fold(log, as_of=now).state
                row = self.run(service.store.get("note", doc))
                got = None if row is None else (row.data, row.rev)
                assert got == (None if state.data is None else (state.data, state.rev))

    @invariant()
    def projections_equal_the_fold(self) -> None:
        for service in self.services:
            views = [view() for view in self.views]
            assert self.run(verify(service.store, ["note"], views)) == []

    @invariant()
    def stores_agree(self) -> None:

        async def contents(store: EventStore) -> Any:
            return (
                await store.read_log("note", limit=10_000),
                await store.scan("note"),
                await store.scan_history("note", limit=10_000),
                [await store.read_view(view.name) for view in self.views],
                await store.read_checkpoint("note"),
            )

        first, *others = (self.run(contents(s.store)) for s in self.services)
        assert all(other == first for other in others)


EquivalenceMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEquivalence = EquivalenceMachine.TestCase


class NoViewsMachine(EquivalenceMachine):
    """Without views, SQLite applies writes that come due in SQL (``applies_due``)."""

    views = ()


NoViewsMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEquivalenceWithoutViews = NoViewsMachine.TestCase


class MongoEquivalenceMachine(EquivalenceMachine):
    """The same machine with MongoDB beside the memory store, over the wire."""

    backends = ("memory", "mongodb")


MongoEquivalenceMachine.TestCase.settings = settings(
    max_examples=10,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestMongoEquivalence = needs_server(MongoEquivalenceMachine.TestCase)
