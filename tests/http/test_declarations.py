"""What declarations change over HTTP: read-only, overrides, custom requests, versions."""

from __future__ import annotations

from httpkit import ROOT, Api, Greeter, GreeterV2, assert_problem, running

from eventdocs.resources import load_declarations, load_target


async def test_read_only_resource_answers_405_for_writes() -> None:
    async with running([Greeter.spec()]) as api:
        created = await api.service.documents("greeter").create({"name": "ann"})
        doc_id = created.event.id
        for method, path, allow in [
            ("POST", "/v1/greeter", "GET"),
            ("PUT", f"/v1/greeter/{doc_id}", "GET"),
            ("PATCH", f"/v1/greeter/{doc_id}", "GET"),
            ("DELETE", f"/v1/greeter/{doc_id}", "GET"),
            ("POST", f"/v1/greeter/{doc_id}/revert", ""),
            ("POST", "/v1/greeter/_bulk", ""),
            ("DELETE", "/v1/greeter/_scheduled/1", ""),
        ]:
            result = await api.client.simulate_request(method, path, json={"name": "x"})
            assert_problem(result, 405)
            assert result.headers["allow"].removesuffix(", OPTIONS") == allow, path
        assert await api.seq("greeter") == 1
        listing = await api.client.simulate_get("/v1/greeter", params={"name": "ann"})
        assert listing.json["total"] == 1


async def test_overridden_get_adds_fields() -> None:
    async with running([Greeter.spec()]) as api:
        created = await api.service.documents("greeter").create({"name": "ann"})
        result = await api.client.simulate_get(f"/v1/greeter/{created.event.id}")
        assert result.json["length"] == 3 and result.json["source"] == "eventdocs"
        assert result.json["name"] == "ann"
        only = await api.client.simulate_get(
            f"/v1/greeter/{created.event.id}", params={"fields": "length"}
        )
        assert set(only.json) == {"id", "length", "_rev", "_updated"}
        listing = await api.client.simulate_get("/v1/greeter")
        assert "length" not in listing.json["resources"][0]


async def test_custom_requests_run_their_handlers() -> None:
    async with running([Greeter.spec()]) as api:
        hello = await api.client.simulate_get("/v1/greeter/hello")
        assert hello.status_code == 200 and hello.json == {"message": "Hello, world!"}
        hello = await api.client.simulate_get("/v1/greeter/hello?name=Ann&times=2")
        assert hello.json == {"message": "Hello, Ann! Hello, Ann!"}
        assert_problem(await api.client.simulate_get("/v1/greeter/hello?times=zero"), 400)
        assert_problem(await api.client.simulate_get("/v1/greeter/hello?times=0"), 400)
        assert_problem(await api.client.simulate_get("/v1/greeter/hello?who=x"), 400)
        assert_problem(await api.client.simulate_post("/v1/greeter/hello", json={}), 405)

        created = await api.service.documents("greeter").create({"name": "ann"})
        path = f"/v1/greeter/{created.event.id}/shout"
        shout = await api.client.simulate_post(path, json={})
        assert shout.json == {"id": created.event.id, "message": "ANN"}
        quiet = await api.client.simulate_post(path, json={"loud": False})
        assert quiet.status_code == 204 and quiet.content == b""
        assert_problem(await api.client.simulate_post(path, json={"loud": "yes"}), 422)
        assert_problem(await api.client.simulate_post("/v1/greeter/nope/shout", json={}), 404)
        assert_problem(await api.client.simulate_post("/v1/greeter/broken", json={}), 500)


async def test_a_later_version_shares_the_log_and_inherits_requests() -> None:
    async with running([Greeter.spec(), GreeterV2.spec()]) as api:
        created = await api.client.simulate_post("/v2/greeter", json={"name": "bo"})
        assert created.status_code == 201
        assert created.headers["location"].startswith("/v2/greeter/")
        doc_id = created.json["id"]
        v1 = await api.client.simulate_get(f"/v1/greeter/{doc_id}")
        assert v1.json["name"] == "bo" and v1.json["length"] == 2
        assert (await api.client.simulate_get("/v2/greeter/hello")).status_code == 200
        assert_problem(await api.client.simulate_post("/v1/greeter", json={"name": "x"}), 405)
        assert await api.seq("greeter") == 1


async def test_json_custom_request_without_code_answers_501() -> None:
    [spec] = load_declarations(
        {
            "resources": [
                {
                    "name": "note",
                    "schema": {"properties": {"text": {"type": "string"}}},
                    "custom": {
                        "ping": {
                            "endpoint": ["POST", "ping"],
                            "schema": {"properties": {"n": {"type": "integer"}}},
                            "responses": {"200": {"properties": {"pong": {"type": "integer"}}}},
                        }
                    },
                }
            ]
        }
    )
    async with running([spec]) as api:
        assert_problem(await api.client.simulate_post("/v1/note/ping", json={"n": "x"}), 422)
        assert_problem(await api.client.simulate_post("/v1/note/ping", json={"n": 1}), 501)
        assert await api.seq("note") == 0


async def test_the_json_blog_serves_like_the_python_blog() -> None:
    [spec] = load_target(str(ROOT / "examples" / "blog.json"))
    [python] = load_target(str(ROOT / "examples" / "blog.py"))
    assert spec == python
    async with running([spec]) as api:
        await exercise(api)


async def exercise(api: Api) -> None:
    created = await api.create({"title": "Hi", "blog": 2, "tags": ["x"]})
    assert created["published"] is False
    found = await api.client.simulate_get("/v1/post", params={"title__icontains": "hi"})
    assert found.json["total"] == 1
