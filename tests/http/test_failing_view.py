"""A view whose code raises never fails a write (SPEC section 8)."""

from __future__ import annotations

from pathlib import Path

from falcon.testing import ASGIConductor
from httpkit import POST

from eventdocs import Service, open_store
from eventdocs.http import create_app
from eventdocs.projections.replay import verify
from eventdocs.projections.views import Change, Rows, View, rebuild_view
from eventdocs.times import ManualClock


class Fragile(View):
    """Counts posts per title, and breaks on the title ``boom``."""

    name = "fragile"
    sources = ("post",)
    broken = True

    def keys(self, change: Change) -> list[str]:
        return [str(d["title"]) for d in (change.before, change.after) if d is not None]

    def apply(self, rows: Rows, change: Change) -> None:
        for doc, delta in ((change.before, -1), (change.after, 1)):
            if doc is None:
                continue
            if doc["title"] == "boom" and self.broken:
                raise RuntimeError("the view's own bug")
            count = (rows.get(doc["title"]) or {"count": 0})["count"] + delta
            rows[doc["title"]] = {"count": count} if count else None


async def test_a_raising_view_stops_and_is_reported_while_writes_answer(tmp_path: Path) -> None:
    view = Fragile()
    store = open_store(str(tmp_path / "store.db"), clock=ManualClock())
    service = Service(store, [POST], views=[view], background=False)
    async with ASGIConductor(create_app(service)) as client:
        ok = await client.simulate_post("/v1/post", json={"title": "fine", "blog": 1})
        assert ok.status_code == 201
        boom = await client.simulate_post("/v1/post", json={"title": "boom", "blog": 1})
        assert boom.status_code == 201  # committed, so answered
        later = await client.simulate_post("/v1/post", json={"title": "fine", "blog": 2})
        assert later.status_code == 201
        assert (await client.simulate_get(f"/v1/post/{boom.json['id']}")).status_code == 200
        health = await client.simulate_get("/healthz")
        assert health.status_code == 200 and health.json["status"] == "degraded"
        failing = health.json["failing_views"]["fragile"]
        assert failing["resource"] == "post" and "the view's own bug" in failing["error"]
        # The view stopped before the change that broke it.
        assert await store.read_view("fragile") == {"fine": {"count": 1}}
        # Once its code is fixed, a rebuild brings it back in line with the fold.
        view.broken = False
        await rebuild_view(store, view)
        assert await verify(store, ["post"], [view]) == []
        assert await store.read_view("fragile") == {"fine": {"count": 2}, "boom": {"count": 1}}
