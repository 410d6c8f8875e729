"""What only the MongoDB store promises: indexes, many processes, leases, recovery.

Every test but the first needs a server: set ``EVENTDOCS_TEST_MONGODB_URL``
(``scripts/mongo-test-server start`` prints one; docs/mongodb.md tells how to
use a real MongoDB). The projector processes are real subprocesses.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventdocs.errors import KeyReused, Stale, StorageError, StoreUnavailable
from eventdocs.events import Draft
from eventdocs.fields import Integer
from eventdocs.projections.lease import Lease, lease_for
from eventdocs.projections.projector import Projector
from eventdocs.projections.replay import verify
from eventdocs.projections.views import Change, Rows, View
from eventdocs.query import Query
from eventdocs.resources import Resource
from eventdocs.service import Service
from eventdocs.storage import (
    Appended,
    Checkpoint,
    Document,
    Guard,
    HistoryWrite,
    IndexSpec,
    ProjectionBatch,
)
from eventdocs.storage.mongodb import MongoStore
from eventdocs.storage.mongodb.codec import event_doc
from eventdocs.times import ManualClock
from logs import cancel_in_time_and_too_late
from mongotest import (
    SKIP_REASON,
    STANDALONE_SKIP_REASON,
    STANDALONE_URL,
    URL,
    discard,
    fresh_url,
    needs_server,
    needs_standalone,
)

# PyMongo's async client may drop a monitor socket it was still opening when a client
# closes; the garbage collector then reports it during whichever test runs next.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(params=["auto", "no-transactions", "standalone"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[MongoStore]:
    """Every path: transactions on a replica set, the journal there, and a standalone server."""
    server = STANDALONE_URL if request.param == "standalone" else URL
    if not server:
        pytest.skip(STANDALONE_SKIP_REASON if request.param == "standalone" else SKIP_REASON)
    transactions = False if request.param == "no-transactions" else None
    s = MongoStore(fresh_url(server), transactions=transactions, stale_after=0.5)
    await s.open()
    await s.ensure_resource("post")
    yield s
    await discard(s)


def create(id: str, toa: int | None = None, **body: Any) -> Draft:
    return Draft(action="create", id=id, body=body, toa=toa)


async def test_an_unreachable_server_is_store_unavailable() -> None:
    store = MongoStore("mongodb://127.0.0.1:9/x", serverSelectionTimeoutMS=200)
    with pytest.raises(StoreUnavailable):
        await store.open()
    with pytest.raises(StorageError, match="not open"):
        await store.read_log("post")


@needs_server
async def test_indexes_serve_every_read_path() -> None:
    store = MongoStore(fresh_url())
    await store.open()
    try:
        specs = [IndexSpec("title", "text"), IndexSpec("price", "decimal"), IndexSpec("meta.n")]
        await store.ensure_resource("post", specs)
        await store.ensure_resource("post", specs)  # idempotent

        async def keys(name: str) -> dict[str, list[tuple[str, int]]]:
            cursor = await store.db[name].list_indexes()
            return {i["name"]: list(i["key"].items()) async for i in cursor}

        log = await keys("post_revisions")
        assert log["id_toa_seq"] == [("id", 1), ("toa", 1), ("_id", 1)]
        assert log["id_seq"] == [("id", 1), ("_id", 1)]
        assert log["toa_seq"] == [("toa", 1), ("_id", 1)]
        assert log["took"] == [("took", 1)]
        history = await keys("post_history")
        assert history["id_rev"] == [("id", 1), ("rev", 1)]
        assert history["alive"] == [("until", 1), ("updated", 1)]
        master = set(map(tuple, (await keys("post")).values()))  # type: ignore[arg-type]
        assert (("_k./title", 1), ("_id", 1)) in master
        assert (("_l./title", 1), ("_id", 1)) in master
        assert (("_d./price", 1), ("_id", 1)) in master
        assert (("_k./meta/n", 1), ("_id", 1)) in master
        assert await store.resources() == ["post"]
    finally:
        await discard(store)


@needs_server
async def test_documents_round_trip_as_json(store: MongoStore) -> None:
    data = {
        "big": 2**62,
        "huge": 2**64,  # beyond int64: kept as JSON text
        "f": 1.0,
        "neg": -0.0,
        "nested": {"a": [1, {"b": None}], "$weird": {"x.y": "z"}},
        "price": "10.50",
        "at": "2024-01-01T00:00:00.000000Z",
        "s": "é\x00\U0001f600",
    }
    plain = {"n": 2**40, "list": [1, 2.5, "x", True, None]}
    rows = [Document("a", data, 1, 10, 1), Document("b", plain, 1, 10, 2)]
    batch = ProjectionBatch(
        Checkpoint(2, 10),
        history=[HistoryWrite(d.id, 1, [d]) for d in rows],
        upserts=rows,
    )
    await store.write_projection("post", batch)
    for row in rows:
        got = await store.get("post", row.id)
        assert got == row
        assert got is not None and got.data is not None
        assert [type(v) for v in got.data.values()] == [type(v) for v in row.data.values()]  # type: ignore[union-attr]
    (event,) = (await store.append("post", [create("c", **data)])).events
    assert await store.read_event("post", event.seq) == event


@needs_server
async def test_a_dead_writer_is_voided_and_a_late_one_fails(store: MongoStore) -> None:
    first = (await store.append("post", [create("a")])).events[0]
    start, _, _ = await store._allocate("post", 2)  # a writer that dies right after allocating
    assert await store.last_seq("post") == 1  # readers stop before the pending batch
    began = time.monotonic()
    (later,) = (await store.append("post", [create("b")])).events
    assert later.seq == start + 2
    assert time.monotonic() - began < 5
    assert [e.seq for e in await store.read_log("post")] == [first.seq, later.seq]
    assert await store.last_seq("post") == later.seq
    # The dead writer wakes up: its events never show, its write fails.
    late = create("x").record("post", start, 0)
    with pytest.raises(StorageError):
        await store._write_batch("post", start, 1, [{**event_doc(late), "prev": 0}])
    assert await store.read_event("post", start) is None
    assert await store.read_document("post", "x") == []


@needs_server
async def test_a_crashed_projection_is_rolled_forward_or_dropped(store: MongoStore) -> None:
    row = Document("a", {"n": 1}, 1, 10, 1)
    batch = ProjectionBatch(Checkpoint(1, 10), [HistoryWrite("a", 1, [row])], [row])
    journal = store.db["eventdocs_journal"]
    lock = {"token": "dead", "seq": 1, "toa": 10, "kind": "transaction"}
    if not store.transactions:
        data = msgspec.json.encode(batch)
        await journal.insert_one({"_id": "dead/0", "token": "dead", "i": 0, "data": data})
        lock.update(kind="journal", n=1)
    assert await store._lock("post", lock, lambda _: True)
    await asyncio.sleep(0.6)  # the holder "died": its lock goes stale
    checkpoint = await store.read_checkpoint("post")
    if store.transactions:  # its transaction never committed: nothing happened
        assert checkpoint == Checkpoint()
        assert await store.get("post", "a") is None
    else:  # the journal is applied
        assert checkpoint == Checkpoint(1, 10)
        assert await store.get("post", "a") == row
        assert await journal.count_documents({}) == 0


class SlowStore(MongoStore):
    """Writes each projection step slowly, as on a loaded machine."""

    delay = 1.5

    async def _apply(self, r: str, batch: ProjectionBatch, session: Any = None) -> None:
        await asyncio.sleep(self.delay)
        await super()._apply(r, batch, session)


@needs_server
async def test_a_step_slower_than_stale_after_keeps_its_lock(store: MongoStore) -> None:
    """Only a dead or frozen holder's lock goes stale: a slow one is left to finish."""
    if store.standalone:
        pytest.skip("one process serves a database on a standalone server")
    slow = SlowStore(store.url, transactions=store.transactions, stale_after=0.5)
    await slow.open()
    try:
        row = Document("a", {"n": 1}, 1, 10, 1)
        batch = ProjectionBatch(
            Checkpoint(1, 10), [HistoryWrite("a", 1, [row])], [row], base=Checkpoint()
        )
        writing = asyncio.create_task(slow.write_projection("post", batch))
        for _ in range(10):  # meanwhile, another process reads the checkpoint
            await asyncio.sleep(0.1)
            assert await store.read_checkpoint("post") == Checkpoint()
        assert await writing
        assert await store.read_checkpoint("post") == Checkpoint(1, 10)
        assert await store.get("post", "a") == row
    finally:
        await slow.close()


@needs_server
async def test_a_batch_from_a_stale_checkpoint_is_dropped(store: MongoStore) -> None:
    if store.standalone:
        pytest.skip("one process serves a database on a standalone server")
    row = Document("a", {"n": 1}, 1, 10, 1)
    other = MongoStore(store.url, transactions=store.transactions)
    await other.open()
    try:
        assert await store.read_checkpoint("post") == Checkpoint()
        assert await other.read_checkpoint("post") == Checkpoint()
        await other.write_projection("post", ProjectionBatch(Checkpoint(1, 10), upserts=[row]))
        stale = ProjectionBatch(
            Checkpoint(1, 20), upserts=[Document("a", {"n": 9}, 2, 20, 1)], base=Checkpoint()
        )
        assert not await store.write_projection("post", stale)
        assert store.skipped_projections == 1
        assert await store.get("post", "a") == row
        assert await store.read_checkpoint("post") == Checkpoint(1, 10)
    finally:
        await other.close()


@needs_standalone
async def test_a_standalone_server_is_served_by_one_process() -> None:
    url = fresh_url(STANDALONE_URL)
    first, second = MongoStore(url, stale_after=0.5), MongoStore(url, stale_after=0.5)
    await first.open()
    try:
        assert first.standalone and not first.transactions
        with pytest.raises(StorageError, match=r"standalone server and pid \d+ on .* serves it"):
            await second.open()
        await asyncio.sleep(1.0)  # the owner keeps its hold fresh: still refused
        with pytest.raises(StorageError, match="use a replica set"):
            await second.open()
        # The owner dies without closing: its hold goes stale and is taken over.
        owner = first._owner
        assert owner is not None and owner._beat is not None
        owner._beat.cancel()
        first._owner = None
        await asyncio.sleep(0.6)
        await second.open()
        await second.ensure_resource("post")
        assert (await second.append("post", [create("a")])).events[0].seq == 1
        await second.close()  # gives the database up at once
        await second.open()
    finally:
        await first.close()
        await discard(second)


# -- decided writes across stores (each store stands for a process) ------------------


@pytest.fixture
async def two(store: MongoStore) -> AsyncIterator[tuple[MongoStore, MongoStore]]:
    """``store`` and a second store on its database (refused on a standalone server)."""
    if store.standalone:
        pytest.skip("one process serves a database on a standalone server")
    other = MongoStore(store.url, transactions=store.transactions, stale_after=0.5)
    await other.open()
    yield store, other
    await other.close()


def update(id: str, **body: Any) -> Draft:
    return Draft(action="update", id=id, body=body)


async def test_a_guard_lets_one_of_two_racing_appends_through(
    two: tuple[MongoStore, MongoStore],
) -> None:
    one, other = two
    (head,) = (await one.append("post", [create("a", n=0)])).events
    seq = head.seq
    for round_ in range(10):
        guard = [Guard("a", seq)]
        results = await asyncio.gather(
            one.append("post", [update("a", n=round_)], guards=guard),
            other.append("post", [update("a", n=-round_)], guards=guard),
            return_exceptions=True,
        )
        won = [r for r in results if isinstance(r, Appended)]
        assert len(won) == 1, results
        assert all(isinstance(r, Stale) for r in results if r is not won[0])
        seq = won[0].events[0].seq
        assert (await other.read_head("post", "a", after_toa=0)).seq == seq
    log = await one.read_document("post", "a")
    assert len(log) == 11  # nothing of a refused append was written
    assert await one.last_seq("post") == 11  # places are claimed first: no seq was lost


async def test_a_guard_fails_on_an_event_of_the_same_group(store: MongoStore) -> None:
    (head,) = (await store.append("post", [create("a")])).events
    guard = [Guard("a", head.seq)]
    results = await asyncio.gather(
        *(store.append("post", [update("a", i=i)], guards=guard) for i in range(5)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Appended) for r in results) == 1
    assert sum(isinstance(r, Stale) for r in results) == 4
    assert len(await store.read_document("post", "a")) == 2


async def test_a_guard_s_before_bounds_the_recorded_at(store: MongoStore) -> None:
    now = store.clock.now()
    with pytest.raises(Stale):
        await store.append("post", [create("a")], guards=[Guard("a", 0, before=now)])
    assert await store.read_document("post", "a") == []
    far = now + 3_600_000_000
    (event,) = (await store.append("post", [create("a")], guards=[Guard("a", 0, far)])).events
    assert event.recorded_at < far


async def test_an_idempotency_key_is_decided_once_across_stores(
    two: tuple[MongoStore, MongoStore],
) -> None:
    one, other = two
    for round_ in range(5):
        key = f"k{round_}"
        calls = [
            (one if i % 2 else other).append(
                "post", [create(f"d{round_}-{i}")], idempotency_key=key, fingerprint=f"f{i % 3}"
            )
            for i in range(6)
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        firsts = [r for r in results if isinstance(r, Appended) and not r.replayed]
        assert len(firsts) == 1, results
        (first,) = firsts
        for result in results:
            assert isinstance(result, Appended | KeyReused), result
            if isinstance(result, Appended):
                assert result.events == first.events
        assert await other.find_idempotent("post", key) == first.events
        with pytest.raises(KeyReused):
            await one.find_idempotent("post", key, fingerprint="another")
    assert len(await one.read_log("post")) == 5
    assert await one.last_seq("post") == 5  # keys are claimed first: a race costs no seqs


async def test_a_step_that_did_not_see_an_event_recorded_before_its_time_is_refused(
    store: MongoStore,
) -> None:
    (event,) = (await store.append("post", [create("a")])).events
    blind = ProjectionBatch(Checkpoint(0, event.recorded_at + 10), base=Checkpoint())
    assert not await store.write_projection("post", blind)
    assert await store.read_checkpoint("post") == Checkpoint()
    seen = ProjectionBatch(Checkpoint(1, event.recorded_at + 10), base=Checkpoint())
    assert await store.write_projection("post", seen)
    # Whatever the clock says, nothing is recorded before a time already projected.
    (later,) = (await store.append("post", [create("b")])).events
    assert later.recorded_at >= event.recorded_at + 10


@needs_standalone
async def test_a_reader_opens_a_standalone_database_beside_its_owner() -> None:
    url = fresh_url(STANDALONE_URL)
    owner, reader = MongoStore(url), MongoStore(url, readonly=True)
    await owner.open()
    try:
        await owner.ensure_resource("post")
        (event,) = (await owner.append("post", [create("a")])).events
        await reader.open()  # no ownership taken: the CLI's reads (export, verify, ...)
        assert await reader.read_log("post") == [event]
        with pytest.raises(StorageError, match="read-only"):
            await reader.append("post", [create("b")])
        assert await owner.read_log("post") == [event]
    finally:
        await reader.close()
        await discard(owner)


OWNER = textwrap.dedent(
    """
    import asyncio, sys
    from eventdocs.storage.mongodb import MongoStore

    async def main():
        await MongoStore(sys.argv[1]).open()
        print("READY", flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
    """
)


def start_owner(url: str) -> subprocess.Popen[str]:
    """A process that opens ``url``'s database and keeps it."""
    return subprocess.Popen([sys.executable, "-c", OWNER, url], stdout=subprocess.PIPE, text=True)


@needs_standalone
async def test_a_process_killed_on_this_host_gives_a_standalone_database_up_at_once() -> None:
    url = fresh_url(STANDALONE_URL)
    proc = start_owner(url)
    store = MongoStore(url, stale_after=600.0)  # no waiting for its hold to go stale
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        with pytest.raises(StorageError, match=f"pid {proc.pid} on"):
            await store.open()
        proc.kill()
        proc.wait()
        await store.open()
        assert store.standalone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        await discard(store)


class Author(Resource):
    name = "author"

    class schema:
        n = Integer()


class AuthorTotal(View):
    """Sum of n and number of authors: a change folded in twice shows."""

    name = "author_total"
    sources = ("author",)

    def keys(self, change: Change) -> list[str]:
        return ["all"]

    def apply(self, rows: Rows, change: Change) -> None:
        row = rows.get("all") or {"sum": 0, "docs": 0}
        before, after = change.before or {}, change.after or {}
        rows["all"] = {
            "sum": row["sum"] - before.get("n", 0) + after.get("n", 0),
            "docs": row["docs"] - bool(change.before) + bool(change.after),
        }


async def authors(url: str, count: int) -> None:
    """``count`` authors, projected by a process that knows no views."""
    plain = Service(MongoStore(url), [Author.spec()], background=False)
    async with plain:
        drafts = [Draft(action="create", id=f"a{i:04}", body={"n": i}) for i in range(count)]
        await plain.store.append("author", drafts)
        await plain.scheduler.run_once()


def with_view(url: str) -> Service:
    return Service(MongoStore(url), [Author.spec()], views=[AuthorTotal()], background=False)


@needs_server
async def test_processes_starting_at_once_build_a_new_view_once() -> None:
    """``uvicorn --workers 4``: every worker finds the new view stale at the same time.

    End to end; the interleaving that doubled rows before the view lease is rare
    here, and the next test pins the waiting down deterministically."""
    url = fresh_url()
    await authors(url, 200)
    workers = [with_view(url) for _ in range(4)]

    async def start(worker: Service, delay: float) -> None:
        await asyncio.sleep(delay)
        await worker.start()

    await asyncio.gather(*(start(w, i * 0.01) for i, w in enumerate(workers)))
    try:
        store = workers[0].store
        assert await store.read_view("author_total") == {"all": {"sum": 19900, "docs": 200}}
        assert await verify(store, ["author"], [AuthorTotal()]) == []
    finally:
        for w in workers[1:]:
            await w.stop()
        await discard(workers[0].store)


@needs_server
async def test_a_view_rebuild_waits_for_the_process_building_it() -> None:
    """While another process holds a view's rebuild lease, a starting one waits; when that
    process dies without finishing, the waiting one takes over once the lease expires."""
    url = fresh_url()
    await authors(url, 50)
    worker = with_view(url)
    store = worker.store
    assert isinstance(store, MongoStore)
    await store.open()
    assert await store.claim_lease("view:author_total", "a process that dies", ttl=1.5)
    starting = asyncio.create_task(worker.start())
    try:
        await asyncio.sleep(0.5)
        assert not starting.done()  # still waiting for the lease holder
        assert await store.read_view("author_total") == {}
        await asyncio.wait_for(starting, 15)  # the lease expired: it built the view itself
        assert await store.read_view("author_total") == {"all": {"sum": 1225, "docs": 50}}
        assert await verify(store, ["author"], [AuthorTotal()]) == []
    finally:
        starting.cancel()
        await discard(store)


@needs_server
async def test_lease_is_held_by_one_and_released() -> None:
    store = MongoStore(fresh_url())
    await store.open()
    try:
        events: list[bool] = []
        one = lease_for(store, ttl=1.0, on_change=events.append)
        two = Lease(store, ttl=1.0)
        assert one is not None
        await one.start()
        await two.start()
        assert one.leading and not two.held and events == [True]
        await one.stop()
        assert events == [True, False]
        assert await two.renew() and two.leading
        await two.stop()
    finally:
        await discard(store)


@needs_server
async def test_a_change_stream_wakes_the_leader_on_another_process_s_append() -> None:
    """An append by a process without a scheduler (a CLI, a process that died) is
    projected by the leader at its TOA: the change stream wakes it, not a poll."""
    url = fresh_url()
    leader = Service(MongoStore(url), [Author.spec()])
    leader.scheduler.poll = 3600.0  # no poll within the test: only the stream can wake it
    other = MongoStore(url)
    async with leader:
        try:
            assert leader.scheduler._watcher is not None
            lease = leader.scheduler.lease
            assert lease is not None and lease.leading
            await other.open()
            await asyncio.sleep(0.2)  # the leader sleeps, with nothing due
            toa = other.clock.now() + 200_000
            await other.append("author", [Draft(action="create", id="a", body={"n": 1}, toa=toa)])
            deadline = time.monotonic() + 20
            while await leader.store.get("author", "a") is None:
                assert time.monotonic() < deadline, "the leader was not woken"
                await asyncio.sleep(0.02)
        finally:
            await other.close()
    await discard(leader.store)


@needs_standalone
async def test_without_change_streams_the_scheduler_polls() -> None:
    store = MongoStore(fresh_url(STANDALONE_URL))
    await store.open()
    try:
        assert await store.watch_appends(lambda: None) is None
    finally:
        await discard(store)


# -- real processes ----------------------------------------------------------------

WORKER = textwrap.dedent(
    '''
    import asyncio, os, sys, time

    from eventdocs.fields import Integer
    from eventdocs.projections.lease import lease_for
    from eventdocs.projections.views import View
    from eventdocs.resources import Resource
    from eventdocs.service import Service
    from eventdocs.storage.mongodb import MongoStore


    class Item(Resource):
        name = "item"

        class schema:
            n = Integer(operators=["gte"])


    class Total(View):
        """Sum of n and number of documents: any double-applied change shows."""

        name = "total"
        sources = ("item",)

        def keys(self, change):
            return ["all"]

        def apply(self, rows, change):
            row = rows.get("all") or {"sum": 0, "docs": 0}
            before, after = change.before, change.after
            rows["all"] = {
                "sum": row["sum"] - (before or {}).get("n", 0) + (after or {}).get("n", 0),
                "docs": row["docs"] - (before is not None) + (after is not None),
            }


    def say(*words):
        print(*words, os.getpid(), flush=True)


    async def main(url, seconds, ttl, poll, transactions):
        store = MongoStore(url, stale_after=5.0, transactions=None if transactions else False)
        service = Service(store, [Item.spec()], views=[Total()], background=False)
        await store.open()
        changed = lambda held: say("LEADER" if held else "FOLLOWER")
        lease = lease_for(store, ttl=ttl, on_change=changed)
        await lease.start()
        await service.start()
        say("READY")
        clock, deadline = service.clock, time.monotonic() + seconds
        while time.monotonic() < deadline:
            wake_at = await service.scheduler.run_once()
            # What the scheduler does with a lease: the leader also polls for the
            # writes of other processes; here the follower does too, more slowly,
            # so that both race to apply the same events.
            cap = clock.now() + int((poll if lease.leading else 3 * poll) * 1e6)
            await clock.sleep_until(cap if wake_at is None else min(wake_at, cap), asyncio.Event())
        await lease.stop()
        await service.stop()
        say("DONE")


    url, seconds, ttl, poll, transactions = sys.argv[1:]
    asyncio.run(main(url, float(seconds), float(ttl), float(poll), transactions == "1"))
    '''
)


class Workers:
    """Projector processes on one database; their stdout lines, as they come."""

    def __init__(self, path: Path, url: str, seconds: float, ttl: float, poll: float) -> None:
        path.write_text(WORKER)
        self.args = [sys.executable, str(path), url, str(seconds), str(ttl), str(poll)]
        self.procs: list[subprocess.Popen[str]] = []
        self.lines: list[tuple[float, str]] = []
        # A readline still running when wait_for returns reads the next line: the next
        # wait_for collects it, or that line would be lost.
        self.pending: dict[subprocess.Popen[str], asyncio.Future[str]] = {}

    async def start(self, count: int = 2) -> None:
        """Start ``count`` workers at once, as ``uvicorn --workers`` does."""
        for _ in range(count):
            self.spawn("1")
        await self.wait_for(lambda lines: sum("READY" in x for _, x in lines) == count, 30)

    def spawn(self, transactions: str) -> None:
        self.procs.append(
            subprocess.Popen([*self.args, transactions], stdout=subprocess.PIPE, text=True)
        )

    async def wait_for(self, predicate: Any, within: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + within
        pending = self.pending
        while not predicate(self.lines):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; worker said {self.lines}")
            for proc in self.procs:
                if proc not in pending and proc.stdout is not None and proc.poll() is None:
                    pending[proc] = loop.run_in_executor(None, proc.stdout.readline)
            done = [p for p, f in pending.items() if f.done()]
            for proc in done:
                line = pending.pop(proc).result().strip()
                if line:
                    self.lines.append((time.monotonic(), line))
            await asyncio.sleep(0.02)

    def pid_of(self, word: str) -> int:
        return next(int(line.split()[1]) for _, line in self.lines if line.startswith(word))

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture
def workers() -> Iterator[list[Workers]]:
    """Killed by the test itself too: its loop waits for their readers before teardown."""
    made: list[Workers] = []
    yield made
    for w in made:
        w.close()


async def wait_projected(store: MongoStore, seq: int, toa: int, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        checkpoint = await store.read_checkpoint("item")
        if checkpoint.seq >= seq and checkpoint.toa >= toa:
            return
        assert time.monotonic() < deadline, f"projected only to {checkpoint}"
        await asyncio.sleep(0.1)


@needs_server
async def test_two_processes_apply_1000_scheduled_events_exactly_once(
    tmp_path: Path, workers: list[Workers]
) -> None:
    url = fresh_url()
    group = Workers(tmp_path / "worker.py", url, seconds=15, ttl=2.0, poll=0.1)
    workers.append(group)
    await group.start()
    store = MongoStore(url)
    await store.open()
    try:
        docs = 50
        await store.append("item", [create(f"d{i:02}", n=0) for i in range(docs)])
        now = store.clock.now()
        toas = [now + 1_500_000 + i * 1500 for i in range(1000)]  # over 1.5 s, from 1.5 s on
        last = 0
        for start in range(0, 1000, 100):
            drafts = [
                Draft(action="update", id=f"d{i % docs:02}", body={"n": i}, toa=toas[i])
                for i in range(start, start + 100)
            ]
            last = (await store.append("item", drafts)).events[-1].seq
        await wait_projected(store, last, toas[-1], within=20)
        assert await verify(store, ["item"]) == []
        total, page = await store.query("item", Query(limit=1000))
        assert total == docs
        for doc in page:
            assert doc.rev == 1 + 1000 // docs  # every scheduled update applied once
            assert len(await store.read_history("item", doc.id)) == doc.rev
        expected_sum = sum(max(i for i in range(1000) if i % docs == d) for d in range(docs))
        assert await store.read_view("total") == {"all": {"sum": expected_sum, "docs": docs}}
    finally:
        group.close()
        await discard(store)


@needs_server
async def test_a_killed_leader_is_replaced_within_seconds(
    tmp_path: Path, workers: list[Workers]
) -> None:
    url = fresh_url()
    ttl = 1.5
    group = Workers(tmp_path / "worker.py", url, seconds=15, ttl=ttl, poll=0.1)
    workers.append(group)
    await group.start()
    leader = group.pid_of("LEADER")
    store = MongoStore(url)
    await store.open()
    try:
        await store.append("item", [create("a", n=0)])
        group.kill(leader)
        killed = time.monotonic()
        toas = [store.clock.now() + 300_000 + i * 10_000 for i in range(20)]
        drafts = [Draft(action="update", id="a", body={"n": i}, toa=t) for i, t in enumerate(toas)]
        last = (await store.append("item", drafts)).events[-1].seq

        def successor(lines: list[tuple[float, str]]) -> float | None:
            return next((t for t, x in lines if "LEADER" in x and str(leader) not in x), None)

        await group.wait_for(successor, ttl + 5)
        taken = successor(group.lines)
        assert taken is not None
        assert taken - killed < ttl + ttl / 3 + 1.0
        await wait_projected(store, last, toas[-1], within=15)
        assert await verify(store, ["item"]) == []
        got = await store.get("item", "a")
        assert got is not None and got.data == {"n": 19} and got.rev == 21
    finally:
        group.close()
        await discard(store)


@needs_server
async def test_an_older_log_gets_each_cancel_decided_by_the_fold_once() -> None:
    """A log written before cancels carried ``took``: opening it decides them, once."""
    assert URL is not None
    clock = ManualClock()
    url = fresh_url(URL)
    store = MongoStore(url, clock=clock, stale_after=0.5)
    await store.open()
    try:
        await store.ensure_resource("post")
        now = await cancel_in_time_and_too_late(store, clock)
        assert [c.seq for c in await store.read_cancels("post", [2, 5])] == [4]
        # As an older eventdocs left it: no outcome recorded, no mark that they were decided.
        await store._coll("post_revisions").update_many({}, {"$unset": {"took": ""}})
        await store._coll("eventdocs_counters").update_one(
            {"_id": "post"}, {"$unset": {"cancels_decided": ""}}
        )
        assert await store.read_cancels("post", [2, 5]) == []
    finally:
        await store.close()
    store = MongoStore(url, clock=clock, stale_after=0.5)
    await store.open()
    try:
        await store.ensure_resource("post")
        assert [c.seq for c in await store.read_cancels("post", [2, 5])] == [4]
        due = await store.read_due("post", after_toa=now, until_toa=2**62, max_seq=6)
        assert [e.seq for e in due] == [5]
        # A run killed after marking some cancels, before its own mark: decided again
        # whole, the marks it left not counted as earlier cancels.
        await store._coll("eventdocs_counters").update_one(
            {"_id": "post"}, {"$unset": {"cancels_decided": ""}}
        )
        await store.ensure_resource("post")
        assert [c.seq for c in await store.read_cancels("post", [2, 5])] == [4]
    finally:
        await discard(store)


@needs_server
async def test_an_older_database_gets_its_closed_rows_and_event_numbers() -> None:
    """A projection written before the store kept closed history rows is rebuilt once
    at open (its ``known_at`` reads need them); events written before they carried
    ``n`` are counted, and the next event of their document is numbered from that."""
    assert URL is not None
    clock = ManualClock()
    url = fresh_url(URL)
    store = MongoStore(url, clock=clock, stale_after=0.5)
    await store.open()
    try:
        await store.ensure_resource("post")
        await store.append("post", [Draft(action="create", id="a", body={"v": 1})])
        clock.advance(10)
        first = clock.now()
        await store.append("post", [Draft(action="update", id="a", body={"v": 2})])
        clock.advance(10)
        backdated = Draft(action="update", id="a", body={"v": 3}, toa=first - 5)
        await store.append("post", [backdated])  # closes the row believed at `first`
        await Projector(store, clock).project("post")
        # As an older eventdocs left it: no closed rows, no numbers, no marks.
        await store._coll("post_superseded").delete_many({})
        await store._coll("post_revisions").update_many({}, {"$unset": {"n": ""}})
        await store._coll("eventdocs_counters").update_one(
            {"_id": "post"}, {"$unset": {"closed_kept": ""}}
        )
    finally:
        await store.close()
    store = MongoStore(url, clock=clock, stale_after=0.5)
    await store.open()
    try:
        await store.ensure_resource("post")
        assert await store.read_checkpoint("post") == Checkpoint()  # to be rebuilt
        await Projector(store, clock).project("post")
        assert await verify(store, ["post"]) == []
        row = await store.history_known("post", "a", toa=first, known_at=first)
        assert row is not None and row.data == {"v": 2}
        assert (await store.read_revisions("post", "a", limit=0))[0] == 3
        await store.append("post", [Draft(action="update", id="a", body={"v": 4})])
        assert (await store.read_revisions("post", "a", limit=0))[0] == 4
        numbers = [d.get("n") async for d in store._coll("post_revisions").find().sort("_id", 1)]
        assert numbers == [None, None, None, 4]
    finally:
        await discard(store)


@needs_server
async def test_pending_limit_is_exact_across_processes() -> None:
    """Two stores on one database (as two processes) schedule concurrently: the limit
    is checked in the allocation's compare-and-set, so together they never pass it;
    cancels free room."""
    from eventdocs.errors import LimitExceeded

    assert URL is not None
    url = fresh_url(URL)
    stores = [MongoStore(url, stale_after=2.0) for _ in range(2)]
    for store in stores:
        await store.open()
        await store.ensure_resource("post")
        await store.set_pending_limit("post", 10)
    try:
        now = stores[0].clock.now()
        later = now + 3600 * 1_000_000

        def schedule(i: int, action: str = "create", toa: int = 0) -> Any:
            draft = Draft(action=action, id=f"s{i}", body={}, toa=toa or later + i)
            return stores[i % 2].append("post", [draft])

        outcomes = await asyncio.gather(*(schedule(i) for i in range(30)), return_exceptions=True)
        appended = [o for o in outcomes if not isinstance(o, BaseException)]
        refused = [o for o in outcomes if isinstance(o, LimitExceeded)]
        assert (len(appended), len(refused)) == (10, 20)
        assert await stores[0].last_seq("post") == 10  # a refusal appended nothing
        targets = [a.events[0] for a in appended[:3]]
        cancels = [Draft(action="cancel", id=t.id, target=t.seq) for t in targets]
        await stores[1].append("post", cancels)
        for store in stores:
            assert await store.count_pending("post", now=now) == 7
        ids = [int(a.events[0].id[1:]) for a in appended]
        outcomes = await asyncio.gather(
            *(schedule(i, "update", later + 99) for i in ids), return_exceptions=True
        )
        assert sum(not isinstance(o, BaseException) for o in outcomes) == 3
        for store in stores:
            assert await store.count_pending("post", now=now) == 10
    finally:
        await stores[0].close()
        await discard(stores[1])
