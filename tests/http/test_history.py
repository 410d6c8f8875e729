"""Time over HTTP: scheduled writes, backdated ones, as_of/known_at, revisions, revert."""

from __future__ import annotations

import pytest
from httpkit import Api, assert_problem, post

from eventdocs.times import format_time


@pytest.mark.parametrize("header", ["Caesium-TOA", "TOA"])
async def test_scheduled_update_answers_202_and_applies_when_due(
    durable_api: Api, header: str
) -> None:
    api = durable_api
    doc = await api.create(post())
    path = f"/v1/post/{doc['id']}"
    result = await api.client.simulate_put(
        path, json={"title": "Later"}, headers={header: api.toa(5)}
    )
    assert result.status_code == 202, result.text
    event = result.json
    assert event["seq"] == 2 and event["action"] == "update" and event["id"] == doc["id"]
    assert event["toa"] == api.toa(5) and event["toa"].endswith("Z")
    assert event["recorded_at"] == format_time(api.clock.now())
    assert (await api.client.simulate_get(path)).json["title"] == "Hello"
    await api.due(4.9)
    assert (await api.client.simulate_get(path)).json["title"] == "Hello"
    await api.due(0.2)
    now = await api.client.simulate_get(path)
    assert now.json["title"] == "Later" and now.json["_rev"] == 2
    assert now.json["_updated"] == event["toa"]


async def test_scheduled_create_reserves_the_id(durable_api: Api) -> None:
    api = durable_api
    epoch = (api.clock.now() + 60_000_000) / 1e6
    result = await api.client.simulate_post(
        "/v1/post", json=post(), headers={"Caesium-TOA": f"{epoch:.3f}"}
    )
    assert result.status_code == 202
    event = result.json
    assert event["action"] == "create" and event["body"]["title"] == "Hello"
    assert_problem(await api.client.simulate_get(f"/v1/post/{event['id']}"), 404)
    preview = await api.client.simulate_get(
        f"/v1/post/{event['id']}", params={"as_of": event["toa"]}
    )
    assert preview.status_code == 200 and preview.json["_rev"] == 1
    await api.due(60)
    assert (await api.client.simulate_get(f"/v1/post/{event['id']}")).status_code == 200


async def test_scheduled_delete_and_scheduled_list(api: Api) -> None:
    doc = await api.create(post())
    path = f"/v1/post/{doc['id']}"
    deleted = await api.client.simulate_delete(path, headers={"TOA": api.toa(10)})
    assert deleted.status_code == 202 and deleted.json["action"] == "delete"
    updated = await api.client.simulate_patch(
        path, json={"body": "soon"}, headers={"TOA": api.toa(5)}
    )
    assert updated.status_code == 202
    listing = await api.client.simulate_get("/v1/post/_scheduled")
    assert listing.json["total"] == 2
    assert [e["action"] for e in listing.json["resources"]] == ["update", "delete"]
    page = await api.client.simulate_get("/v1/post/_scheduled", params={"limit": 1, "offset": 1})
    assert page.json["total"] == 2 and [e["seq"] for e in page.json["resources"]] == [2]
    await api.due(11)
    assert_problem(await api.client.simulate_get(path), 404)
    assert (await api.client.simulate_get("/v1/post/_scheduled")).json["total"] == 0


async def test_cancel_answers_200_then_404_and_409(durable_api: Api) -> None:
    api = durable_api
    doc = await api.create(post())
    path = f"/v1/post/{doc['id']}"
    scheduled = await api.client.simulate_put(
        path, json={"title": "No"}, headers={"TOA": api.toa(5)}
    )
    seq = scheduled.json["seq"]
    cancelled = await api.client.simulate_delete(f"/v1/post/_scheduled/{seq}")
    assert cancelled.status_code == 200
    assert cancelled.json["action"] == "cancel" and cancelled.json["target"] == seq
    assert_problem(await api.client.simulate_delete(f"/v1/post/_scheduled/{seq}"), 409)
    assert_problem(await api.client.simulate_delete("/v1/post/_scheduled/99"), 404)
    assert_problem(await api.client.simulate_delete("/v1/post/_scheduled/1"), 409)
    assert_problem(await api.client.simulate_delete("/v1/post/_scheduled/one"), 400)
    before = await api.seq()
    await api.due(6)
    assert (await api.client.simulate_get(path)).json["title"] == "Hello"
    assert await api.seq() == before == 3


async def test_backdated_write_answers_like_an_immediate_one(durable_api: Api) -> None:
    api = durable_api
    created = await api.create(post())
    path = f"/v1/post/{created['id']}"
    await api.due(10)
    await api.client.simulate_put(path, json={"title": "Now"})
    past = format_time(api.clock.now() - 5_000_000)
    result = await api.client.simulate_put(path, json={"body": "fixed"}, headers={"TOA": past})
    assert result.status_code == 200, result.text
    assert result.json["title"] == "Now" and result.json["body"] == "fixed"
    assert result.json["_rev"] == 3 and result.headers["etag"] == '"3"'
    at = await api.client.simulate_get(path, params={"as_of": past})
    assert at.json["title"] == "Hello" and at.json["body"] == "fixed"
    backdated = await api.client.simulate_post(
        "/v1/post", json=post(title="Old"), headers={"Caesium-TOA": "1600000000"}
    )
    assert backdated.status_code == 201
    assert backdated.json["_updated"] == "2020-09-13T12:26:40.000000Z"


async def test_as_of_and_known_at_reads(durable_api: Api) -> None:
    api = durable_api
    doc = await api.create(post())
    path = f"/v1/post/{doc['id']}"
    t1 = api.clock.now()
    await api.due(10)
    await api.client.simulate_put(path, json={"title": "Second"})
    t2 = api.clock.now()
    await api.due(10)
    # recorded at t3, but in effect since between t1 and t2: a correction
    correction = format_time(t1 + 1_000_000)
    await api.client.simulate_patch(path, json={"body": "corrected"}, headers={"TOA": correction})

    old = await api.client.simulate_get(path, params={"as_of": format_time(t1)})
    assert old.json["title"] == "Hello" and "body" not in old.json
    fixed = await api.client.simulate_get(path, params={"as_of": correction})
    assert fixed.json["body"] == "corrected"
    believed = await api.client.simulate_get(
        path, params={"as_of": correction, "known_at": format_time(t2)}
    )
    assert "body" not in believed.json
    before = await api.client.simulate_get(path, params={"as_of": format_time(t1 - 1)})
    assert_problem(before, 404)

    query = {"title__contains": "Hel", "as_of": format_time(t1)}
    assert (await api.client.simulate_get("/v1/post", params=query)).json["total"] == 1
    query = {"title__contains": "Hel"}
    assert (await api.client.simulate_get("/v1/post", params=query)).json["total"] == 0
    query = {"known_at": format_time(t2)}
    known = await api.client.simulate_get("/v1/post", params=query)
    assert [d["title"] for d in known.json["resources"]] == ["Second"]
    assert "body" not in known.json["resources"][0]


async def test_revisions_and_the_state_at_each(durable_api: Api) -> None:
    api = durable_api
    doc = await api.create(post())
    path = f"/v1/post/{doc['id']}"
    await api.client.simulate_put(path, json={"title": "Two"})
    scheduled = await api.client.simulate_put(
        path, json={"title": "3"}, headers={"TOA": api.toa(9)}
    )
    assert scheduled.status_code == 202
    revisions = await api.client.simulate_get(f"{path}/revisions")
    assert revisions.status_code == 200
    assert revisions.json["total"] == 3
    rows = revisions.json["resources"]
    assert [(r["action"], r["outcome"], r.get("rev")) for r in rows] == [
        ("create", "applied", 1),
        ("update", "applied", 2),
        ("update", "pending", None),
    ]
    paged = await api.client.simulate_get(f"{path}/revisions", params={"offset": 2})
    assert [r["seq"] for r in paged.json["resources"]] == [3]
    first = await api.client.simulate_get(f"{path}/revisions/1")
    assert first.status_code == 200 and first.json["title"] == "Hello" and first.json["_rev"] == 1
    assert_problem(await api.client.simulate_get(f"{path}/revisions/7"), 404)
    assert_problem(await api.client.simulate_get(f"{path}/revisions/x"), 400)
    assert_problem(await api.client.simulate_get("/v1/post/nope/revisions"), 404)


async def test_revert_to_a_revision_and_to_a_time(durable_api: Api) -> None:
    api = durable_api
    doc = await api.create(post())
    path = f"/v1/post/{doc['id']}"
    t1 = api.clock.now()
    await api.due(1)
    await api.client.simulate_put(path, json={"title": "Two"})
    await api.due(1)
    await api.client.simulate_put(path, json={"title": "Three"})
    back = await api.client.simulate_post(f"{path}/revert", json={"to_revision": 2})
    assert back.status_code == 200 and back.json["title"] == "Two" and back.json["_rev"] == 4
    assert back.headers["etag"] == '"4"'
    back = await api.client.simulate_post(f"{path}/revert", json={"as_of": format_time(t1)})
    assert back.json["title"] == "Hello" and back.json["_rev"] == 5
    back = await api.client.simulate_post(f"{path}/revert", json={"as_of": t1 / 1e6 + 1.5})
    assert back.json["title"] == "Two"
    later = await api.client.simulate_post(
        f"{path}/revert", json={"to_revision": 3}, headers={"TOA": api.toa(30)}
    )
    assert later.status_code == 202 and later.json["action"] == "revert"
    seq = await api.seq()
    for body in ({}, {"to_revision": 1, "as_of": "1"}, {"to_revision": "x"}, {"as_of": "then"}):
        assert_problem(await api.client.simulate_post(f"{path}/revert", json=body), 422)
    assert_problem(await api.client.simulate_post(f"{path}/revert", json={"to_revision": 9}), 404)
    assert await api.seq() == seq


async def test_revert_to_a_deleted_state_answers_204(api: Api) -> None:
    doc = await api.create(post())
    path = f"/v1/post/{doc['id']}"
    await api.client.simulate_delete(path)
    restored = await api.client.simulate_post(f"{path}/revert", json={"to_revision": 1})
    assert restored.status_code == 200 and restored.json["_rev"] == 3
    gone = await api.client.simulate_post(f"{path}/revert", json={"to_revision": 2})
    assert gone.status_code == 204
    assert_problem(await api.client.simulate_get(path), 404)


async def test_bulk_update_and_delete(durable_api: Api) -> None:
    api = durable_api
    ids = [(await api.create(post(title=f"t{i}")))["id"] for i in range(3)]
    result = await api.client.simulate_post(
        "/v1/post/_bulk",
        json={"action": "update", "ids": [*ids[:2], "nope"], "body": {"published": True}},
    )
    assert result.status_code == 200, result.text
    assert result.json["total"] == 3
    rows = result.json["resources"]
    assert [r["status"] for r in rows] == [200, 200, 404]
    assert rows[0]["document"]["published"] is True and rows[0]["document"]["_rev"] == 2
    assert rows[2]["error"]["status"] == 404
    merged = await api.client.simulate_post(
        "/v1/post/_bulk",
        json={"action": "update", "ids": ids[:1], "body": {"author": None}, "merge": True},
    )
    assert "author" not in merged.json["resources"][0]["document"]
    scheduled = await api.client.simulate_post(
        "/v1/post/_bulk", json={"action": "delete", "ids": ids}, headers={"TOA": api.toa(5)}
    )
    assert scheduled.status_code == 202
    assert [r["status"] for r in scheduled.json["resources"]] == [202, 202, 202]
    assert scheduled.json["resources"][0]["event"]["action"] == "delete"
    await api.due(6)
    assert (await api.client.simulate_get("/v1/post")).json["total"] == 0
    seq = await api.seq()
    for body in (
        {"action": "rename", "ids": ids},
        {"action": "update", "ids": ids},
        {"action": "delete", "ids": "all"},
        {"action": "delete", "ids": ids, "extra": 1},
        [],
    ):
        assert_problem(await api.client.simulate_post("/v1/post/_bulk", json=body), 422)
    invalid = await api.client.simulate_post(
        "/v1/post/_bulk", json={"action": "update", "ids": ids, "body": {"blog": "x"}}
    )
    assert invalid.status_code == 200
    assert {r["status"] for r in invalid.json["resources"]} == {404}
    assert await api.seq() == seq


async def test_bulk_with_too_many_ids_answers_413() -> None:
    from httpkit import POST, running

    from eventdocs.documents import Limits

    async with running([POST], limits=Limits(bulk_ids=2)) as api:
        body = {"action": "delete", "ids": ["a", "b", "c"]}
        assert_problem(await api.client.simulate_post("/v1/post/_bulk", json=body), 413)


async def test_too_many_scheduled_writes_answer_429() -> None:
    from httpkit import POST, running

    from eventdocs.documents import Limits

    async with running([POST], limits=Limits(pending_per_resource=1)) as api:
        headers = {"TOA": api.toa(5)}
        first = await api.client.simulate_post("/v1/post", json=post(), headers=headers)
        assert first.status_code == 202
        second = await api.client.simulate_post("/v1/post", json=post(), headers=headers)
        assert_problem(second, 429)
        assert await api.seq() == 1


async def test_diff_between_revisions_and_times(api: Api) -> None:
    doc = await api.create(post())
    path = f"/v1/post/{doc['id']}"
    t1 = api.clock.now()
    await api.due(1)
    await api.client.simulate_patch(path, json={"title": "Two", "author": None})
    result = await api.client.simulate_get(f"{path}/diff", params={"from": 1, "to": 2})
    assert result.status_code == 200
    assert sorted(result.json, key=lambda op: op["path"]) == [
        {"op": "remove", "path": "/author"},
        {"op": "replace", "path": "/title", "value": "Two"},
    ]
    since = await api.client.simulate_get(f"{path}/diff", params={"from_time": format_time(t1)})
    assert since.json == result.json
    assert (await api.client.simulate_get(f"{path}/diff")).json == []
    bad = {"from": 1, "from_time": "1"}
    assert_problem(await api.client.simulate_get(f"{path}/diff", params=bad), 400)
    assert_problem(await api.client.simulate_get(f"{path}/diff", params={"since": 1}), 400)
    assert_problem(await api.client.simulate_get(f"{path}/diff", params={"to": 9}), 404)


async def test_healthz_reports_the_projector_lag(api: Api) -> None:
    doc = await api.create(post())
    await api.client.simulate_put(
        f"/v1/post/{doc['id']}", json={"title": "x"}, headers={"TOA": api.toa(2)}
    )
    health = await api.client.simulate_get("/healthz")
    assert health.status_code == 200
    assert health.json["status"] == "ok"
    row = health.json["resources"]["post"]
    assert row["lag_seconds"] == 0 and row["unprojected"] == 0 and row["scheduled"] == 1
    api.clock.advance(3_000_000)  # due, but the scheduler has not run yet
    row = (await api.client.simulate_get("/healthz")).json["resources"]["post"]
    assert row["lag_seconds"] == pytest.approx(1.0) and row["due_unapplied"] == 1
    await api.service.scheduler.run_once()
    row = (await api.client.simulate_get("/healthz")).json["resources"]["post"]
    assert row["lag_seconds"] == 0 and row["scheduled"] == 0
