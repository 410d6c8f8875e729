"""The invariant, under random histories: every projection equals the fold of the log.

A hypothesis state machine drives the same random writes (immediate,
scheduled, backdated), merge patches, deletes, reverts, cancels, clock jumps,
restarts and crashes between an append and its projection through a memory
store and a SQLite file store sharing one manual clock. After every step:
``verify`` finds nothing on either, and both stores hold the same log,
history, master collection and view.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from eventdocs.documents import Documents
from eventdocs.errors import EventdocsError
from eventdocs.events import Draft
from eventdocs.fields import Integer, Map, Text
from eventdocs.projections.replay import verify
from eventdocs.projections.views import Change, Rows, View
from eventdocs.resources import Resource
from eventdocs.service import Service
from eventdocs.storage import open_store
from eventdocs.storage.contract import EventStore
from eventdocs.times import ManualClock

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


class EquivalenceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="eventdocs-sm-"))
        self.clock = ManualClock()
        self.memory = open_store("memory:", clock=self.clock)
        self.services: list[Service] = []
        self.run(self._start())

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    async def _start(self) -> None:
        sqlite = open_store(str(self.dir / "store.db"), clock=self.clock)
        self.services = [self._service(self.memory), self._service(sqlite)]
        for service in self.services:
            await service.start()

    def _service(self, store: EventStore) -> Service:
        return Service(
            store, [Note.spec()], views=[NotesPerTitle()], clock=self.clock, background=False
        )

    def teardown(self) -> None:
        for service in self.services:
            self.run(service.stop())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def both(self, op: Callable[[Documents], Awaitable[Any]]) -> None:
        """Run ``op`` on each store; they must succeed alike or fail alike."""
        outcomes = []
        for service in self.services:
            try:
                outcomes.append(self.run(op(service.documents("note"))))
            except EventdocsError as exc:
                outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1]

    def toa(self, offset: int | None) -> int | None:
        return None if offset is None else self.clock.now() + offset

    @rule(doc=IDS, body=BODIES, offset=OFFSETS)
    def create(self, doc: str, body: dict[str, Any], offset: int | None) -> None:
        self.both(lambda d: d.create({"id": doc, **body}, toa=self.toa(offset)))

    @rule(doc=IDS, body=BODIES, offset=OFFSETS, merge=st.booleans())
    def update(self, doc: str, body: dict[str, Any], offset: int | None, merge: bool) -> None:
        self.both(lambda d: d.update(doc, body, merge=merge, toa=self.toa(offset)))

    @rule(doc=IDS, offset=OFFSETS)
    def delete(self, doc: str, offset: int | None) -> None:
        self.both(lambda d: d.delete(doc, toa=self.toa(offset)))

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

    @rule()
    def restart(self) -> None:
        for service in self.services:
            self.run(service.stop())
        self.memory = self.services[0].store
        self.services = []

        async def reopen() -> None:
            sqlite = open_store(str(self.dir / "store.db"), clock=self.clock)
            self.services = [self._service(self.memory), self._service(sqlite)]
            for service in self.services:
                await service.start()

        self.run(reopen())

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

    @invariant()
    def projections_equal_the_fold(self) -> None:
        for service in self.services:
            assert self.run(verify(service.store, ["note"], [NotesPerTitle()])) == []

    @invariant()
    def stores_agree(self) -> None:
        memory, sqlite = (s.store for s in self.services)

        async def contents(store: EventStore) -> Any:
            return (
                await store.read_log("note", limit=10_000),
                await store.scan("note"),
                await store.scan_history("note", limit=10_000),
                await store.read_view("notes_per_title"),
                await store.read_checkpoint("note"),
            )

        assert self.run(contents(memory)) == self.run(contents(sqlite))


EquivalenceMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEquivalence = EquivalenceMachine.TestCase
