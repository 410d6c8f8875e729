"""``POST /admin/replay/{name}``: the admin scope on that resource, a real SQLite store."""

from __future__ import annotations

from pathlib import Path

from blog import Post, PostsPerAuthor
from falcon.testing import ASGIConductor

from eventdocs import Service, open_store
from eventdocs.http import create_app
from eventdocs.http.auth import load_tokens
from eventdocs.projections.replay import verify
from eventdocs.times import ManualClock

TOKENS = {
    "tokens": [
        {"name": "ops", "token": "ops-token-0123456789", "scopes": {"post": ["admin"]}},
        {"name": "app", "token": "app-token-0123456789", "scopes": {"*": ["read", "write"]}},
    ]
}


OPS = {"Authorization": "Bearer ops-token-0123456789"}
APP = {"Authorization": "Bearer app-token-0123456789"}


async def test_replay_needs_admin_and_rebuilds_the_resource_and_its_views(tmp_path: Path) -> None:
    clock = ManualClock()
    store = open_store(str(tmp_path / "s.db"), clock=clock)
    service = Service(store, [Post.spec()], views=[PostsPerAuthor()], clock=clock, background=False)
    app = create_app(service, tokens=load_tokens(TOKENS))
    async with ASGIConductor(app) as client:
        for i in range(5):
            body = {"title": f"t{i}", "blog": 1, "author": "ann" if i % 2 else "bob"}
            created = await client.post("/v1/post", json=body, headers=APP)
            assert created.status_code == 201, created.text
        denied = await client.post("/admin/replay/post", headers=APP)
        assert denied.status_code == 403, denied.text
        anonymous = await client.post("/admin/replay/post")
        assert anonymous.status_code == 401
        done = await client.post("/admin/replay/post", headers=OPS)
        assert done.status_code == 200, done.text
        assert done.json["events"] == 5 and done.json["views"] == ["posts_per_author"]
        missing = await client.post("/admin/replay/nope", headers=OPS)
        assert missing.status_code in (403, 404)
        assert await verify(store, ["post"], [PostsPerAuthor()]) == []
