"""Versions share one log and master; each reads its own fields and checks what it sets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpkit import Api, assert_problem, running

from eventdocs.fields import Integer, Structure, Text
from eventdocs.resources import Resource


class Article(Resource):
    name = "article"
    version = 1

    class schema:
        title = Text(required=True, operators=["equal"], sortable=True)
        legacy = Text()
        size = Structure({"w": Integer(required=True), "h": Integer()})


class ArticleV2(Article):
    version = 2

    class schema:
        subtitle = Text(required=True, operators=["equal"])
        legacy = None


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running([Article.spec(), ArticleV2.spec()]) as running_api:
        yield running_api


async def created(api: Api, path: str, body: dict[str, Any]) -> str:
    doc = await api.create(body, path)
    return str(doc["id"])


async def test_a_v1_patch_of_a_v2_document_keeps_what_v1_does_not_declare(api: Api) -> None:
    doc_id = await created(api, "/v2/article", {"title": "a", "subtitle": "s"})
    result = await api.client.simulate_patch(f"/v1/article/{doc_id}", json={"title": "b"})
    assert result.status_code == 200, result.text
    assert "subtitle" not in result.json and result.json["title"] == "b"
    v2 = (await api.client.simulate_get(f"/v2/article/{doc_id}")).json
    assert (v2["title"], v2["subtitle"]) == ("b", "s")
    put = await api.client.simulate_put(f"/v1/article/{doc_id}", json={"title": "c"})
    assert put.status_code == 200, put.text
    assert (await api.client.simulate_get(f"/v2/article/{doc_id}")).json["subtitle"] == "s"


async def test_a_v2_patch_of_a_v1_document_keeps_the_field_v2_removed(api: Api) -> None:
    doc_id = await created(api, "/v1/article", {"title": "a", "legacy": "old"})
    result = await api.client.simulate_patch(f"/v2/article/{doc_id}", json={"title": "b"})
    assert result.status_code == 200, result.text  # not 422 at /legacy, nor at /subtitle
    assert "legacy" not in result.json
    assert "subtitle" not in result.json  # required by v2, never set: not invented
    v1 = (await api.client.simulate_get(f"/v1/article/{doc_id}")).json
    assert (v1["title"], v1["legacy"]) == ("b", "old")
    then = await api.client.simulate_patch(f"/v2/article/{doc_id}", json={"subtitle": "now"})
    assert then.json["subtitle"] == "now"


async def test_a_write_checks_what_it_sets_against_its_version(api: Api) -> None:
    doc_id = await created(api, "/v1/article", {"title": "a", "size": {"w": 1}})
    seq = await api.seq("article")
    for path, body, where in [
        (f"/v1/article/{doc_id}", {"subtitle": "x"}, "/subtitle"),
        (f"/v2/article/{doc_id}", {"legacy": "x"}, "/legacy"),
        (f"/v1/article/{doc_id}", {"title": 5}, "/title"),
        (f"/v1/article/{doc_id}", {"size": {"w": None}}, "/size/w"),
    ]:
        result = await api.client.simulate_patch(path, json=body)
        assert assert_problem(result, 422)["errors"][0]["path"] == where, result.text
    assert await api.seq("article") == seq
    ok = await api.client.simulate_patch(f"/v1/article/{doc_id}", json={"size": {"h": 2}})
    assert ok.json["size"] == {"w": 1, "h": 2}


async def test_reads_through_a_version_show_its_fields_only(api: Api) -> None:
    doc_id = await created(api, "/v2/article", {"title": "a", "subtitle": "s"})
    await api.client.simulate_patch(f"/v1/article/{doc_id}", json={"legacy": "l"})
    v1 = (await api.client.simulate_get(f"/v1/article/{doc_id}")).json
    assert set(v1) == {"id", "_rev", "_updated", "title", "legacy"}
    v2 = (await api.client.simulate_get(f"/v2/article/{doc_id}")).json
    assert set(v2) == {"id", "_rev", "_updated", "title", "subtitle"}
    listed = (await api.client.simulate_get("/v1/article")).json["resources"]
    assert set(listed[0]) == {"id", "_rev", "_updated", "title", "legacy"}
    rev = (await api.client.simulate_get(f"/v1/article/{doc_id}/revisions/1")).json
    assert "subtitle" not in rev
    bad = await api.client.simulate_get("/v1/article", params={"fields": "subtitle"})
    assert_problem(bad, 400)


async def test_every_event_records_the_version_that_wrote_it(api: Api) -> None:
    doc_id = await created(api, "/v2/article", {"title": "a", "subtitle": "s"})
    await api.client.simulate_patch(f"/v1/article/{doc_id}", json={"title": "b"})
    await api.client.simulate_delete(f"/v2/article/{doc_id}")
    events = await api.store.read_document("article", doc_id)
    assert [(e.action, e.meta.get("version")) for e in events] == [
        ("create", 2),
        ("update", 1),
        ("delete", 2),
    ]
    revisions = (await api.client.simulate_get(f"/v1/article/{doc_id}/revisions")).json
    assert revisions["total"] == 3
    assert [r["meta"]["version"] for r in revisions["resources"]] == [2, 1, 2]
