"""The store contract: every backend passes this one suite."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventdocs.errors import InvalidRequest, KeyReused, NotFound, Stale
from eventdocs.events import Cancel, Draft, Update
from eventdocs.query import OPERATORS, Filter, Kind, Query, SortKey, matches, sort_documents
from eventdocs.storage import (
    Appended,
    Checkpoint,
    Document,
    EventStore,
    Guard,
    Head,
    HistoryWrite,
    IndexSpec,
    ProjectionBatch,
    ViewWrite,
)
from eventdocs.times import ManualClock
from stores import BACKENDS, dispose, make_store

T0 = 1_700_000_000_000_000


def create(id: str, toa: int | None = None, **body: Any) -> Draft:
    return Draft(action="create", id=id, body=body, toa=toa)


def update(id: str, toa: int | None = None, **body: Any) -> Draft:
    return Draft(action="update", id=id, body=body, toa=toa)


def cancel(id: str, target: int) -> Draft:
    return Draft(action="cancel", id=id, target=target)


def doc(id: str, rev: int, updated: int, data: dict[str, Any] | None, **kw: Any) -> Document:
    return Document(id, data, rev, updated, seq=rev, **kw)


def linked(rows: list[Document]) -> list[Document]:
    """``rows`` each valid until the next one's TOA, as the projector writes them."""
    ends = [r.updated for r in rows[1:]] + [None]
    return [msgspec.structs.replace(r, valid_to=e) for r, e in zip(rows, ends, strict=False)]


# -- the log ------------------------------------------------------------------------


async def test_append_assigns_seq_and_a_recorded_at_that_never_goes_back(
    store: EventStore, clock: Any
) -> None:
    first = await store.append("post", [create("a", title="x"), update("a", toa=T0 + 500, n=1)])
    assert not first.replayed
    assert [e.seq for e in first.events] == [1, 2]
    assert [e.recorded_at for e in first.events] == [T0, T0]
    assert [e.toa for e in first.events] == [T0, T0 + 500]
    assert first.events[0].resource == "post"
    clock.rewind(1000)
    (back,) = (await store.append("post", [cancel("a", 2)])).events
    assert isinstance(back, Cancel)
    assert (back.seq, back.recorded_at, back.toa, back.target) == (3, T0, T0, 2)
    clock.advance(2000)
    (later,) = (await store.append("post", [update("a", n=2)])).events
    assert (later.seq, later.recorded_at) == (4, T0 + 1000)
    assert await store.last_seq("post") == 4
    assert await store.read_log("post") == [*first.events, back, later]


async def test_concurrent_appends_are_each_atomic_and_in_order(store: EventStore) -> None:
    calls = [[create(f"d{i}-{j}", i=i, j=j) for j in range(3)] for i in range(40)]
    results = await asyncio.gather(*(store.append("post", drafts) for drafts in calls))
    for drafts, result in zip(calls, results, strict=True):
        seqs = [e.seq for e in result.events]
        assert seqs == list(range(seqs[0], seqs[0] + 3))
        assert [e.id for e in result.events] == [d.id for d in drafts]
    log = await store.read_log("post", limit=10_000)
    assert [e.seq for e in log] == list(range(1, 121))
    assert {e.seq: e for r in results for e in r.events} == {e.seq: e for e in log}


async def test_an_idempotency_key_replays_the_first_call(store: EventStore) -> None:
    await store.ensure_resource("other")
    assert await store.find_idempotent("post", "k1") is None
    first = await store.append("post", [create("a"), create("b")], idempotency_key="k1")
    again = await store.append("post", [create("c")], idempotency_key="k1")
    assert again.replayed and again.events == first.events
    assert await store.find_idempotent("post", "k1") == first.events
    assert await store.last_seq("post") == 2
    elsewhere = await store.append("other", [create("a")], idempotency_key="k1")
    assert not elsewhere.replayed and elsewhere.events[0].seq == 1
    racing = await asyncio.gather(
        *(store.append("post", [create(f"r{i}")], idempotency_key="k2") for i in range(5))
    )
    assert sum(not r.replayed for r in racing) == 1
    assert all(r.events == racing[0].events for r in racing)
    assert await store.last_seq("post") == 3


async def test_an_idempotency_key_with_another_fingerprint_is_refused(store: EventStore) -> None:
    await store.ensure_resource("post")
    first = await store.append("post", [create("a")], idempotency_key="k", fingerprint="f1")
    again = await store.append("post", [create("z")], idempotency_key="k", fingerprint="f1")
    assert again.replayed and again.events == first.events
    with pytest.raises(KeyReused):
        await store.append("post", [create("b")], idempotency_key="k", fingerprint="f2")
    with pytest.raises(KeyReused):
        await store.find_idempotent("post", "k", fingerprint="f2")
    assert await store.find_idempotent("post", "k", fingerprint="f1") == first.events
    assert await store.last_seq("post") == 1


async def test_concurrent_first_uses_of_a_key_are_decided_by_the_store(store: EventStore) -> None:
    await store.ensure_resource("post")
    calls = [
        store.append("post", [create(f"d{i}")], idempotency_key="k", fingerprint=f"f{i % 2}")
        for i in range(6)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    appended = [r for r in results if isinstance(r, Appended) and not r.replayed]
    assert len(appended) == 1 and await store.last_seq("post") == 1
    winner = appended[0].events[0].id
    for i, result in enumerate(results):
        same = int(winner[1:]) % 2 == i % 2
        assert isinstance(result, Appended if same else KeyReused)


async def test_heads_and_guards_decide_appends(store: EventStore, clock: ManualClock) -> None:
    await store.ensure_resource("post")
    assert await store.read_head("post", "a", after_toa=T0) == Head()
    await store.append("post", [create("a")], guards=[Guard("a", 0)])
    with pytest.raises(Stale):  # "a" has an event now: a second create decided on none
        await store.append("post", [create("a")], guards=[Guard("a", 0)])
    await store.append("post", [update("a", toa=T0 + 100, n=1), update("b", n=2)])
    assert await store.read_head("post", "a", after_toa=T0) == Head(2, T0 + 100)
    assert await store.read_head("post", "a", after_toa=T0 + 100) == Head(2, None)
    # A guard whose document's next write is due before the append is recorded fails.
    clock.advance(100)
    with pytest.raises(Stale):
        await store.append("post", [update("a", n=3)], guards=[Guard("a", 2, before=T0 + 100)])
    ok = await store.append("post", [update("a", n=3)], guards=[Guard("a", 2, before=T0 + 101)])
    assert ok.events[0].seq == 4
    # One failing guard appends nothing of the call, even for the other documents.
    with pytest.raises(Stale):
        await store.append(
            "post", [update("a", n=4), update("b", n=4)], guards=[Guard("a", 4), Guard("b", 1)]
        )
    assert await store.last_seq("post") == 4
    # A write cancelled before its TOA is no next write; a later one is.
    now = clock.now()
    await store.append("post", [update("a", toa=now + 50, n=9), update("a", toa=now + 70, n=8)])
    await store.append("post", [cancel("a", 5)])
    assert await store.read_head("post", "a", after_toa=now) == Head(7, now + 70)


async def test_concurrent_guarded_appends_on_one_head_let_one_through(store: EventStore) -> None:
    await store.ensure_resource("post")
    await store.append("post", [create("a")])
    calls = [store.append("post", [update("a", n=i)], guards=[Guard("a", 1)]) for i in range(5)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert sum(isinstance(r, Appended) for r in results) == 1
    assert sum(isinstance(r, Stale) for r in results) == 4
    assert await store.last_seq("post") == 2


async def test_a_step_that_missed_an_event_recorded_in_its_time_is_refused(
    store: EventStore, clock: ManualClock
) -> None:
    await store.ensure_resource("post")
    await store.append("post", [create("a")])  # recorded at T0, seq 1
    clock.advance(10)
    await store.append("post", [create("b")])  # recorded at T0 + 10, seq 2
    # A step that read only seq 1 must not project past T0 + 10: it missed seq 2.
    blind = ProjectionBatch(Checkpoint(1, T0 + 20), base=Checkpoint())
    assert not await store.write_projection("post", blind)
    careful = ProjectionBatch(Checkpoint(1, T0 + 9), base=Checkpoint())
    assert await store.write_projection("post", careful)
    # Having seen it, a step may project past it.
    assert await store.write_projection(
        "post", ProjectionBatch(Checkpoint(2, T0 + 30), base=Checkpoint(1, T0 + 9))
    )


async def test_load_imports_events_verbatim_or_nothing(store: EventStore) -> None:
    await store.ensure_resource("copy")
    source = (await store.append("post", [create("a", t=1), update("a", toa=T0 + 9, t=2)])).events
    source += (await store.append("post", [cancel("a", 2)])).events
    with pytest.raises(InvalidRequest):
        await store.load("copy", source[1:])
    await store.load("copy", source[:1])
    with pytest.raises(InvalidRequest):
        await store.load("copy", [source[2], source[1]])
    await store.load("copy", source[1:])
    assert await store.read_log("copy") == source
    (after,) = (await store.append("copy", [update("a", t=3)])).events
    assert after.seq == 4 and after.recorded_at >= source[-1].recorded_at


async def test_load_stream_continues_logs_and_refuses_what_appends_could_not_write(
    store: EventStore,
) -> None:
    source = (await store.append("post", [create("a"), update("a", toa=T0 + 9, t=2)])).events
    source += (await store.append("post", [cancel("a", 2), create("b")])).events
    copy = [msgspec.structs.replace(e, resource="copy") for e in source]
    assert await store.load_stream(iter(copy)) == {"copy": 4}
    assert "copy" in await store.resources()
    assert await store.read_log("copy") == copy
    assert (await store.read_revisions("copy", "a", limit=0))[0] == 3  # counted as appended
    last = copy[-1]
    bad = {
        "seq": msgspec.structs.replace(last, seq=6, id="z"),
        "recorded_at": msgspec.structs.replace(last, seq=5, recorded_at=last.recorded_at - 1),
        "target": Cancel(
            seq=5, resource="copy", id="b", toa=last.toa, recorded_at=last.toa, target=2
        ),
        "toa": Cancel(
            seq=5, resource="copy", id="a", toa=last.toa - 1, recorded_at=last.toa, target=2
        ),
    }
    for path, event in bad.items():
        with pytest.raises(InvalidRequest) as refused:
            await store.load_stream(iter([event]))
        assert refused.value.errors[0].path == path
    missing = Cancel(seq=5, resource="copy", id="a", toa=last.toa, recorded_at=last.toa, target=9)
    with pytest.raises(InvalidRequest):
        await store.load_stream([missing])
    assert await store.last_seq("copy") == 4


async def test_unknown_resources_are_not_found(store: EventStore) -> None:
    with pytest.raises(NotFound):
        await store.append("nope", [create("a")])
    with pytest.raises(NotFound):
        await store.read_log("nope")
    with pytest.raises(NotFound):
        await store.query("nope", Query())
    assert await store.resources() == ["post"]


async def test_reads_of_the_log(store: EventStore, clock: ManualClock) -> None:
    for i in range(5):
        await store.append("post", [create(f"d{i}"), update("d0", toa=T0 - i, i=i)])
        clock.advance(10)
    log = await store.read_log("post", limit=100)
    assert [e.seq for e in log] == list(range(1, 11))
    assert await store.read_log("post", after=3, limit=2) == log[3:5]
    assert await store.read_log("post", after=10) == []
    assert await store.read_event("post", 4) == log[3]
    assert await store.read_event("post", 11) is None
    assert await store.read_event("post", 0) is None
    assert [e.seq for e in await store.read_document("post", "d0")] == [1, 2, 4, 6, 8, 10]
    assert await store.read_document("post", "zz") == []
    # In valid-time order, paged: the same as sorting the whole document.
    valid = sorted(await store.read_document("post", "d0"), key=lambda e: (e.toa, e.seq))
    assert await store.read_revisions("post", "d0", limit=100) == (6, valid)
    assert await store.read_revisions("post", "d0", limit=2, offset=3) == (6, valid[3:5])
    for k in range(len(valid)):  # past a cursor: the same as slicing the whole list
        cursor = (valid[k].toa, valid[k].seq)
        assert await store.read_revisions("post", "d0", limit=2, after=cursor) == (
            6,
            valid[k + 1 : k + 3],
        )
        assert await store.read_revisions("post", "d0", limit=9, offset=1, after=cursor) == (
            6,
            valid[k + 2 :],
        )
    assert await store.read_revisions("post", "zz", limit=5) == (0, [])
    start = valid[2]
    assert await store.read_from("post", "d0", toa=start.toa, seq=start.seq) == valid[2:]
    by_doc = [(e.id, e.seq) for e in await store.read_log_by_document("post", limit=100)]
    assert by_doc == sorted((e.id, e.seq) for e in log)
    page = await store.read_log_by_document("post", after="d0", limit=3)
    assert [(e.id, e.seq) for e in page] == [("d1", 3), ("d2", 5), ("d3", 7)]
    # Only the cancels that took a write: not one of a write in effect, nor of another
    # document's write, nor a second one; loaded cancels are decided the same way.
    (later,) = (await store.append("post", [update("d0", toa=T0 + 10**6, n=1)])).events  # 11
    cancels = [cancel("d0", 4), cancel("d1", later.seq), cancel("d0", later.seq)]
    await store.append("post", [*cancels, cancel("d0", later.seq)])  # 12-15
    assert [c.seq for c in await store.read_cancels("post", [4, later.seq, 99])] == [14]
    await store.ensure_resource("copy")
    await store.load("copy", [msgspec.structs.replace(e, resource="copy") for e in log])
    copied = await store.read_log("post", after=10)
    await store.load("copy", [msgspec.structs.replace(e, resource="copy") for e in copied])
    assert [c.seq for c in await store.read_cancels("copy", [4, later.seq, 99])] == [14]
    for doc_id in ("d0", "d1", "zz"):  # loaded events are counted as appended ones
        counted = (await store.read_revisions("copy", doc_id, limit=0))[0]
        assert counted == (await store.read_revisions("post", doc_id, limit=0))[0]
        assert counted == len(await store.read_document("post", doc_id))
    for r in ("post", "copy"):
        assert await store.read_due(r, after_toa=T0 + 100, until_toa=2**62, max_seq=15) == []


async def test_pending_pages_by_offset_or_cursor_as_the_whole_list(
    store: EventStore, clock: ManualClock
) -> None:
    now = clock.now()
    # TOAs with ties, appended out of TOA order, one cancelled, one already due.
    toas = [now + 50, now + 10, now + 50, now + 30, now + 10, now - 5, now + 70]
    for i, toa in enumerate(toas):
        await store.append("post", [create(f"s{i}", toa=toa)])
    await store.append("post", [cancel("s3", 4)])
    pending = await store.read_pending("post", now=now, limit=100)
    assert [(e.toa - now, e.seq) for e in pending] == [(10, 2), (10, 5), (50, 1), (50, 3), (70, 7)]
    assert await store.count_pending("post", now=now) == 5
    for k, e in enumerate(pending):
        cursor = (e.toa, e.seq)
        assert (
            await store.read_pending("post", now=now, limit=2, after=cursor)
            == pending[k + 1 : k + 3]
        )
        assert (
            await store.read_pending("post", now=now, limit=9, offset=1, after=cursor)
            == (pending[k + 2 :])
        )
        assert await store.read_pending("post", now=now, limit=2, offset=k) == pending[k : k + 2]


async def test_due_writes_skip_cancels_that_came_in_time(
    store: EventStore, clock: ManualClock
) -> None:
    log = [
        *(await store.append("post", [create("a"), create("b"), create("c")])).events,  # 1-3
        *(await store.append("post", [update("a", toa=T0 + 100, n=1)])).events,  # 4
        *(await store.append("post", [update("b", toa=T0 + 50, n=2)])).events,  # 5
        *(await store.append("post", [update("c", toa=T0 + 10, n=3)])).events,  # 6
        *(await store.append("post", [update("c", toa=T0 - 10, n=4)])).events,  # 7 backdated
        *(await store.append("post", [cancel("a", 4)])).events,  # 8: cancels 4
        *(await store.append("post", [cancel("a", 5)])).events,  # 9: other document
    ]
    clock.advance(20)
    log += (await store.append("post", [cancel("c", 6)])).events  # 10: too late
    log += (await store.append("post", [update("a", toa=T0 + 100, n=5)])).events  # 11

    async def due(after: int, until: int, max_seq: int, limit: int | None = None) -> list[int]:
        events = await store.read_due(
            "post", after_toa=after, until_toa=until, max_seq=max_seq, limit=limit
        )
        count = await store.count_due("post", after_toa=after, until_toa=until, max_seq=max_seq)
        if limit is None:
            assert count == len(events)
        return [e.seq for e in events]

    everything = (-(2**62), 2**62)
    assert await due(*everything, 100) == [7, 1, 2, 3, 6, 5, 11]
    assert await due(*everything, 7) == [7, 1, 2, 3, 6, 5, 4]  # the cancel is not yet known
    assert await due(T0, T0 + 60, 100) == [6, 5]
    assert await due(T0 + 10, T0 + 100, 100) == [5, 11]
    assert await due(*everything, 100, limit=3) == [7, 1, 2]
    assert await due(T0 + 100, T0 + 200, 100) == []
    next_toa = store.next_toa
    assert await next_toa("post", after_toa=T0, max_seq=100) == T0 + 10
    assert await next_toa("post", after_toa=T0 + 50, max_seq=100) == T0 + 100
    assert await next_toa("post", after_toa=T0 + 50, max_seq=7) == T0 + 100
    assert await next_toa("post", after_toa=T0 + 100, max_seq=100) is None
    heads = await store.read_heads("post", ["a", "b", "c", "zz"], max_seq=100)
    assert heads == {"a": (T0 + 100, 11), "b": (T0 + 50, 5), "c": (T0 + 10, 6)}
    assert await store.read_heads("post", ["a", "c"], max_seq=3) == {"a": (T0, 1), "c": (T0, 3)}
    assert isinstance(log[3], Update)


# -- projections -----------------------------------------------------------------------


def batch(seq: int, **kw: Any) -> ProjectionBatch:
    return ProjectionBatch(checkpoint=Checkpoint(seq, T0 + seq), **kw)


async def test_projection_writes_history_master_and_checkpoint(store: EventStore) -> None:
    assert await store.read_checkpoint("post") == Checkpoint()
    a1, a2 = doc("a", 1, T0, {"n": 1}, valid_to=T0 + 5), doc("a", 2, T0 + 5, {"n": 2})
    b1, b2 = doc("b", 1, T0, {"n": 3}, valid_to=T0 + 5), doc("b", 2, T0 + 5, None)
    await store.write_projection(
        "post",
        batch(
            4,
            history=[HistoryWrite("a", 1, [a1, a2]), HistoryWrite("b", 1, [b1, b2])],
            upserts=[a2, b1],
        ),
    )
    assert await store.read_checkpoint("post") == Checkpoint(4, T0 + 4)
    assert await store.read_history("post", "a") == [a1, a2]  # written as given
    assert await store.get("post", "a") == a2
    assert await store.get("post", "zz") is None
    # A write replaces the rows from its first one's rev: one that ends the row before
    # starts from it; the rows below stay as they were.
    a2e, a3 = doc("a", 2, T0 + 5, {"n": 2}, valid_to=T0 + 9), doc("a", 3, T0 + 9, {"n": 3})
    b1e = doc("b", 1, T0, {"n": 3}, valid_to=T0 + 3)
    b2c = doc("b", 2, T0 + 3, {"n": 4}, valid_to=T0 + 8)
    b3c = doc("b", 3, T0 + 8, {"n": 5})
    await store.write_projection(
        "post",
        batch(
            9,
            history=[HistoryWrite("a", 2, [a2e, a3]), HistoryWrite("b", 1, [b1e, b2c, b3c])],
            upserts=[a3, b3c],
            deletes=["zz"],
        ),
    )
    assert [r.valid_to for r in await store.read_history("post", "a")] == [T0 + 5, T0 + 9, None]
    assert await store.read_history("post", "b") == [
        doc("b", 1, T0, {"n": 3}, valid_to=T0 + 3),
        doc("b", 2, T0 + 3, {"n": 4}, valid_to=T0 + 8),
        doc("b", 3, T0 + 8, {"n": 5}),
    ]
    tails = await store.history_tails("post", ["a", "b", "zz"])
    assert tails == {"a": a3, "b": b3c}
    b2o = doc("b", 2, T0 + 3, {"n": 4})
    await store.write_projection("post", batch(9, history=[HistoryWrite("b", 2, [b2o])]))
    assert (await store.history_tails("post", ["b"]))["b"] == b2o  # truncated, ended anew
    # The reads bounded by the answer agree with the whole history.
    history = await store.read_history("post", "a")
    assert await store.history_rev("post", "a", 2) == history[1]
    assert await store.history_rev("post", "a", 7) is None
    assert await store.history_before("post", "a", toa=T0 + 5, seq=a2.seq) == history[0]
    assert await store.history_before("post", "a", toa=T0 + 5, seq=a2.seq + 1) == history[1]
    assert await store.history_before("post", "a", toa=T0, seq=a1.seq) is None
    assert await store.history_span("post", "a", start=T0 + 1, end=T0 + 9) == history[1:]
    at = await store.history_at_many("post", ["a", "b", "zz"], toa=T0 + 4)
    assert at == {"a": history[0], "b": (await store.read_history("post", "b"))[1]}
    await store.write_projection("post", batch(9, history=[HistoryWrite("b", 2, [b2c, b3c])]))
    assert await store.history_at("post", "a", toa=T0 - 1) is None
    assert (await store.history_at("post", "a", toa=T0 + 5)).rev == 2  # type: ignore[union-attr]
    assert (await store.history_at("post", "a", toa=T0 + 8)).rev == 2  # type: ignore[union-attr]
    assert (await store.history_at("post", "a", toa=2**62)).rev == 3  # type: ignore[union-attr]
    await store.write_projection("post", batch(10, deletes=["a"], upserts=[b2c]))
    assert [d.id for d in await store.scan("post")] == ["b"]
    assert await store.get("post", "b") == b2c
    assert await store.read_checkpoint("post") == Checkpoint(10, T0 + 10)
    await store.reset_projection("post")
    assert await store.read_checkpoint("post") == Checkpoint()
    assert await store.scan("post") == []
    assert await store.read_history("post", "a") == []
    assert await store.scan_history("post") == []


async def test_a_batch_computed_from_another_checkpoint_writes_nothing(
    store: EventStore,
) -> None:
    """Two projectors that raced: the second one's batch is dropped whole."""
    await store.ensure_view("v")
    row = doc("a", 1, T0, {"n": 1})
    first = batch(1, history=[HistoryWrite("a", 1, [row])], upserts=[row], base=Checkpoint())
    assert await store.write_projection("post", first)
    twice = doc("a", 1, T0, {"n": 2})
    again = batch(2, history=[HistoryWrite("a", 1, [twice])], upserts=[twice], base=Checkpoint())
    view = ViewWrite(puts={"k": {"n": 2}}, checkpoint={"post": Checkpoint(2, T0 + 2)})
    assert not await store.write_projection(
        "post", msgspec.structs.replace(again, views={"v": view})
    )
    assert await store.read_checkpoint("post") == Checkpoint(1, T0 + 1)
    assert await store.get("post", "a") == row
    assert await store.read_history("post", "a") == [row]
    assert await store.read_view("v") == {}
    # Without a base, a batch may rewrite its own checkpoint but never go back.
    assert await store.write_projection("post", batch(1))
    assert not await store.write_projection("post", batch(0, upserts=[twice]))
    assert await store.get("post", "a") == row
    assert await store.write_projection("post", batch(3, base=Checkpoint(1, T0 + 1)))
    assert await store.read_checkpoint("post") == Checkpoint(3, T0 + 3)


async def test_a_reset_with_a_base_happens_only_at_that_checkpoint(store: EventStore) -> None:
    row = doc("a", 1, T0, {"n": 1})
    await store.write_projection(
        "post", batch(1, history=[HistoryWrite("a", 1, [row])], upserts=[row])
    )
    assert not await store.reset_projection("post", base=Checkpoint())
    assert await store.get("post", "a") == row
    assert await store.reset_projection("post", base=Checkpoint(1, T0 + 1))
    assert await store.read_checkpoint("post") == Checkpoint()
    assert await store.scan("post") == [] and await store.read_history("post", "a") == []


async def test_deleted_rows_count_in_history_at_but_not_in_query_history(
    store: EventStore,
) -> None:
    rows = [doc("a", 1, T0, {"n": 1}), doc("a", 2, T0 + 5, None), doc("a", 3, T0 + 9, {"n": 3})]
    await store.write_projection("post", batch(3, history=[HistoryWrite("a", 1, linked(rows))]))
    deleted = await store.history_at("post", "a", toa=T0 + 6)
    assert deleted is not None and deleted.data is None and deleted.rev == 2
    for toa, expected in [(T0 - 1, []), (T0, [1]), (T0 + 5, []), (T0 + 8, []), (T0 + 9, [3])]:
        total, page = await store.query_history("post", Query(), toa=toa)
        assert (total, [d.rev for d in page]) == (len(expected), expected)


async def test_scans_page_by_id_and_never_split_a_document(store: EventStore) -> None:
    revs = {"a": 3, "b": 1, "c": 2, "d": 4, "e": 1}
    history = [
        HistoryWrite(i, 1, linked([doc(i, r, T0 + r, {"r": r}) for r in range(1, n + 1)]))
        for i, n in revs.items()
    ]
    upserts = [doc(i, n, T0 + n, {"r": n}) for i, n in revs.items()]
    await store.write_projection("post", batch(1, history=history, upserts=upserts))
    assert [d.id for d in await store.scan("post", limit=2)] == ["a", "b"]
    assert [d.id for d in await store.scan("post", after="b", limit=10)] == ["c", "d", "e"]

    async def ids(after: str, limit: int) -> list[tuple[str, int]]:
        return [(d.id, d.rev) for d in await store.scan_history("post", after=after, limit=limit)]

    assert await ids("", 4) == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    assert await ids("", 5) == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    assert await ids("", 2) == [("a", 1), ("a", 2), ("a", 3)]  # the first one whole
    assert await ids("", 0) == [("a", 1), ("a", 2), ("a", 3)]
    assert await ids("b", 3) == [("c", 1), ("c", 2)]
    assert await ids("c", 100) == [("d", r) for r in range(1, 5)] + [("e", 1)]
    assert await ids("e", 100) == []


async def test_views_put_delete_checkpoint_and_reset(store: EventStore) -> None:
    assert await store.read_view("counts") == {}
    assert await store.view_checkpoints("counts") == {}
    await store.ensure_view("counts")
    write = ViewWrite(
        puts={"alice": {"n": 2}, "bob": {"n": 1, "tags": ["x"]}},
        checkpoint={"post": Checkpoint(3, T0)},
    )
    await store.write_projection("post", batch(3, views={"counts": write}))
    assert await store.read_view("counts") == {"alice": {"n": 2}, "bob": {"n": 1, "tags": ["x"]}}
    assert await store.read_view("counts", ["bob", "zed"]) == {"bob": {"n": 1, "tags": ["x"]}}
    assert await store.read_view("counts", []) == {}
    write = ViewWrite(
        puts={"alice": {"n": 3}, "carol": {"n": 1}},
        deletes=["bob", "carol"],
        checkpoint={"post": Checkpoint(5, T0 + 1), "user": Checkpoint(1, T0)},
    )
    await store.write_projection("post", batch(5, views={"counts": write}))
    assert await store.read_view("counts") == {"alice": {"n": 3}}
    assert await store.view_checkpoints("counts") == {
        "post": Checkpoint(5, T0 + 1),
        "user": Checkpoint(1, T0),
    }
    await store.reset_view("counts")
    assert await store.read_view("counts") == {}
    assert await store.view_checkpoints("counts") == {}
    assert await store.read_checkpoint("post") == Checkpoint(5, T0 + 5)


# -- queries -----------------------------------------------------------------------------

DOCS: dict[str, dict[str, Any]] = {
    "a1": {
        "title": "Hello World",
        "n": 1,
        "price": "10.50",
        "at": "2024-01-01T00:00:00.000000Z",
        "flag": True,
        "meta": {"tag": "x", "k": 1},
        "tags": ["a"],
    },
    "a2": {
        "title": "hello",
        "n": 1.0,
        "price": "10.5",
        "at": "2023-12-31T23:59:59.999999Z",
        "flag": False,
        "meta": {"tag": "Y"},
    },
    "a3": {"title": "Straße", "n": True, "price": "9.99", "flag": None, "meta": None},
    "a4": {"title": "STRASSE", "n": "1", "price": "-0.5", "at": None, "meta": {"tag": None}},
    "a5": {"title": "İstanbul", "n": -2, "price": "1e2", "meta": "flat"},
    "a6": {"title": "", "n": 0, "price": "abc", "flag": 0},
    "a7": {"title": None, "n": 2.5, "price": 3, "at": "2024-06-01T12:00:00.000000Z"},
    "a8": {"n": None, "price": None, "title": "ÉCOLE école", "flag": True},
    "a9": {"title": {"nested": 1}, "n": [1], "price": "1.500", "flag": "true"},
    "b1": {"title": "wörld hello", "n": 10, "price": 10.5, "at": "2024-01-01T00:00:00.000000Z"},
    "b2": {},
    "b3": {"title": "100%_x", "n": False, "price": "0", "meta": {"tag": "x"}, "tags": []},
    "é4": {"title": "hello\U0001f600", "n": -0.5, "price": "-12", "meta": {"tag": "é"}},
}
FIELDS: list[tuple[str, Kind]] = [
    ("title", "text"),
    ("n", "integer"),
    ("n", "decimal"),
    ("price", "decimal"),
    ("price", "other"),
    ("at", "time"),
    ("flag", "boolean"),
    ("meta.tag", "text"),
    ("meta", "other"),
    ("id", "text"),
]
SCALARS: list[Any] = [
    None, True, False, 0, 1, 1.0, 2.5, -2, 10, -0.5, Decimal("10.5"), "1", "", "hello", "HELLO",
    "Hello World", "hell", "world", "WORLD", "straße", "STRASSE", "strasse", "i̇stanbul", "İ",
    "é", "ÉCOLE", "%", "_", "x", "Y", "o", "2024-01-01T00:00:00.000000Z", "2024", "a1", "é4",
    "10.50", "1e2", "3", "abc", "-12", "\U0001f600",
]  # fmt: skip
LISTS: list[list[Any]] = [[], ["hello", 1], [True, "x"], [1, None], [10.5, "Y", "a2"], ["0", 3]]
SORTS: list[tuple[SortKey, ...]] = [
    (),
    (SortKey("title", kind="text"),),
    (SortKey("title", True, "text"),),
    (SortKey("n", kind="integer"), SortKey("title", True, "text")),
    (SortKey("n", True, "integer"),),
    (SortKey("price", kind="decimal"),),
    (SortKey("price", True, "decimal"),),
    (SortKey("price", kind="other"),),
    (SortKey("meta.tag", kind="text"), SortKey("flag", True, "boolean")),
    (SortKey("id", True),),
    (SortKey("at", kind="time"),),
]
PAGES = [(1000, 0), (3, 0), (3, 2), (4, 10), (0, 0)]


def history_rows() -> dict[str, list[Document]]:
    """Two revisions per document: an older state at T0, DOCS at T0 + 10 (some deleted)."""
    rows = {}
    for i, (doc_id, data) in enumerate(DOCS.items()):
        old = {"title": f"old {doc_id}", "n": i} if i % 3 else None
        new = None if i % 5 == 4 else data
        rows[doc_id] = [doc(doc_id, 1, T0, old), doc(doc_id, 2, T0 + 10, new)]
    return rows


async def load(store: EventStore) -> None:
    await store.ensure_resource(
        "post", [IndexSpec(f, k) for f, k in FIELDS if f not in ("n", "price")]
    )
    history = [HistoryWrite(doc_id, 1, linked(rows)) for doc_id, rows in history_rows().items()]
    upserts = [doc(doc_id, 1, T0, data) for doc_id, data in DOCS.items()]
    await store.write_projection("post", batch(1, history=history, upserts=upserts))


def expected(rows: dict[str, dict[str, Any]], query: Query) -> tuple[int, list[tuple[str, Any]]]:
    hits = [(i, d) for i, d in rows.items() if matches(i, d, query.filters)]
    ordered = sort_documents(hits, query.sort)
    return len(hits), ordered[query.offset : query.offset + query.limit]


def alive_at(toa: int) -> dict[str, dict[str, Any]]:
    alive = {}
    for doc_id, rows in history_rows().items():
        live = [r for r in rows if r.updated <= toa]
        if live and live[-1].data is not None:
            alive[doc_id] = live[-1].data
    return alive


async def check(store: EventStore, query: Query) -> None:
    """The backend's query and query_history agree with the reference semantics."""
    for rows, toa in [(DOCS, None), (alive_at(T0 + 10), T0 + 10), (alive_at(T0 + 5), T0 + 5)]:
        try:
            want = expected(rows, query)
        except (TypeError, InvalidOperation):  # Python cannot order these: unspecified
            continue
        if toa is None:
            total, page = await store.query("post", query)
        else:
            total, page = await store.query_history("post", query, toa=toa)
        got = (total, [(d.id, d.data) for d in page])
        assert got == want, (query, toa)
        assert type(total) is int  # not a driver's subclass: it goes to the JSON encoder


async def test_every_operator_agrees_with_the_reference(store: EventStore) -> None:
    await load(store)
    for field, kind in FIELDS:
        for op in OPERATORS:
            if op == "null":
                values: list[Any] = [True, False]
            elif op in ("in", "notin"):
                values = LISTS
            elif op in ("gt", "gte", "lt", "lte"):
                values = SCALARS
            else:
                values = [*SCALARS, {"nested": 1}, [1], {"tag": "x", "k": 1}]
            for value in values:
                await check(store, Query((Filter(field, op, value, kind),), limit=1000))


async def test_sorts_and_pages_agree_with_the_reference(store: EventStore) -> None:
    await load(store)
    filters = [(), (Filter("title", "notin", ["hello"], "text"),), (Filter("n", "gte", 0),)]
    for sort in SORTS:
        for limit, offset in PAGES:
            for f in filters:
                await check(store, Query(f, sort, limit, offset))


# Hypothesis drives one loaded store per backend on a loop of its own, so examples
# need no fresh fixture each.

_scalar = st.one_of(
    st.sampled_from(SCALARS),
    st.integers(-20, 20),
    st.floats(-20, 20, allow_nan=False, width=32),
    st.decimals(-100, 100, places=2, allow_nan=False),
    st.text(st.sampled_from("aAhHeElLoOßSsİié%_ 1.0-\U0001f600"), max_size=4),
)
_filter = st.builds(
    lambda fk, op, scalar, many: Filter(
        fk[0],
        op,
        many if op in ("in", "notin") else bool(scalar) if op == "null" else scalar,
        fk[1],
    ),
    st.sampled_from(FIELDS),
    st.sampled_from(OPERATORS),
    _scalar,
    st.lists(_scalar, max_size=3),
)
_query = st.builds(
    Query,
    st.lists(_filter, max_size=3).map(tuple),
    st.sampled_from(SORTS),
    st.integers(0, 6),
    st.integers(0, 6),
)


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[asyncio.AbstractEventLoop, EventStore]]:
    loop = asyncio.new_event_loop()
    path = tmp_path_factory.mktemp(request.param)
    try:
        store = loop.run_until_complete(make_store(request.param, path))
    except BaseException:
        loop.close()
        raise
    loop.run_until_complete(load(store))
    yield loop, store
    loop.run_until_complete(dispose(store))
    loop.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=_query)
def test_random_queries_agree_with_the_reference(
    loaded: tuple[asyncio.AbstractEventLoop, EventStore], query: Query
) -> None:
    loop, store = loaded
    loop.run_until_complete(check(store, query))
