"""SPEC section 10: HEAD, conditional requests, Link paging, Prefer, CORS, gzip, TOA."""

from __future__ import annotations

import gzip
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from falcon.testing import ASGIConductor
from httpkit import POST, Api, assert_problem, post

from eventdocs import Service, open_store
from eventdocs.fields import Integer, Text
from eventdocs.http import create_app
from eventdocs.http.auth import hash_token, load_tokens
from eventdocs.http.serve import GZIP_MIN, served
from eventdocs.resources import Resource, load_declarations
from eventdocs.times import ManualClock


@asynccontextmanager
async def conductor(
    *, cors: Sequence[str] = (), tokens: Any = None, wrap: bool = False
) -> AsyncIterator[ASGIConductor]:
    clock = ManualClock()
    service = Service(open_store("memory:", clock=clock), [POST], clock=clock, background=False)
    app = create_app(service, cors_origins=cors, tokens=tokens)
    async with ASGIConductor(served(app) if wrap else app) as client:
        yield client


# -- HEAD ------------------------------------------------------------------------------


async def test_head_answers_like_get_without_a_body(api: Api) -> None:
    doc = await api.create(post())
    for path in (
        f"/v1/post/{doc['id']}",
        "/v1/post?limit=1",
        f"/v1/post/{doc['id']}/revisions",
        "/v1/post/_scheduled",
        "/healthz",
        "/openapi.json",
        "/v1/post/nope",
        "/views",  # routes of other modules answer HEAD too
        "/views/posts_per_author",
    ):
        got = await api.client.simulate_get(path)
        head = await api.client.simulate_head(path)
        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        assert head.headers.get("content-length") == str(len(got.content)), path
        for name in ("content-type", "etag", "link"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)


# -- If-None-Match and representation ETags -------------------------------------------


async def test_if_none_match_answers_304_with_the_etag(api: Api) -> None:
    doc = await api.create(post())
    path = f"/v1/post/{doc['id']}"
    first = await api.client.simulate_get(path)
    etag = first.headers["etag"]
    assert etag == '"1"'
    for header in (etag, f'"9", {etag}', f"W/{etag}", "*"):
        again = await api.client.simulate_get(path, headers={"If-None-Match": header})
        assert again.status_code == 304, header
        assert again.headers["etag"] == etag and again.content == b""
    await api.client.simulate_patch(path, json={"title": "new"})
    changed = await api.client.simulate_get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] == '"2"'


async def test_a_fields_subset_has_its_own_etag(api: Api) -> None:
    doc = await api.create(post())
    path = f"/v1/post/{doc['id']}"
    full = (await api.client.simulate_get(path)).headers["etag"]
    title = (await api.client.simulate_get(path, params={"fields": "title"})).headers["etag"]
    author = (await api.client.simulate_get(path, params={"fields": "author"})).headers["etag"]
    assert len({full, title, author}) == 3
    assert re.fullmatch(r'"1-[0-9a-f]{8}"', title)
    # The full document's tag does not validate the subset, and the other way round.
    subset = await api.client.simulate_get(
        path, params={"fields": "title"}, headers={"If-None-Match": full}
    )
    assert subset.status_code == 200
    cached = await api.client.simulate_get(
        path, params={"fields": "title"}, headers={"If-None-Match": title}
    )
    assert cached.status_code == 304
    # A subset's tag still names the revision for a write.
    written = await api.client.simulate_patch(
        path, json={"title": "x"}, headers={"If-Match": title}
    )
    assert written.status_code == 200, written.text


# -- If-Match lists and weak tags -----------------------------------------------------


async def test_if_match_takes_a_list_and_never_a_weak_tag(api: Api) -> None:
    doc = await api.create(post())
    path = f"/v1/post/{doc['id']}"
    before = await api.seq()
    for header in ('W/"1"', 'W/"1", W/"2"', '"7", "8"'):
        result = await api.client.simulate_patch(
            path, json={"title": "x"}, headers={"If-Match": header}
        )
        assert_problem(result, 412)
    assert await api.seq() == before
    listed = await api.client.simulate_patch(
        path, json={"title": "x"}, headers={"If-Match": '"7", W/"1", "1"'}
    )
    assert listed.status_code == 200 and listed.json["_rev"] == 2
    scheduled = await api.client.simulate_patch(
        path, json={"title": "y"}, headers={"If-Match": '"2", "3"', "TOA": api.toa(60)}
    )
    assert assert_problem(scheduled, 400)["errors"][0]["path"] == "If-Match"
    deleted = await api.client.simulate_delete(path, headers={"If-Match": '"5", "2"'})
    assert deleted.status_code == 204


async def test_if_match_that_is_not_an_etag_list_is_400(api: Api) -> None:
    doc = await api.create(post())
    result = await api.client.simulate_put(
        f"/v1/post/{doc['id']}", json={"title": "x"}, headers={"If-Match": '"1" junk'}
    )
    assert assert_problem(result, 400)["errors"][0]["path"] == "If-Match"


# -- Link: rel="next" -----------------------------------------------------------------


def _next(link: str | None) -> str | None:
    if link is None:
        return None
    found = re.search(r'<([^>]*)>;\s*rel="?next"?', link)
    return None if found is None else found.group(1)


async def test_link_next_is_followed_to_the_end(api: Api) -> None:
    for n in range(7):
        await api.create(post(title=f"t{n}"))
    seen: list[str] = []
    path: str | None = "/v1/post?sort=title&limit=3&fields=title"
    pages = 0
    while path is not None:
        page = await api.client.simulate_get(path)
        assert page.status_code == 200, page.text
        assert page.json["total"] == 7
        seen += [d["title"] for d in page.json["resources"]]
        path = _next(page.headers.get("link"))
        pages += 1
    assert pages == 3
    assert seen == [f"t{n}" for n in range(7)]


async def test_revisions_and_scheduled_pages_link_next(api: Api) -> None:
    doc = await api.create(post())
    for n in range(3):
        await api.client.simulate_patch(f"/v1/post/{doc['id']}", json={"title": f"v{n}"})
    first = await api.client.simulate_get(f"/v1/post/{doc['id']}/revisions?limit=2")
    assert _next(first.headers.get("link")) == f"/v1/post/{doc['id']}/revisions?limit=2&offset=2"
    last = await api.client.simulate_get(f"/v1/post/{doc['id']}/revisions?limit=2&offset=2")
    assert "link" not in last.headers
    for n in range(2):
        await api.client.simulate_patch(
            f"/v1/post/{doc['id']}", json={"title": f"s{n}"}, headers={"TOA": api.toa(60 + n)}
        )
    scheduled = await api.client.simulate_get("/v1/post/_scheduled?limit=1")
    assert _next(scheduled.headers.get("link")) == "/v1/post/_scheduled?limit=1&offset=1"


async def _follow(api: Api, path: str | None) -> list[int]:
    """The seqs of every page from ``path`` on, following ``after`` cursor links."""
    seqs: list[int] = []
    while path is not None:
        page = await api.client.simulate_get(path)
        assert page.status_code == 200, page.text
        seqs += [r["seq"] for r in page.json["resources"]]
        path = _next(page.headers.get("link"))
        assert path is None or ("after=" in path and "offset" not in path)
    return seqs


async def test_revisions_and_scheduled_page_by_an_after_cursor(api: Api) -> None:
    doc = await api.create(post())
    path = f"/v1/post/{doc['id']}/revisions"
    for n in range(4):
        when = {"TOA": api.toa(60 + n)} if n % 2 else {}
        await api.client.simulate_patch(
            f"/v1/post/{doc['id']}", json={"title": f"v{n}"}, headers=when
        )
    everything = [r["seq"] for r in (await api.client.simulate_get(path)).json["resources"]]
    assert len(everything) == 5
    first = everything[0]
    assert await _follow(api, f"{path}?limit=2&after={first}") == everything[1:]
    pending = [
        e["seq"] for e in (await api.client.simulate_get("/v1/post/_scheduled")).json["resources"]
    ]
    assert len(pending) == 2
    assert await _follow(api, f"/v1/post/_scheduled?limit=1&after={pending[0]}") == pending[1:]
    other = await api.create(post())
    for bad in (f"{path}?after={first}&offset=1", f"{path}?after=x", f"{path}?after=999"):
        result = await api.client.simulate_get(bad)
        assert assert_problem(result, 400)["errors"][0]["path"] == "?after", bad
    foreign = await api.client.simulate_get(f"/v1/post/{other['id']}/revisions?after={first}")
    assert assert_problem(foreign, 400)["errors"][0]["path"] == "?after"


# -- Prefer: return=minimal -----------------------------------------------------------


async def test_prefer_return_minimal_answers_without_the_document(api: Api) -> None:
    minimal = {"Prefer": "return=minimal"}
    created = await api.client.simulate_post("/v1/post", json=post(), headers=minimal)
    assert created.status_code == 201 and created.content == b""
    assert created.headers["preference-applied"] == "return=minimal"
    assert created.headers["etag"] == '"1"'
    location = created.headers["location"]
    updated = await api.client.simulate_patch(location, json={"title": "x"}, headers=minimal)
    assert updated.status_code == 204 and updated.headers["etag"] == '"2"'
    full = await api.client.simulate_patch(location, json={"title": "y"})
    assert full.status_code == 200 and full.json["title"] == "y"
    assert "preference-applied" not in full.headers


# -- Caesium-TOA and TOA ---------------------------------------------------------------


async def test_caesium_toa_and_toa_that_differ_are_400(api: Api) -> None:
    before = await api.seq()
    result = await api.client.simulate_post(
        "/v1/post", json=post(), headers={"Caesium-TOA": api.toa(60), "TOA": api.toa(120)}
    )
    assert assert_problem(result, 400)["errors"][0]["path"] == "TOA"
    assert await api.seq() == before
    same = api.toa(60)
    agreed = await api.client.simulate_post(
        "/v1/post", json=post(), headers={"Caesium-TOA": same, "TOA": same}
    )
    assert agreed.status_code == 202


# -- in/notin with commas --------------------------------------------------------------


async def test_in_values_with_commas_are_quoted_or_repeated(api: Api) -> None:
    for name in ("Smith, Ann", "bob", 'say "hi", bob'):
        await api.create({"name": name}, "/v1/thing")
    quoted = await api.client.simulate_get(
        "/v1/thing", query_string='name__in="Smith, Ann",bob&sort=name'
    )
    assert [d["name"] for d in quoted.json["resources"]] == ["Smith, Ann", "bob"]
    escaped = await api.client.simulate_get(
        "/v1/thing", query_string='name__notin="say ""hi"", bob"&sort=name'
    )
    assert [d["name"] for d in escaped.json["resources"]] == ["Smith, Ann", "bob"]
    repeated = await api.client.simulate_get(
        "/v1/thing", query_string='name__in="Smith, Ann"&name__in=bob'
    )
    assert repeated.json["total"] == 2
    unbalanced = await api.client.simulate_get("/v1/thing", query_string='name__in="Smith')
    assert assert_problem(unbalanced, 400)["errors"][0]["path"] == "?name__in"


# -- sortable is opt-out ---------------------------------------------------------------


async def test_every_scalar_field_sorts_unless_declared_otherwise() -> None:
    class Note(Resource):
        name = "note"
        version = 1

        class schema:
            title = Text()
            rank = Integer(sortable=False)

    [declared] = load_declarations(
        {
            "resources": [
                {
                    "name": "entry",
                    "schema": {
                        "type": "object",
                        "properties": {
                            "posted": {"type": "string", "format": "date-time"},
                            "hidden": {"type": "integer", "x-sortable": False},
                        },
                    },
                }
            ]
        }
    )
    clock = ManualClock()
    service = Service(
        open_store("memory:", clock=clock), [Note.spec(), declared], clock=clock, background=False
    )
    async with ASGIConductor(create_app(service)) as client:
        for path in ("/v1/note?sort=-title", "/v1/entry?sort=posted"):
            assert (await client.simulate_get(path)).status_code == 200, path
        for path, field in (("/v1/note?sort=rank", "rank"), ("/v1/entry?sort=hidden", "hidden")):
            body = assert_problem(await client.simulate_get(path), 400)
            assert f"{field!r} is not sortable" in body["detail"]


# -- CORS ------------------------------------------------------------------------------

PREFLIGHT = {
    "Origin": "https://app.example",
    "Access-Control-Request-Method": "PATCH",
    "Access-Control-Request-Headers": "authorization, content-type, if-match",
}


async def test_cors_is_off_by_default() -> None:
    async with conductor() as client:
        got = await client.simulate_get("/healthz", headers={"Origin": "https://app.example"})
        assert "access-control-allow-origin" not in got.headers
        preflight = await client.simulate_options("/v1/post/x", headers=PREFLIGHT)
        assert "access-control-allow-origin" not in preflight.headers


async def test_cors_allows_the_configured_origins_even_with_tokens() -> None:
    secret = "cors-secret-0123456789"
    tokens = load_tokens([{"name": "web", "sha256": hash_token(secret), "scopes": {"*": ["read"]}}])
    async with conductor(cors=["https://app.example"], tokens=tokens) as client:
        preflight = await client.simulate_options("/v1/post/x", headers=PREFLIGHT)
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert "PATCH" in preflight.headers["access-control-allow-methods"]
        assert "authorization" in preflight.headers["access-control-allow-headers"]
        got = await client.simulate_get(
            "/v1/post",
            headers={"Origin": "https://app.example", "Authorization": f"Bearer {secret}"},
        )
        assert got.headers["access-control-allow-origin"] == "https://app.example"
        assert "ETag" in got.headers["access-control-expose-headers"]
        other = await client.simulate_options(
            "/v1/post/x", headers={**PREFLIGHT, "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers


# -- gzip ------------------------------------------------------------------------------


async def test_large_answers_are_gzipped_small_ones_not() -> None:
    async with conductor(wrap=True) as client:
        accept = {"Accept-Encoding": "gzip"}
        large = await client.simulate_get("/openapi.json", headers=accept)
        assert large.headers["content-encoding"] == "gzip"
        assert "Accept-Encoding" in large.headers["vary"]
        plain = await client.simulate_get("/openapi.json")
        assert "content-encoding" not in plain.headers
        assert len(plain.content) > GZIP_MIN
        assert gzip.decompress(large.content) == plain.content
        small = await client.simulate_get("/healthz", headers=accept)
        assert len(small.content) < GZIP_MIN and "content-encoding" not in small.headers
        head = await client.simulate_head("/openapi.json", headers=accept)
        assert head.status_code == 200 and head.content == b""
        for name in ("content-encoding", "content-length", "content-type", "vary"):
            assert head.headers.get(name) == large.headers.get(name), name


def test_gzip_min_zero_serves_the_app_as_it_is() -> None:
    service = Service(open_store("memory:"), [POST], background=False)
    app = create_app(service)
    assert served(app, gzip_min=0) is app


# -- request ids -----------------------------------------------------------------------


async def test_x_request_id_is_kept_or_made(api: Api) -> None:
    given = await api.client.simulate_get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await api.client.simulate_get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    bad = await api.client.simulate_get("/healthz", headers={"X-Request-ID": "x" * 300})
    assert bad.headers["x-request-id"] != "x" * 300


# -- / and /docs ------------------------------------------------------------------------


async def test_docs_serve_swagger_ui_from_the_package_without_a_token() -> None:
    tokens = load_tokens([{"name": "r", "token": "r" * 20, "scopes": {"*": ["read"]}}])
    async with conductor(tokens=tokens) as client:
        page = await client.simulate_get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assets = re.findall(r'(?:src|href)="(/docs/static/[^"]+)"', page.text)
        assert len(assets) == 4 and "http" not in " ".join(re.findall(r'src="([^"]+)"', page.text))
        for asset in assets:
            got = await client.simulate_get(asset)
            assert got.status_code == 200 and len(got.content) > 0, asset
        assert_problem(await client.simulate_get("/docs/static/../../etc"), 404)
        assert_problem(await client.simulate_get("/openapi.json"), 401)
        index = await client.simulate_get("/", headers={"Authorization": "Bearer " + "r" * 20})
        assert index.json["openapi"] == "/openapi.json" and index.json["resources"] == ["/v1/post"]


async def test_the_after_cursor_pages_by_id_and_links_on(api: Api) -> None:
    ids = sorted([(await api.create(post(title=f"t{n}")))["id"] for n in range(5)])
    seen: list[str] = []
    path: str | None = "/v1/post?after=&limit=2"
    while path is not None:
        page = await api.client.simulate_get(path)
        assert page.status_code == 200, page.text
        seen += [d["id"] for d in page.json["resources"]]
        path = _next(page.headers.get("link"))
        if path is not None:
            assert "after=" in path and "offset" not in path
    assert seen == ids
    middle = await api.client.simulate_get("/v1/post", params={"after": ids[2]})
    assert [d["id"] for d in middle.json["resources"]] == ids[3:]
    for bad in ("after=x&sort=title", "after=x&offset=2", "after=x&sort=-id"):
        result = await api.client.simulate_get("/v1/post", query_string=bad)
        assert assert_problem(result, 400)["errors"][0]["path"] == "?after"
