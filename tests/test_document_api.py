"""The document API end to end on each embedded store: every use case and error."""

from __future__ import annotations

from typing import Any

import pytest

from eventdocs.errors import (
    Conflict,
    InvalidRequest,
    KeyReused,
    LimitExceeded,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from eventdocs.query import Filter, Query, SortKey
from eventdocs.service import Service
from eventdocs.times import ManualClock

SECOND = 1_000_000


def post(**fields: Any) -> dict[str, Any]:
    return {"title": "Hello", "blog": 1, "author": "ann", **fields}


async def last_seq(service: Service) -> int:
    return await service.store.last_seq("post")


async def test_create_get_update_patch_delete(service: Service) -> None:
    posts = service.documents("post")
    created = await posts.create(post(tags=["a"]))
    doc_id = created.event.id
    assert created.document is not None and created.document.rev == 1
    assert (await posts.get(doc_id)).data["published"] is False  # the default
    updated = await posts.update(doc_id, {"title": "Hi", "author": None})
    assert updated.document is not None
    assert updated.document.data["title"] == "Hi" and updated.document.data["author"] is None
    patched = await posts.update(doc_id, {"author": "bob", "tags": None}, merge=True)
    assert patched.document is not None and "tags" not in patched.document.data
    assert (await posts.get(doc_id)).rev == 3
    await posts.delete(doc_id)
    with pytest.raises(NotFound):
        await posts.get(doc_id)
    assert [r.outcome for r in await posts.revisions(doc_id)] == ["applied"] * 4


async def test_client_cannot_choose_a_generated_id(service: Service) -> None:
    with pytest.raises(InvalidRequest):
        await service.documents("post").create(post(id="mine"))
    assert await last_seq(service) == 0


async def test_schema_violations_name_every_path_and_append_nothing(service: Service) -> None:
    posts = service.documents("post")
    with pytest.raises(ValidationFailed) as caught:
        await posts.create({"title": 5, "blog": "x", "nope": 1})
    paths = {e.path for e in caught.value.errors}
    assert {"/title", "/blog", "/nope"} <= paths
    doc_id = (await posts.create(post())).event.id
    with pytest.raises(ValidationFailed):
        await posts.update(doc_id, {"title": None}, merge=True)  # required
    with pytest.raises(ValidationFailed):
        await posts.update(doc_id, {"blog": "many"})
    assert await last_seq(service) == 1


async def test_missing_documents_and_conflicts(service: Service) -> None:
    posts = service.documents("post")
    for call in (
        posts.update("nope", {"title": "x"}),
        posts.delete("nope"),
        posts.revert("nope", to_revision=1),
        posts.get("nope"),
        posts.at_revision("nope", 1),
    ):
        with pytest.raises(NotFound):
            await call
    with pytest.raises(NotFound):
        await posts.cancel(99)
    assert await last_seq(service) == 0


async def test_if_match(service: Service) -> None:
    posts = service.documents("post")
    doc_id = (await posts.create(post())).event.id
    with pytest.raises(PreconditionFailed):
        await posts.update(doc_id, {"title": "x"}, if_match=7)
    with pytest.raises(PreconditionFailed):
        await posts.delete(doc_id, if_match=2)
    assert await last_seq(service) == 1
    result = await posts.update(doc_id, {"title": "x"}, if_match=1)
    assert result.document is not None and result.document.rev == 2


async def test_idempotency_key_replays_the_first_response(service: Service) -> None:
    posts = service.documents("post")
    first = await posts.create(post(), idempotency_key="k1")
    again = await posts.create(post(), idempotency_key="k1")
    assert again.replayed and again.event == first.event and again.document == first.document
    with pytest.raises(KeyReused):  # the same key with another request decides nothing
        await posts.create(post(title="Other"), idempotency_key="k1")
    assert await last_seq(service) == 1


async def test_scheduled_write_previews_and_applies_on_time(
    service: Service, clock: ManualClock
) -> None:
    posts = service.documents("post")
    doc_id = (await posts.create(post())).event.id
    due = clock.now() + 60 * SECOND
    scheduled = await posts.update(doc_id, {"title": "Later"}, toa=due)
    assert scheduled.scheduled and scheduled.document is not None
    assert scheduled.document.data["title"] == "Later"  # the preview at its TOA
    assert (await posts.get(doc_id)).data["title"] == "Hello"
    assert (await posts.get(doc_id, as_of=due)).data["title"] == "Later"
    total, pending = await posts.scheduled()
    assert total == 1 and pending[0].seq == scheduled.event.seq
    clock.advance(59 * SECOND)
    await service.scheduler.run_once()
    assert (await posts.get(doc_id)).data["title"] == "Hello"
    clock.advance(1 * SECOND)
    await service.scheduler.run_once()
    assert (await posts.get(doc_id)).data["title"] == "Later"
    assert (await posts.scheduled())[0] == 0


async def test_scheduled_create_reserves_its_id(service: Service, clock: ManualClock) -> None:
    posts = service.documents("post")
    result = await posts.create(post(), toa=clock.now() + SECOND)
    with pytest.raises(NotFound):
        await posts.get(result.event.id)
    clock.advance(SECOND)
    await service.scheduler.run_once()
    assert (await posts.get(result.event.id)).rev == 1


async def test_cancel(service: Service, clock: ManualClock) -> None:
    posts = service.documents("post")
    doc_id = (await posts.create(post())).event.id
    scheduled = await posts.delete(doc_id, toa=clock.now() + 10 * SECOND)
    cancel = await posts.cancel(scheduled.event.seq)
    assert cancel.action == "cancel"
    with pytest.raises(Conflict):
        await posts.cancel(scheduled.event.seq)
    clock.advance(20 * SECOND)
    await service.scheduler.run_once()
    assert (await posts.get(doc_id)).rev == 1
    outcomes = [r.outcome for r in await posts.revisions(doc_id)]
    assert outcomes == ["applied", "applied", "cancelled"]  # create, cancel, delete (by TOA)
    in_effect = (await posts.update(doc_id, {"title": "x"})).event.seq
    with pytest.raises(Conflict):
        await posts.cancel(in_effect)


async def test_backdated_write_refolds_history(service: Service, clock: ManualClock) -> None:
    posts = service.documents("post")
    start = clock.now()
    doc_id = (await posts.create(post())).event.id
    clock.advance(10 * SECOND)
    await posts.update(doc_id, {"title": "Second"})
    clock.advance(10 * SECOND)
    correction = await posts.update(doc_id, {"author": "cat"}, toa=start + 5 * SECOND)
    assert not correction.scheduled
    now = await posts.get(doc_id)
    assert now.data["title"] == "Second" and now.data["author"] == "cat" and now.rev == 3
    assert (await posts.get(doc_id, as_of=start + 6 * SECOND)).data["title"] == "Hello"
    # What we believed before the correction was recorded:
    before = await posts.get(doc_id, known_at=correction.event.recorded_at - 1)
    assert before.data["author"] == "ann"


async def test_revert_to_revision_and_as_of(service: Service, clock: ManualClock) -> None:
    posts = service.documents("post")
    start = clock.now()
    doc_id = (await posts.create(post())).event.id
    clock.advance(SECOND)
    await posts.update(doc_id, {"title": "Two"})
    clock.advance(SECOND)
    await posts.delete(doc_id)
    reverted = await posts.revert(doc_id, to_revision=2)
    assert reverted.document is not None and reverted.document.data["title"] == "Two"
    back = await posts.revert(doc_id, as_of=start)
    assert back.document is not None and back.document.data["title"] == "Hello"
    assert (await posts.at_revision(doc_id, 2)).data["title"] == "Two"
    with pytest.raises(NotFound):
        await posts.at_revision(doc_id, 3)  # the delete
    with pytest.raises(InvalidRequest):
        await posts.revert(doc_id)
    patch = await posts.diff(doc_id, from_rev=1, to_rev=2)
    assert patch == [{"op": "replace", "path": "/title", "value": "Two"}]


async def test_query_now_as_of_and_known_at(service: Service, clock: ManualClock) -> None:
    posts = service.documents("post")
    start = clock.now()
    for i, author in enumerate(["ann", "bob", "ann", "cy"]):
        await posts.create(post(title=f"Post {i}", author=author, blog=i))
    clock.advance(SECOND)
    later = clock.now()
    first = (await posts.query(Query(sort=(SortKey("blog"),), limit=1))).items[0]
    await posts.update(first.id, {"author": "bob"})  # post 0, by ann
    by_ann = Query(filters=(Filter("author", "equal", "ann", "text"),), sort=(SortKey("blog"),))
    page = await posts.query(by_ann)
    assert page.total == 1
    assert (await posts.query(by_ann, as_of=start)).total == 2
    assert (await posts.query(by_ann, known_at=later - 1)).total == 2
    assert (await posts.query(by_ann, known_at=later)).total == 1
    newest_first = Query(sort=(SortKey("blog", descending=True),), limit=2, offset=1)
    assert [d.data["blog"] for d in (await posts.query(newest_first)).items] == [2, 1]
    assert (await posts.query(Query(), as_of=start - 1)).total == 0


async def test_bulk(service: Service, clock: ManualClock) -> None:
    posts = service.documents("post")
    ids = [(await posts.create(post(blog=i))).event.id for i in range(3)]
    results = await posts.bulk("update", [*ids, "missing"], {"published": True})
    assert [r.error is None for r in results] == [True, True, True, False]
    assert isinstance(results[3].error, NotFound)
    assert all([(await posts.get(i)).data["published"] for i in ids])
    later = await posts.bulk("delete", ids[:2], toa=clock.now() + SECOND)
    assert all(r.result is not None and r.result.scheduled for r in later)
    service.limits = type(service.limits)(bulk_ids=2)
    with pytest.raises(LimitExceeded):
        await posts.bulk("delete", ids)


async def test_pending_limit(service: Service, clock: ManualClock) -> None:
    service.limits = type(service.limits)(pending_per_resource=1)
    posts = service.documents("post")
    await posts.create(post(), toa=clock.now() + SECOND)
    with pytest.raises(LimitExceeded):
        await posts.create(post(), toa=clock.now() + SECOND)
    await posts.create(post())  # immediate writes are not limited
    assert await last_seq(service) == 2


async def test_view_counts_posts_per_author(service: Service) -> None:
    posts = service.documents("post")
    a = (await posts.create(post(author="ann"))).event.id
    await posts.create(post(author="ann"))
    await posts.update(a, {"author": "bob"})
    rows = await service.store.read_view("posts_per_author")
    assert rows == {"ann": {"author": "ann", "posts": 1}, "bob": {"author": "bob", "posts": 1}}


class TickingClock(ManualClock):
    """Time moves a microsecond at every reading, so it passes between decision and append."""

    def now(self) -> int:
        self._now += 1
        return self._now


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_a_cancel_answered_is_one_the_fold_applies(backend: str, tmp_path: Any) -> None:
    # Whatever the target's distance in time, a cancel that answers cancels it in
    # the fold; one that reaches the store after the target's TOA answers 409.
    from blog import Post

    from eventdocs.events import Cancel
    from eventdocs.fold import fold
    from eventdocs.storage import open_store

    clock = TickingClock()
    url = "memory:" if backend == "memory" else str(tmp_path / "blog.db")
    service = Service(open_store(url, clock=clock), [Post.spec()], clock=clock, background=False)
    await service.start()
    try:
        posts = service.documents("post")
        answered = set()
        for ahead in range(1, 40):
            doc_id = (await posts.create(post())).event.id
            target = await posts.update(doc_id, {"title": "later"}, toa=clock.now() + ahead)
            try:
                cancel = await posts.cancel(target.event.seq)
            except Conflict:
                answered.add(409)
                continue
            answered.add(200)
            assert isinstance(cancel, Cancel)
            results = fold(await service.store.read_document("post", doc_id)).results
            outcome = {r.event.seq: r.outcome for r in results}
            assert outcome[target.event.seq] == "cancelled", ahead
            assert outcome[cancel.seq] == "applied"
        assert answered == {200, 409}
    finally:
        await service.stop()
