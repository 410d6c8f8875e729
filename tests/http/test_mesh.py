"""mesh's request examples (its wiki's Requests page), declared as written, over HTTP."""

# ruff: noqa: RUF012  (declarations are mesh-style class attributes)

from __future__ import annotations

from typing import Any

import pytest
from httpkit import assert_problem, running
from openapi_spec_validator import validate

from eventdocs.documents import Documents
from eventdocs.errors import DeclarationError, ValidationFailed
from eventdocs.fields import DateTime, Integer, Text
from eventdocs.resources import Resource


class HelloWorld(Resource):
    """Definition of the helloworld resource"""

    name = "helloworld"
    version = 1
    requests = []

    class hello:
        endpoint = ("GET", "hello")
        schema = {"name": Text()}
        responses = {200: {"message": Text(required=True, nonnull=True)}}

        async def handle(self, documents: Documents, body: dict[str, Any]) -> Any:
            return {"message": f"Hello, {body.get('name') or 'world'}!"}


class ReadOnly(Resource):
    name = "thing"
    version = 1

    requests = ["query", "get"]

    class schema:
        id = Integer(required=True, nonnull=True, operators=["equal"])
        name = Text(required=True, nonnull=True, operators=["equal"])


class RatherBoring(Resource):
    name = "ratherboring"
    version = 1
    requests = ["get"]

    class get(Resource.get):
        fields = {"additional_field": Text()}

    class schema:
        title = Text()


class Post(Resource):
    """Definition of a blog post"""

    name = "post"
    version = 1

    class schema:
        title = Text(operators=["contains"])
        author = Text(operators=["equal"])
        body = Text(operators=["contains"])
        blog = Integer(required=True, nonnull=True, operators=["equal"])
        posted = DateTime(required=True, nonnull=True, operators=["gt", "gte", "lt", "lte"])


SPECS = [HelloWorld.spec(), ReadOnly.spec(), RatherBoring.spec(), Post.spec()]


async def test_helloworld_serves_hello_and_no_standard_request() -> None:
    async with running(SPECS) as api:
        result = await api.client.simulate_get("/v1/helloworld/hello", params={"name": "ann"})
        assert result.json == {"message": "Hello, ann!"}
        assert_problem(await api.client.simulate_get("/v1/helloworld"), 405)


async def test_read_only_thing_with_an_integer_id() -> None:
    async with running(SPECS) as api:
        things = api.service.documents("thing")
        for number, name in ((1, "one"), (2, "two"), (10, "ten")):
            await things.create({"id": number, "name": name})
        got = await api.client.simulate_get("/v1/thing/10")
        assert got.status_code == 200, got.text
        assert {k: got.json[k] for k in ("id", "name")} == {"id": 10, "name": "ten"}
        by_id = (await api.client.simulate_get("/v1/thing", params={"id": "2"})).json
        assert [d["id"] for d in by_id["resources"]] == [2]
        by_name = (await api.client.simulate_get("/v1/thing", params={"name": "one"})).json
        assert [d["id"] for d in by_name["resources"]] == [1]
        assert_problem(await api.client.simulate_get("/v1/thing", params={"id": "x"}), 400)
        assert_problem(await api.client.simulate_post("/v1/thing", json={"id": 3}), 405)
        assert_problem(await api.client.simulate_get("/v1/thing/3"), 404)
        with pytest.raises(ValidationFailed):
            await things.create({"id": "4", "name": "four"})
        with pytest.raises(DeclarationError):
            type(
                "RangeThing",
                (Resource,),
                {
                    "name": "rangething",
                    "schema": {"id": Integer(required=True, operators=["gt"])},
                },
            )


async def test_an_overridden_get_shows_its_added_field_as_null() -> None:
    async with running(SPECS) as api:
        doc = await api.service.documents("ratherboring").create({"title": "t"})
        got = await api.client.simulate_get(f"/v1/ratherboring/{doc.event.id}")
        assert got.status_code == 200, got.text
        assert got.json["additional_field"] is None
        assert got.json["title"] == "t"
        document = (await api.client.simulate_get("/openapi.json")).json
        validate(document)
        schemas = document["components"]["schemas"]
        assert any("additional_field" in s.get("properties", {}) for s in schemas.values())


async def test_post_with_operators() -> None:
    async with running(SPECS) as api:
        for day, author in ((1, "ann"), (2, "bob"), (3, "ann")):
            body = {
                "title": f"day {day}",
                "author": author,
                "blog": 1,
                "posted": f"2024-01-0{day}T00:00:00Z",
            }
            await api.create(body)
        found = await api.client.simulate_get(
            "/v1/post",
            params={"author": "ann", "posted__gt": "2024-01-02T00:00:00Z", "title__contains": "3"},
        )
        assert [d["title"] for d in found.json["resources"]] == ["day 3"]
        assert_problem(await api.client.simulate_get("/v1/post", params={"blog__gt": "1"}), 400)
