"""The projector and scheduler: timing, restarts, replay and verify."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from blog import Post, PostsPerAuthor

from eventdocs.events import Draft
from eventdocs.projections.projector import Projector
from eventdocs.projections.replay import replay, verify
from eventdocs.service import Service
from eventdocs.storage import open_store
from eventdocs.storage.contract import Checkpoint, Document, HistoryWrite, ProjectionBatch
from eventdocs.storage.sqlite import SQLiteStore
from eventdocs.times import ManualClock, SystemClock

SECOND = 1_000_000
POST = {"title": "Hello", "blog": 1, "author": "ann"}


async def test_background_scheduler_wakes_at_the_toa_without_polling(clock: ManualClock) -> None:
    service = Service(open_store("memory:", clock=clock), [Post.spec()], clock=clock)
    async with service:
        posts = service.documents("post")
        result = await posts.create(POST, toa=clock.now() + 30 * SECOND)
        await asyncio.sleep(0)  # the scheduler recomputes its wake-up time
        for _ in range(50):
            if service.scheduler.next_toa == result.event.toa:
                break
            await asyncio.sleep(0.01)
        assert service.scheduler.next_toa == result.event.toa
        clock.advance(30 * SECOND)
        for _ in range(500):  # generous: the scheduler task runs as soon as it is woken
            await asyncio.sleep(0.01)
            if await service.store.get("post", result.event.id) is not None:
                break
        assert (await posts.get(result.event.id)).rev == 1


async def test_real_clock_write_applies_shortly_after_its_toa(tmp_path: Path) -> None:
    clock = SystemClock()
    service = Service(open_store(str(tmp_path / "s.db"), clock=clock), [Post.spec()], clock=clock)
    async with service:
        posts = service.documents("post")
        toa = clock.now() + 200_000  # 0.2 s ahead
        result = await posts.create(POST, toa=toa)
        deadline = time.monotonic() + 10  # a generous bound, not a timing assertion
        while time.monotonic() < deadline:
            if await service.store.get("post", result.event.id) is not None:
                break
            await asyncio.sleep(0.01)
        doc = await posts.get(result.event.id)
        assert doc.updated == toa


async def test_restart_projects_what_was_appended_but_not_projected(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = str(tmp_path / "s.db")
    store = open_store(path, clock=clock)
    await store.open()
    await store.ensure_resource("post")
    await store.append("post", [Draft(action="create", id="a", body=POST)])
    await store.append("post", [Draft(action="update", id="a", body={"title": "x"})])
    await store.close()
    service = Service(open_store(path, clock=clock), [Post.spec()], clock=clock, background=False)
    async with service:
        doc = await service.documents("post").get("a")
        assert (doc.rev, doc.data["title"]) == (2, "x")
        assert await verify(service.store, ["post"]) == []


async def test_a_failing_event_does_not_stop_the_projector(clock: ManualClock) -> None:
    service = Service(
        open_store("memory:", clock=clock), [Post.spec()], clock=clock, background=False
    )
    async with service:
        store = service.store
        # Written straight to the log, as a second writer might: a create of an existing id.
        await store.append("post", [Draft(action="create", id="a", body=POST)] * 2)
        await store.append("post", [Draft(action="update", id="a", body={"title": "y"})])
        await service.scheduler.run_once()
        doc = await service.documents("post").get("a")
        assert (doc.rev, doc.data["title"]) == (2, "y")
        outcomes = [r.outcome for r in await service.documents("post").revisions("a")]
        assert outcomes == ["applied", "failed", "applied"]


async def test_replay_restores_a_corrupted_projection_and_verify_sees_it(
    service: Service, clock: ManualClock
) -> None:
    posts = service.documents("post")
    ids = [(await posts.create({**POST, "blog": i})).event.id for i in range(7)]
    await posts.update(ids[0], {"title": "changed"})
    await posts.delete(ids[1])
    await posts.update(ids[2], {"title": "later"}, toa=clock.now() + SECOND)
    store = service.store
    checkpoint = await store.read_checkpoint("post")
    wrong = Document(ids[3], {"title": "tampered"}, 9, 0, 0)
    await store.write_projection("post", ProjectionBatch(checkpoint, upserts=[wrong]))
    diffs = await verify(store, ["post"], [PostsPerAuthor()])
    assert [(d.collection, d.id) for d in diffs] == [("master", ids[3])]
    counted: list[int] = []
    events = await replay(store, "post", now=clock.now(), progress=counted.append, chunk=3)
    assert events == sum(counted) == 10
    assert await verify(store, ["post"], [PostsPerAuthor()]) == []
    assert (await posts.get(ids[0])).data["title"] == "changed"
    clock.advance(SECOND)
    await service.scheduler.run_once()
    assert (await posts.get(ids[2])).data["title"] == "later"


async def test_a_new_view_is_built_from_existing_documents(clock: ManualClock) -> None:
    store = open_store("memory:", clock=clock)
    plain = Service(store, [Post.spec()], clock=clock, background=False)
    await plain.start()
    await plain.documents("post").create(POST)
    await plain.documents("post").create({**POST, "author": "bob"})
    with_view = Service(
        store, [Post.spec()], views=[PostsPerAuthor()], clock=clock, background=False
    )
    await with_view.start()
    assert await store.read_view("posts_per_author") == {
        "ann": {"author": "ann", "posts": 1},
        "bob": {"author": "bob", "posts": 1},
    }
    assert await verify(store, ["post"], [PostsPerAuthor()]) == []


async def test_a_replay_cut_short_leaves_the_views_right_after_a_restart(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = str(tmp_path / "s.db")

    def service() -> Service:
        store = open_store(path, clock=clock)
        return Service(
            store, [Post.spec()], views=[PostsPerAuthor()], clock=clock, background=False
        )

    async with service() as first:
        posts = first.documents("post")
        for author in ["ann", "ann", "bob"]:
            await posts.create({**POST, "author": author})
        store = first.store
        # What a replay killed after its first chunk leaves: rows of some documents
        # and the zero checkpoint; the views still count every document.
        kept = (await store.scan("post", limit=1))[0]
        history = [HistoryWrite(kept.id, 1, await store.read_history("post", kept.id))]
        await store.reset_projection("post")
        await store.write_projection("post", ProjectionBatch(Checkpoint(), history, [kept]))
    async with service() as restarted:
        assert await restarted.store.read_view("posts_per_author") == {
            "ann": {"author": "ann", "posts": 2},
            "bob": {"author": "bob", "posts": 1},
        }
        assert await verify(restarted.store, ["post"], [PostsPerAuthor()]) == []


class _Raced(SQLiteStore):
    """A store on which another projector takes its first step at a chosen moment."""

    first: Projector | None = None

    async def last_seq(self, resource: str) -> int:
        if self.first is not None:
            first, self.first = self.first, None
            await first.project(resource)
        return await super().last_seq(resource)


async def test_a_projector_that_read_the_zero_checkpoint_keeps_another_ones_first_step(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Two processes start on a log nobody projected yet: the later one must not clear
    (and then count again) what the earlier one has just projected."""
    store = _Raced(tmp_path / "s.db", clock=clock)
    await store.open()
    await store.ensure_resource("post", Post.spec().indexes())
    await store.ensure_view(PostsPerAuthor.name)
    await store.append(
        "post", [Draft(action="create", id=a, body={**POST, "author": a}) for a in "abc"]
    )
    first, second = (Projector(store, clock, [PostsPerAuthor()]) for _ in range(2))
    store.first = first  # its whole step lands after `second` read the zero checkpoint
    await second.project("post")
    assert await store.read_checkpoint("post") == Checkpoint(3, clock.now())
    assert await store.read_view("posts_per_author") == {
        a: {"author": a, "posts": 1} for a in "abc"
    }
    assert await verify(store, ["post"], [PostsPerAuthor()]) == []
    await store.close()


async def test_listeners_hear_each_move_of_the_projection(
    tmp_path: Path, clock: ManualClock
) -> None:
    service = Service(open_store(str(tmp_path / "s.db"), clock=clock), [Post.spec()], clock=clock)
    heard: list[tuple[str, int]] = []
    stop = service.projector.listen(lambda resource, cp: heard.append((resource, cp.seq)))
    async with service:
        posts = service.documents("post")
        now = await posts.create(POST)  # SQLite projects it in its append's transaction
        assert heard[-1] == ("post", now.event.seq)
        later = await posts.create(POST, toa=clock.now() + SECOND)  # a projector step
        assert heard[-1] == ("post", later.event.seq)
        stop()
        before = list(heard)
        await posts.create(POST)
        assert heard == before
