"""SPEC section 5: every error is problem+json, and appends nothing."""

from __future__ import annotations

from typing import Any

import pytest
from httpkit import POST, Api, assert_problem, post, running

from eventdocs.errors import StorageError, StoreUnavailable


async def test_bad_json_answers_400(api: Api) -> None:
    doc = await api.create(post())
    for method, path in [
        ("POST", "/v1/post"),
        ("PUT", f"/v1/post/{doc['id']}"),
        ("PATCH", f"/v1/post/{doc['id']}"),
        ("POST", f"/v1/post/{doc['id']}/revert"),
        ("POST", "/v1/post/_bulk"),
    ]:
        for body in (b'{"title": ', b"\xff\xfe", b""):
            result = await api.client.simulate_request(
                method, path, body=body, headers={"Content-Type": "application/json"}
            )
            assert_problem(result, 400)
    assert await api.seq() == 1


async def test_unknown_routes_and_documents_answer_404(api: Api) -> None:
    for path in ("/nope", "/v1/nope", "/v9/post", "/v1/post/a/b/c", "/v1/post/missing"):
        assert_problem(await api.client.simulate_get(path), 404)
    assert_problem(await api.client.simulate_put("/v1/post/missing", json={"title": "x"}), 404)
    assert_problem(await api.client.simulate_delete("/v1/post/missing"), 404)
    body = {"to_revision": 1}
    assert_problem(await api.client.simulate_post("/v1/post/missing/revert", json=body), 404)
    assert await api.seq() == 0


async def test_undeclared_methods_answer_405_with_allow(api: Api) -> None:
    for method, path, allow in [
        ("DELETE", "/v1/post", "GET, POST"),
        ("POST", "/v1/post/x", "DELETE, GET, PATCH, PUT"),
        ("GET", "/v1/post/_bulk", "POST"),
        ("PUT", "/v1/post/_scheduled", "GET"),
        ("GET", "/v1/post/x/revert", "POST"),
        ("POST", "/healthz", "GET"),
    ]:
        result = await api.client.simulate_request(method, path, json={})
        body = assert_problem(result, 405)
        assert result.headers["allow"].removesuffix(", OPTIONS") == allow
        assert method in body["detail"]
    assert await api.seq() == 0


async def test_body_too_large_answers_413_before_reading_it() -> None:
    async with running([POST], max_body=64) as api:
        result = await api.client.simulate_post("/v1/post", json=post(body="x" * 100))
        body = assert_problem(result, 413)
        assert body["errors"] == [{"path": "", "message": "at most 64 bytes"}]
        small = await api.client.simulate_post("/v1/post", json=post())
        assert small.status_code == 201
        assert await api.seq() == 1


async def call_raw(api: Api, body_chunks: list[bytes]) -> tuple[int, dict[str, str], bytes]:
    """POST /v1/post through the raw ASGI interface, chunked (no Content-Length)."""
    app = api.client.app
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/post",
        "raw_path": b"/v1/post",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    events = [
        {"type": "http.request", "body": chunk, "more_body": i < len(body_chunks) - 1}
        for i, chunk in enumerate(body_chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return events.pop(0) if events else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


async def test_chunked_body_too_large_answers_413() -> None:
    async with running([POST], max_body=64) as api:
        status, headers, _ = await call_raw(api, [b'{"title": "', b"x" * 40, b"y" * 40, b'"}'])
        assert status == 413 and headers["content-type"] == "application/problem+json"
        status, _, body = await call_raw(api, [b'{"title": "T",', b' "blog": 1}'])
        assert status == 201, body
        assert await api.seq() == 1


async def test_non_json_content_types_answer_415(api: Api) -> None:
    doc = await api.create(post())
    for method, path, kind in [
        ("POST", "/v1/post", "application/x-www-form-urlencoded"),
        ("PUT", f"/v1/post/{doc['id']}", "text/plain"),
        ("PUT", f"/v1/post/{doc['id']}", "application/merge-patch+json"),
        ("PATCH", f"/v1/post/{doc['id']}", "application/json-patch+json"),
        ("POST", "/v1/post/_bulk", "text/csv"),
    ]:
        result = await api.client.simulate_request(
            method, path, body=b'{"title": "x"}', headers={"Content-Type": kind}
        )
        body = assert_problem(result, 415)
        assert body["errors"][0]["path"] == "Content-Type"
    assert await api.seq() == 1


async def test_schema_violations_answer_422_one_entry_per_path(api: Api) -> None:
    result = await api.client.simulate_post(
        "/v1/post", json={"title": 3, "blog": "one", "tags": ["a", 2], "extra": True}
    )
    body = assert_problem(result, 422)
    assert sorted(e["path"] for e in body["errors"]) == ["/blog", "/extra", "/tags/1", "/title"]
    missing = assert_problem(await api.client.simulate_post("/v1/post", json={}), 422)
    assert {e["path"] for e in missing["errors"]} == {"/blog", "/title"}
    doc = await api.create(post())
    path = f"/v1/post/{doc['id']}"
    assert_problem(await api.client.simulate_put(path, json={"blog": None}), 422)
    assert_problem(await api.client.simulate_patch(path, json={"title": None}), 422)
    assert_problem(await api.client.simulate_put(path, json=["title"]), 400)
    assert_problem(await api.client.simulate_post("/v1/post", json={**post(), "id": "x"}), 400)
    assert await api.seq() == 1


async def test_bad_headers_answer_400(api: Api) -> None:
    doc = await api.create(post())
    path = f"/v1/post/{doc['id']}"
    for headers in ({"Caesium-TOA": "tomorrow"}, {"TOA": "2024-01-01T00:00:00"}, {"If-Match": "x"}):
        result = await api.client.simulate_put(path, json={"title": "x"}, headers=headers)
        body = assert_problem(result, 400)
        assert body["errors"][0]["path"] in ("Caesium-TOA", "TOA", "If-Match")
    cancel = await api.client.simulate_delete("/v1/post/_scheduled/1", headers={"TOA": "1"})
    assert_problem(cancel, 400)
    assert await api.seq() == 1


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RuntimeError("secret detail"), 500),
        (StorageError("secret SQL"), 500),
        (StoreUnavailable("secret host"), 503),
    ],
)
async def test_failures_never_leak_details(
    api: Api, error: Exception, status: int, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(api.store, "get", failing)
    monkeypatch.setattr(api.store, "append", failing)
    for result in (
        await api.client.simulate_get("/v1/post/x"),
        await api.client.simulate_post("/v1/post", json=post()),
    ):
        body = assert_problem(result, status)
        assert "secret" not in result.text
        assert body["errors"] == []
    if status == 503:
        assert result.headers["retry-after"] == "1"
    assert await api.seq() == 0
