"""Views over HTTP (SPEC section 9): listing, querying, one row, as_of, OpenAPI, scopes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import schemathesis
from falcon.testing import ASGIConductor
from httpkit import BLOG, ROOT, Api, assert_problem
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from eventdocs import Service, open_store
from eventdocs.http import create_app
from eventdocs.http.auth import load_tokens
from eventdocs.projections.views import View
from eventdocs.query import Query
from eventdocs.resources import ResourceSpec, load_declarations, load_target, load_views
from eventdocs.times import ManualClock, format_time, parse_time

BLOG_JSON = str(ROOT / "examples" / "blog.json")
SPECS = load_target(BLOG_JSON)
DAY = 86_400 * 1_000_000


@asynccontextmanager
async def serving(
    target: str = BLOG_JSON,
    *,
    store_url: str = "memory:",
    tokens: Any = None,
    extra: Sequence[ResourceSpec] = (),
) -> AsyncIterator[Api]:
    clock = ManualClock()
    service = Service(
        open_store(store_url, clock=clock),
        [*load_target(target), *extra],
        views=load_views(target),
        clock=clock,
        background=False,
    )
    app = create_app(service, tokens=None if tokens is None else load_tokens(tokens))
    async with ASGIConductor(app) as client:
        yield Api(client, service, clock)


@pytest.fixture
async def api(store_url: str) -> AsyncIterator[Api]:
    async with serving(store_url=store_url) as running:
        yield running


POSTS = [
    {"title": "a", "blog": 1, "author": "ann", "published": True, "posted": "2024-01-01T00:00:00Z"},
    {"title": "b", "blog": 1, "author": "ann", "published": True, "posted": "2024-03-01T00:00:00Z"},
    {"title": "c", "blog": 2, "author": "bob", "published": True, "posted": "2024-02-01T00:00:00Z"},
    {"title": "d", "blog": 2, "author": "bob", "published": False},
    {"title": "e", "blog": 3, "author": "cy", "published": True},
    {"title": "f", "blog": 3, "published": True, "posted": "2023-05-01T00:00:00Z"},
]


async def fill(api: Api, posts: Sequence[dict[str, Any]] = POSTS) -> list[dict[str, Any]]:
    return [await api.create(p) for p in posts]


async def rows(api: Api, params: Any = None, path: str = "/views/posts_per_author") -> Any:
    result = await api.client.simulate_get(path, params=params)
    assert result.status_code == 200, result.text
    return result.json


def t(text: str) -> str:
    return format_time(parse_time(text))


async def test_the_views_are_listed(api: Api) -> None:
    listing = await rows(api, path="/views")
    assert listing["total"] == 1
    [view] = listing["resources"]
    assert view["name"] == "posts_per_author"
    assert view["kind"] == "declarative"
    assert view["sources"] == ["post"]
    assert view["group_by"] == ["author"]
    assert view["where"] == {"published": True}
    assert view["fields"] == ["author", "posts", "latest"]


async def test_rows_hold_the_group_and_its_aggregates(api: Api) -> None:
    await fill(api)
    body = await rows(api, {"sort": "author"})
    assert body["total"] == 4
    assert body["resources"] == [
        {"author": None, "posts": 1, "latest": t("2023-05-01T00:00:00Z")},
        {"author": "ann", "posts": 2, "latest": t("2024-03-01T00:00:00Z")},
        {"author": "bob", "posts": 1, "latest": t("2024-02-01T00:00:00Z")},
        {"author": "cy", "posts": 1, "latest": None},
    ]


@pytest.mark.parametrize(
    ("params", "authors"),
    [
        ({"author": "ann"}, ["ann"]),
        ({"author__equal": "bob"}, ["bob"]),
        ({"author__iequal": "ANN"}, ["ann"]),
        ({"author__in": "ann,cy"}, ["ann", "cy"]),
        ({"author__notin": "ann"}, [None, "bob", "cy"]),
        ({"author__null": "true"}, [None]),
        ({"author__null": "false"}, ["ann", "bob", "cy"]),
        ({"posts__gt": "1"}, ["ann"]),
        ({"posts__gte": "1"}, [None, "ann", "bob", "cy"]),
        ({"posts__lt": "2"}, [None, "bob", "cy"]),
        ({"posts__lte": "1", "author__in": ["bob", "ann"]}, ["bob"]),
        ({"latest__gt": "2024-01-15T00:00:00Z"}, ["ann", "bob"]),
        ({"latest__lt": "1704067200"}, [None]),
    ],
)
async def test_every_operator_a_view_field_declares(
    api: Api, params: dict[str, Any], authors: list[str | None]
) -> None:
    await fill(api)
    body = await rows(api, {**params, "sort": "author"})
    assert [r["author"] for r in body["resources"]] == authors
    assert body["total"] == len(authors)


async def test_sort_page_fields_and_total(api: Api) -> None:
    await fill(api)
    body = await rows(api, {"sort": "-posts,author", "limit": "2", "offset": "1"})
    assert body["total"] == 4
    assert [r["author"] for r in body["resources"]] == [None, "bob"]
    body = await rows(api, {"sort": "-latest", "fields": "author", "limit": "1"})
    assert body["resources"] == [{"author": "ann"}]


async def test_link_next_is_followed_to_the_end(api: Api) -> None:
    await fill(api)
    seen, url = [], "/views/posts_per_author?sort=author&limit=3"
    while url:
        path, _, query = url.partition("?")
        page = await api.client.simulate_get(path, query_string=query)
        assert page.status_code == 200
        seen += [r["author"] for r in page.json["resources"]]
        link = page.headers.get("link")
        url = link[link.index("<") + 1 : link.index(">")] if link else ""
    assert len(seen) == page.json["total"] == 4 and len(set(seen)) == 4


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"title": "a"}, "?title"),
        ({"id": "x"}, "?id"),
        ({"posts__contains": "1"}, "?posts__contains"),
        ({"author__gt": "a"}, "?author__gt"),
        ({"posts__gt": "many"}, "?posts__gt"),
        ({"sort": "title"}, "?sort"),
        ({"sort": "id"}, "?sort"),
        ({"fields": "author,title"}, "?fields"),
        ({"limit": "100000"}, "?limit"),
        ({"offset": "-1"}, "?offset"),
        ({"as_of": "yesterday"}, "?as_of"),
    ],
)
async def test_a_bad_parameter_answers_400_naming_it(
    api: Api, params: dict[str, str], path: str
) -> None:
    result = await api.client.simulate_get("/views/posts_per_author", params=params)
    body = assert_problem(result, 400)
    assert body["errors"][0]["path"] == path


async def test_an_unknown_view_answers_404(api: Api) -> None:
    assert_problem(await api.client.simulate_get("/views/nope"), 404)
    assert_problem(await api.client.simulate_get("/views/nope/ann"), 404)


async def test_one_row_by_key_with_an_etag_that_follows_the_row(api: Api) -> None:
    await fill(api)
    first = await api.client.simulate_get("/views/posts_per_author/ann")
    assert first.status_code == 200, first.text
    assert first.json == {"author": "ann", "posts": 2, "latest": t("2024-03-01T00:00:00Z")}
    again = await api.client.simulate_get("/views/posts_per_author/ann")
    assert again.headers["etag"] == first.headers["etag"]
    held = {"If-None-Match": first.headers["etag"]}
    unchanged = await api.client.simulate_get("/views/posts_per_author/ann", headers=held)
    assert unchanged.status_code == 304 and unchanged.headers["etag"] == first.headers["etag"]
    head = await api.client.simulate_head("/views/posts_per_author/ann")
    assert head.status_code == 200 and head.headers["etag"] == first.headers["etag"]
    await api.create({"title": "g", "blog": 1, "author": "ann", "published": True})
    changed = await api.client.simulate_get("/views/posts_per_author/ann")
    assert changed.json["posts"] == 3
    assert changed.headers["etag"] != first.headers["etag"]
    moved = await api.client.simulate_get("/views/posts_per_author/ann", headers=held)
    assert moved.status_code == 200
    assert_problem(await api.client.simulate_get("/views/posts_per_author/zed"), 404)
    bad = await api.client.simulate_get("/views/posts_per_author/ann", params={"limit": "1"})
    assert_problem(bad, 400)


async def test_rows_follow_updates_deletes_and_where(api: Api) -> None:
    docs = await fill(api)
    ann_b, bob_d = docs[1]["id"], docs[3]["id"]
    # ann's latest post leaves the view: her max falls back to the one before
    result = await api.client.simulate_patch(f"/v1/post/{ann_b}", json={"published": False})
    assert result.status_code == 200, result.text
    assert (await rows(api, {"author": "ann"}))["resources"] == [
        {"author": "ann", "posts": 1, "latest": t("2024-01-01T00:00:00Z")}
    ]
    # an unpublished post that is published joins its group
    await api.client.simulate_patch(
        f"/v1/post/{bob_d}", json={"published": True, "posted": "2025-01-01T00:00:00Z"}
    )
    assert (await rows(api, {"author": "bob"}))["resources"][0]["posts"] == 2
    # the last document of a group leaves: the group has no row
    assert (await api.client.simulate_delete(f"/v1/post/{docs[4]['id']}")).status_code == 204
    assert (await rows(api, {"author": "cy"}))["total"] == 0
    assert_problem(await api.client.simulate_get("/views/posts_per_author/cy"), 404)


async def aggregates_at(api: Api, as_of: int) -> dict[Any, dict[str, Any]]:
    """The view's rows computed directly from the documents the fold gives at ``as_of``."""
    page = await api.service.documents("post").query(Query(limit=1000), as_of=as_of)
    out: dict[Any, dict[str, Any]] = {}
    for doc in page.items:
        data = doc.data or {}
        if data.get("published") is not True:
            continue
        row = out.setdefault(data.get("author"), {"posts": 0, "times": []})
        row["posts"] += 1
        if data.get("posted") is not None:
            row["times"].append(data["posted"])
    return {
        a: {"author": a, "posts": r["posts"], "latest": max(r["times"], default=None)}
        for a, r in out.items()
    }


async def test_as_of_answers_the_aggregates_of_the_documents_then(api: Api) -> None:
    docs = await fill(api)
    week_ago = api.clock.now()
    api.clock.advance(7 * DAY)
    await api.client.simulate_delete(f"/v1/post/{docs[0]['id']}")
    await api.client.simulate_patch(f"/v1/post/{docs[3]['id']}", json={"published": True})
    await api.create({"title": "new", "blog": 1, "author": "dee", "published": True})
    now_rows = (await rows(api, {"sort": "author"}))["resources"]
    then = await rows(api, {"sort": "author", "as_of": format_time(week_ago)})
    assert then["resources"] != now_rows
    expected = await aggregates_at(api, week_ago)
    assert {r["author"]: r for r in then["resources"]} == expected
    assert {r["author"]: r for r in now_rows} == await aggregates_at(api, api.clock.now())
    # filters, one row and known_at apply at that time too
    ann = await rows(api, {"author": "ann", "as_of": format_time(week_ago)})
    assert ann["resources"][0]["posts"] == 2
    row = await api.client.simulate_get(
        "/views/posts_per_author/dee", params={"as_of": format_time(week_ago)}
    )
    assert_problem(row, 404)
    known = await rows(api, {"sort": "author", "known_at": format_time(week_ago)})
    assert {r["author"]: r for r in known["resources"]} == expected
    before_all = await rows(api, {"as_of": format_time(week_ago - DAY)})
    assert before_all == {"total": 0, "resources": []}


async def test_a_python_view_is_queried_on_its_fields_and_refuses_as_of() -> None:
    async with serving(BLOG) as api:
        await fill(api)
        [view] = (await rows(api, path="/views"))["resources"]
        assert view["kind"] == "python"
        assert view["fields"] == ["author", "posts"]
        body = await rows(api, {"sort": "-posts,author"})
        assert body["resources"][0] == {"author": "ann", "posts": 2}
        assert (await rows(api, {"posts__gt": "1"}))["total"] == 2  # ann, bob
        row = await api.client.simulate_get("/views/posts_per_author/bob")
        assert row.json == {"author": "bob", "posts": 2}
        result = await api.client.simulate_get(
            "/views/posts_per_author", params={"as_of": "1700000000"}
        )
        assert assert_problem(result, 400)["errors"][0]["path"] == "?as_of"


class Bare(View):
    name = "bare"
    sources = ("post",)

    def keys(self, change: Any) -> list[str]:
        return ["all"]

    def apply(self, rows: Any, change: Any) -> None:
        row = rows.get("all") or {"n": 0}
        n = row["n"] - (change.before is not None) + (change.after is not None)
        rows["all"] = {"n": n} if n else None


async def test_a_python_view_without_fields_is_paged_only() -> None:
    clock = ManualClock()
    service = Service(
        open_store("memory:", clock=clock), SPECS, views=[Bare()], clock=clock, background=False
    )
    async with ASGIConductor(create_app(service)) as client:
        api = Api(client, service, clock)
        await fill(api)
        assert await rows(api, path="/views/bare") == {"total": 1, "resources": [{"n": 6}]}
        assert_problem(await client.simulate_get("/views/bare", params={"n": "6"}), 400)
        assert (await client.simulate_get("/views/bare/all")).json == {"n": 6}


async def test_openapi_has_each_views_paths_and_fields() -> None:
    async with serving() as api:
        document = (await api.client.simulate_get("/openapi.json")).json
        validate(document)
        assert {"/views", "/views/posts_per_author", "/views/posts_per_author/{key}"} <= set(
            document["paths"]
        )
        schema = document["components"]["schemas"]["view_posts_per_author"]
        assert set(schema["properties"]) == {"author", "posts", "latest"}
        names = {
            p.get("name") for p in document["paths"]["/views/posts_per_author"]["get"]["parameters"]
        }
        assert {"author", "author__in", "posts__gt", "latest__lte", "sort", "fields"} <= names


async def test_views_need_the_read_scope_when_tokens_are_configured() -> None:
    tokens = [
        {"name": "reader", "token": "r" * 32, "scopes": {"post": ["read"]}},
        {"name": "writer", "token": "w" * 32, "scopes": {"post": ["write"]}},
        {"name": "elsewhere", "token": "e" * 32, "scopes": {"comment": ["read"]}},
    ]
    comment = load_declarations({"resources": [{"name": "comment"}]})
    async with serving(tokens=tokens, extra=comment) as api:
        for path in ("/views", "/views/posts_per_author", "/views/posts_per_author/ann"):
            assert_problem(await api.client.simulate_get(path), 401)
            denied = await api.client.simulate_get(
                path, headers={"Authorization": "Bearer " + "w" * 32}
            )
            assert_problem(denied, 403)
            if path != "/views":  # the listing needs read on some resource; rows on theirs
                elsewhere = await api.client.simulate_get(
                    path, headers={"Authorization": "Bearer " + "e" * 32}
                )
                assert_problem(elsewhere, 403)
            allowed = await api.client.simulate_get(
                path, headers={"Authorization": "Bearer " + "r" * 32}
            )
            assert allowed.status_code in (200, 404), allowed.text
        document = (
            await api.client.simulate_get(
                "/openapi.json", headers={"Authorization": "Bearer " + "r" * 32}
            )
        ).json
        validate(document)


async def test_keys_of_several_fields_and_of_no_field() -> None:
    from eventdocs.projections.declared import declare_view

    views = [
        declare_view(
            name="per_blog_author",
            source="post",
            group_by=["blog", "author"],
            aggregates={"posts": {"count": "*"}, "blogs": {"sum": "blog"}},
        ),
        declare_view(name="everything", source="post", aggregates={"n": {"count": "*"}}),
    ]
    clock = ManualClock()
    service = Service(
        open_store("memory:", clock=clock), SPECS, views=views, clock=clock, background=False
    )
    async with ASGIConductor(create_app(service)) as client:
        api = Api(client, service, clock)
        await fill(api)
        one = await client.simulate_get("/views/per_blog_author/1,ann")
        assert one.json == {"blog": 1, "author": "ann", "posts": 2, "blogs": 2}
        same = await client.simulate_get('/views/per_blog_author/[1,"ann"]')
        assert same.json == one.json
        nulls = await client.simulate_get("/views/per_blog_author/[3,null]")
        assert nulls.json == {"blog": 3, "author": None, "posts": 1, "blogs": 3}
        for key in ("x,ann", "1", "1,ann,2", "[1"):
            assert_problem(await client.simulate_get(f"/views/per_blog_author/{key}"), 404)
        body = await rows(api, {"blog": "2", "sort": "-posts"}, path="/views/per_blog_author")
        assert body["total"] == 1 and body["resources"][0]["posts"] == 2
        assert await rows(api, path="/views/everything") == {
            "total": 1,
            "resources": [{"n": 6}],
        }


def _schemathesis_app() -> Any:
    service = Service(
        open_store("memory:"), SPECS, views=[*load_views(BLOG_JSON), Bare()], background=False
    )
    return create_app(service)


VIEW_SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", _schemathesis_app()).include(
    path_regex="^/views"
)


@VIEW_SCHEMA.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_schemathesis_on_the_view_routes(case: Any) -> None:
    """Every view route answers as its OpenAPI paths say, never a server error."""
    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]
    )


async def test_as_of_reads_every_page_of_the_source(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eventdocs.projections.reading as reading

    monkeypatch.setattr(reading, "_PAGE", 2)  # six posts: three pages and a short one
    await fill(api)
    now = (await rows(api, {"sort": "author"}))["resources"]
    later = format_time(api.clock.now() + DAY)
    assert (await rows(api, {"sort": "author", "as_of": later}))["resources"] == now
