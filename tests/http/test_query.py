"""The query language of SPEC section 4: one test per operator, paging, errors."""

from __future__ import annotations

from typing import Any

import pytest
from httpkit import Api, assert_problem, post

THINGS = [
    {"name": "Alpha", "count": 1, "price": "1.50", "seen": "2024-01-01T00:00:00Z", "flag": True},
    {"name": "beta", "count": 2, "price": 10, "seen": "2024-06-01T12:00:00+02:00", "flag": False},
    {"name": "Gamma", "count": 3},
    {"count": 4},
]


@pytest.fixture
async def things(api: Api) -> Api:
    for body in THINGS:
        await api.create(body, "/v1/thing")
    return api


async def counts(api: Api, params: Any) -> list[int]:
    result = await api.client.simulate_get("/v1/thing", params=params)
    assert result.status_code == 200, result.text
    return [doc["count"] for doc in result.json["resources"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"name": "beta"}, {2}),
        ({"name__equal": "beta"}, {2}),
        ({"name__iequal": "BETA"}, {2}),
        ({"name__not": "beta"}, {1, 3, 4}),
        ({"name__inot": "BETA"}, {1, 3, 4}),
        ({"name__prefix": "Al"}, {1}),
        ({"name__iprefix": "al"}, {1}),
        ({"name__suffix": "ta"}, {2}),
        ({"name__isuffix": "MA"}, {3}),
        ({"name__contains": "mm"}, {3}),
        ({"name__icontains": "A"}, {1, 2, 3}),
        ({"name__gt": "Alpha"}, {2, 3}),
        ({"name__gte": "Alpha"}, {1, 2, 3}),
        ({"name__lt": "Gamma"}, {1}),
        ({"name__lte": "Gamma"}, {1, 3}),
        ({"name__null": "true"}, {4}),
        ({"name__null": "false"}, {1, 2, 3}),
        ({"name__in": "Alpha,beta"}, {1, 2}),
        ({"name__in": ["Alpha", "Gamma"]}, {1, 3}),
        ({"name__notin": "Alpha,beta"}, {3, 4}),
        ({"count__gt": "2"}, {3, 4}),
        ({"count__in": "1,4"}, {1, 4}),
        ({"count__notin": ["1", "4"]}, {2, 3}),
        ({"price__gte": "2"}, {2}),
        ({"price__lt": "10"}, {1}),
        ({"seen__gt": "2024-03-01T00:00:00Z"}, {2}),
        ({"seen__lte": "1704067200"}, {1}),
        ({"flag": "true"}, {1}),
        ({"flag__not": "true"}, {2, 3, 4}),
        ({"flag__null": "true"}, {3, 4}),
        ({"name__icontains": "a", "count__gt": "1"}, {2, 3}),
    ],
)
async def test_operator(things: Api, params: dict[str, Any], expected: set[int]) -> None:
    result = await things.client.simulate_get("/v1/thing", params=params)
    assert result.status_code == 200, result.text
    assert result.json["total"] == len(expected)
    assert {doc["count"] for doc in result.json["resources"]} == expected


async def test_sort_descending_and_missing_values_first(things: Api) -> None:
    assert await counts(things, {"sort": "-count"}) == [4, 3, 2, 1]
    assert await counts(things, {"sort": "name"}) == [4, 1, 3, 2]
    assert await counts(things, {"sort": "-price,count"}) == [2, 1, 3, 4]


async def test_sort_ties_break_on_id(api: Api) -> None:
    ids = sorted([(await api.create(post(blog=7)))["id"] for _ in range(3)])
    result = await api.client.simulate_get("/v1/post", params={"sort": "-blog"})
    assert [doc["id"] for doc in result.json["resources"]] == ids


async def test_limit_offset_and_total(things: Api) -> None:
    result = await things.client.simulate_get(
        "/v1/thing", params={"sort": "count", "limit": "2", "offset": "1"}
    )
    assert result.json["total"] == 4
    assert [doc["count"] for doc in result.json["resources"]] == [2, 3]
    result = await things.client.simulate_get("/v1/thing", params={"limit": "0"})
    assert result.json == {"total": 4, "resources": []}


async def test_limit_defaults_to_50(api: Api) -> None:
    for _ in range(51):
        await api.create({"count": 1}, "/v1/thing")
    result = await api.client.simulate_get("/v1/thing")
    assert result.json["total"] == 51
    assert len(result.json["resources"]) == 50
    ok = await api.client.simulate_get("/v1/thing", params={"limit": "1000"})
    assert len(ok.json["resources"]) == 51


async def test_fields_keeps_only_the_named_ones(things: Api) -> None:
    result = await things.client.simulate_get(
        "/v1/thing", params={"fields": "name", "sort": "count", "limit": "1"}
    )
    [doc] = result.json["resources"]
    assert set(doc) == {"id", "name", "_rev", "_updated"}


async def test_undeclared_operator_names_the_field_and_its_operators(api: Api) -> None:
    result = await api.client.simulate_get("/v1/post", params={"title__equal": "x"})
    body = assert_problem(result, 400)
    assert body["errors"][0]["path"] == "?title__equal"
    assert "title" in body["detail"] and "contains, icontains, prefix" in body["detail"]
    plain = await api.client.simulate_get("/v1/post", params={"title": "x"})
    assert "contains, icontains, prefix" in assert_problem(plain, 400)["detail"]


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"name__between": "a"}, "?name__between"),
        ({"nope": "1"}, "?nope"),
        ({"count__gt": "abc"}, "?count__gt"),
        ({"price__lt": "cheap"}, "?price__lt"),
        ({"seen__gt": "yesterday"}, "?seen__gt"),
        ({"flag": "maybe"}, "?flag"),
        ({"name__null": "perhaps"}, "?name__null"),
        ({"count__in": ","}, "?count__in"),
        ({"sort": "tags"}, "?sort"),
        ({"sort": "nope"}, "?sort"),
        ({"limit": "1001"}, "?limit"),
        ({"limit": "-1"}, "?limit"),
        ({"limit": "ten"}, "?limit"),
        ({"offset": "-3"}, "?offset"),
        ({"limit": ["1", "2"]}, "?limit"),
        ({"fields": "name,nope"}, "?fields"),
        ({"as_of": "noon"}, "?as_of"),
        ({"known_at": "2024-13-01T00:00:00Z"}, "?known_at"),
    ],
)
async def test_bad_parameters_answer_400(api: Api, params: dict[str, Any], path: str) -> None:
    result = await api.client.simulate_get("/v1/thing", params=params)
    body = assert_problem(result, 400)
    assert body["errors"][0]["path"] == path


async def test_unknown_parameters_on_other_requests_answer_400(api: Api) -> None:
    doc = await api.create(post())
    for method, path in [
        ("GET", f"/v1/post/{doc['id']}?limit=3"),
        ("GET", f"/v1/post/{doc['id']}/revisions?sort=seq"),
        ("GET", "/v1/post/_scheduled?as_of=1"),
        ("PUT", f"/v1/post/{doc['id']}?x=1"),
        ("POST", "/v1/post?dry_run=1"),
    ]:
        result = await api.client.simulate_request(method, path, json={"title": "t"})
        assert_problem(result, 400)
    assert await api.seq() == 1
