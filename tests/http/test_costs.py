"""Limits that bound a request's cost: each answers a clear 4xx naming it and appends nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from httpkit import POST, assert_problem, post, running

from eventdocs.documents import Limits

LIMITS = Limits(
    query_filters=3, query_sort_keys=2, query_fields=2, query_in_values=4, answer_bytes=2000
)


async def test_query_complexity_limits_answer_400_naming_the_limit() -> None:
    async with running([POST], limits=LIMITS) as api:
        await api.create(post())
        cases = {
            "query_filters": "author=a&blog=1&title__prefix=x&author__null=false",
            "query_sort_keys": "sort=title,author,blog",
            "query_fields": "fields=title,author,blog",
            "query_in_values": "author__in=a,b,c&author__in=d,e",
        }
        for limit, query in cases.items():
            result = await api.client.simulate_get("/v1/post", query_string=query)
            problem = assert_problem(result, 400)
            assert limit in problem["detail"], problem
        ok = await api.client.simulate_get(
            "/v1/post", query_string="author__in=a,b,c,d&sort=title,-blog&fields=title,author"
        )
        assert ok.status_code == 200, ok.text
        assert await api.service.store.last_seq("post") == 1


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_an_answer_larger_than_the_cap_is_refused_with_413(
    backend: str, tmp_path: Path
) -> None:
    url = "memory:" if backend == "memory" else str(tmp_path / "store.db")
    async with running([POST], store_url=url, limits=LIMITS) as api:
        for i in range(8):
            await api.create(post(title=f"{i}" + "x" * 190, body="y" * 100))
        problem = assert_problem(await api.client.simulate_get("/v1/post"), 413)
        assert "max_answer_bytes" in problem["detail"]
        small = await api.client.simulate_get("/v1/post", query_string="limit=3")
        assert small.status_code == 200 and small.json["total"] == 8
        as_of = await api.client.simulate_get("/v1/post", query_string=f"as_of={api.toa(0)}")
        assert_problem(as_of, 413)


async def test_nul_in_text_is_refused_and_appends_nothing() -> None:
    async with running([POST], store_url="memory:") as api:
        doc = await api.create(post())
        before = await api.service.store.last_seq("post")
        created = await api.client.simulate_post("/v1/post", json=post(title="a\u0000b"))
        problem = assert_problem(created, 422)
        assert problem["errors"] == [{"path": "/title", "message": "contains U+0000"}]
        updated = await api.client.simulate_patch(
            f"/v1/post/{doc['id']}", json={"author": "\u0000"}
        )
        assert_problem(updated, 422)
        assert await api.service.store.last_seq("post") == before
        searched = await api.client.simulate_get("/v1/post", params={"author": "a\u0000"})
        assert_problem(searched, 400)


async def test_nul_is_found_where_it_is_and_only_there() -> None:
    async with running([POST], store_url="memory:") as api:
        nested = await api.client.simulate_post("/v1/post", json=post(tags=["ok", "b\u0000"]))
        errors = assert_problem(nested, 422)["errors"]
        assert errors == [{"path": "/tags/1", "message": "contains U+0000"}]
        # The six characters \u0000 are text like any other: JSON escapes them as \\u0000.
        literal = await api.client.simulate_post("/v1/post", json=post(title="a\\u0000b"))
        assert literal.status_code == 201, literal.text
        assert literal.json["title"] == "a\\u0000b"
