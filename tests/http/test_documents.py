"""The document requests of SPEC section 3: create, get, put, patch, delete."""

from __future__ import annotations

import pytest
from httpkit import Api, assert_problem, post


async def test_create_answers_201_with_location_and_etag(durable_api: Api) -> None:
    result = await durable_api.client.simulate_post("/v1/post", json=post(tags=["a"]))
    assert result.status_code == 201
    assert result.headers["content-type"] == "application/json"
    doc = result.json
    assert result.headers["location"] == f"/v1/post/{doc['id']}"
    assert result.headers["etag"] == '"1"'
    assert doc == {
        "id": doc["id"],
        "title": "Hello",
        "blog": 1,
        "author": "ann",
        "published": False,
        "tags": ["a"],
        "_rev": 1,
        "_updated": "2023-11-14T22:13:20.000000Z",
    }
    assert await durable_api.seq() == 1


async def test_get_answers_the_document_with_its_etag(durable_api: Api) -> None:
    doc = await durable_api.create(post())
    result = await durable_api.client.simulate_get(f"/v1/post/{doc['id']}")
    assert result.status_code == 200
    assert result.json == doc
    assert result.headers["etag"] == '"1"'


async def test_get_with_fields_keeps_id_rev_and_updated(api: Api) -> None:
    doc = await api.create(post(body="text"))
    result = await api.client.simulate_get(f"/v1/post/{doc['id']}", params={"fields": "title"})
    assert result.json == {
        "id": doc["id"],
        "title": "Hello",
        "_rev": 1,
        "_updated": doc["_updated"],
    }


async def test_put_sets_the_given_fields(durable_api: Api) -> None:
    doc = await durable_api.create(post())
    result = await durable_api.client.simulate_put(
        f"/v1/post/{doc['id']}", json={"title": "New", "author": None}
    )
    assert result.status_code == 200, result.text
    assert result.json["title"] == "New"
    assert result.json["author"] is None
    assert result.json["_rev"] == 2
    assert result.headers["etag"] == '"2"'


@pytest.mark.parametrize("content_type", ["application/json", "application/merge-patch+json"])
async def test_patch_is_a_merge_patch(api: Api, content_type: str) -> None:
    doc = await api.create(post(body="text"))
    result = await api.client.simulate_patch(
        f"/v1/post/{doc['id']}",
        body=b'{"body": null, "title": "Patched"}',
        headers={"Content-Type": content_type},
    )
    assert result.status_code == 200, result.text
    assert "body" not in result.json
    assert result.json["title"] == "Patched"


async def test_delete_answers_204_and_the_document_is_gone(durable_api: Api) -> None:
    doc = await durable_api.create(post())
    result = await durable_api.client.simulate_delete(f"/v1/post/{doc['id']}")
    assert result.status_code == 204
    assert result.content == b""
    assert_problem(await durable_api.client.simulate_get(f"/v1/post/{doc['id']}"), 404)
    assert await durable_api.seq() == 2


async def test_if_match_accepts_every_etag_form(api: Api) -> None:
    doc = await api.create(post())
    path = f"/v1/post/{doc['id']}"
    for rev, header in enumerate(['"1"', "2", '"9", "3"', "*"], start=1):
        result = await api.client.simulate_put(
            path, json={"title": f"v{rev}"}, headers={"If-Match": header}
        )
        assert result.status_code == 200, (header, result.text)
    assert result.json["_rev"] == 5


async def test_if_match_mismatch_answers_412_and_appends_nothing(durable_api: Api) -> None:
    doc = await durable_api.create(post())
    path = f"/v1/post/{doc['id']}"
    for method in ("PUT", "PATCH"):
        result = await durable_api.client.simulate_request(
            method, path, json={"title": "x"}, headers={"If-Match": '"7"'}
        )
        body = assert_problem(result, 412)
        assert body["errors"] == [{"path": "If-Match", "message": "current revision is 1"}]
    assert_problem(await durable_api.client.simulate_delete(path, headers={"If-Match": '"2"'}), 412)
    assert_problem(
        await durable_api.client.simulate_post(
            f"{path}/revert", json={"to_revision": 1}, headers={"If-Match": "3"}
        ),
        412,
    )
    assert await durable_api.seq() == 1


async def test_idempotency_key_replays_the_first_response(durable_api: Api) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = await durable_api.client.simulate_post("/v1/post", json=post(), headers=headers)
    assert first.status_code == 201
    durable_api.clock.advance(1_000_000)
    again = await durable_api.client.simulate_post("/v1/post", json=post(), headers=headers)
    assert again.status_code == 201
    assert again.json == first.json
    assert again.headers["location"] == first.headers["location"]
    other = await durable_api.client.simulate_post(
        "/v1/post", json=post(title="Other"), headers=headers
    )
    assert_problem(other, 422)  # the same key with another request decides nothing
    assert other.json["errors"][0]["path"] == "Idempotency-Key"
    assert await durable_api.seq() == 1


async def test_idempotency_key_on_revert_and_bulk(api: Api) -> None:
    doc = await api.create(post())
    path = f"/v1/post/{doc['id']}"
    await api.client.simulate_put(path, json={"title": "Two"})
    headers = {"Idempotency-Key": "revert-1"}
    first = await api.client.simulate_post(
        f"{path}/revert", json={"to_revision": 1}, headers=headers
    )
    again = await api.client.simulate_post(
        f"{path}/revert", json={"to_revision": 1}, headers=headers
    )
    assert first.status_code == again.status_code == 200
    assert again.json == first.json and again.json["title"] == "Hello"
    other = await api.client.simulate_post(
        f"{path}/revert", json={"to_revision": 2}, headers=headers
    )
    assert_problem(other, 422)
    seq = await api.seq()
    bulk = {"action": "update", "ids": [doc["id"], "missing"], "body": {"title": "B"}}
    headers = {"Idempotency-Key": "bulk-1"}
    first = await api.client.simulate_post("/v1/post/_bulk", json=bulk, headers=headers)
    again = await api.client.simulate_post("/v1/post/_bulk", json=bulk, headers=headers)
    assert first.json == again.json
    assert [r["status"] for r in again.json["resources"]] == [200, 404]
    assert await api.seq() == seq + 1


async def test_create_of_an_existing_client_id_answers_409(api: Api) -> None:
    from httpkit import running

    from eventdocs.fields import Text
    from eventdocs.resources import Resource

    class Tag(Resource):
        name = "tag"

        class schema:
            id = Text(required=True)
            label = Text()

    async with running([Tag.spec()]) as tags:
        created = await tags.client.simulate_post("/v1/tag", json={"id": "x", "label": "X"})
        assert created.status_code == 201
        assert created.headers["location"] == "/v1/tag/x"
        again = await tags.client.simulate_post("/v1/tag", json={"id": "x", "label": "Y"})
        assert_problem(again, 409)
        assert await tags.seq("tag") == 1


async def test_an_empty_idempotency_key_is_a_key_like_any_other(api: Api) -> None:
    # Found by schemathesis: an empty key once matched any later request.
    headers = {"Idempotency-Key": ""}
    first = await api.client.simulate_post("/v1/post", json=post(), headers=headers)
    assert first.status_code == 201
    scheduled = {**headers, "Caesium-TOA": "2030-01-01T00:00:00Z"}
    other = await api.client.simulate_post("/v1/post", json=post(), headers=scheduled)
    assert_problem(other, 422)
    assert await api.seq() == 1
