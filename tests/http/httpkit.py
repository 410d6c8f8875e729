"""Helpers of the HTTP tests: the app over a memory (or SQLite file) store.

Every test drives the real falcon ASGI app through falcon's ``ASGIConductor``
(lifespan included) with a :class:`ManualClock`: scheduled writes come due
when a test advances the clock and runs the scheduler once, never by sleeping.
"""

# ruff: noqa: RUF012  (declarations are mesh-style class attributes)

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from falcon.testing import ASGIConductor, Result

from eventdocs import Service, open_store
from eventdocs.documents import Documents, Limits
from eventdocs.fields import Boolean, DateTime, Decimal, Integer, Text
from eventdocs.fields import Sequence as Seq
from eventdocs.http import create_app
from eventdocs.resources import (
    STANDARD_REQUESTS,
    Resource,
    ResourceSpec,
    load_target,
    load_views,
)
from eventdocs.storage import EventStore
from eventdocs.times import ManualClock, format_time

ROOT = Path(__file__).resolve().parents[2]
BLOG = str(ROOT / "examples" / "blog.py")
[POST] = load_target(BLOG)
VIEWS = load_views(BLOG)

PROBLEM = "application/problem+json"
ALL_TEXT_OPS = [
    "equal", "iequal", "not", "inot", "prefix", "iprefix", "suffix", "isuffix",
    "contains", "icontains", "gt", "gte", "lt", "lte", "null", "in", "notin",
]  # fmt: skip
ORDERED_OPS = ["equal", "not", "gt", "gte", "lt", "lte", "null", "in", "notin"]


class Thing(Resource):
    """A resource whose fields declare every operator, for the query tests."""

    name = "thing"
    version = 1

    class schema:
        name = Text(operators=ALL_TEXT_OPS, sortable=True)
        count = Integer(operators=ORDERED_OPS, sortable=True)
        price = Decimal(operators=ORDERED_OPS, sortable=True)
        seen = DateTime(operators=ORDERED_OPS, sortable=True)
        flag = Boolean(operators=["equal", "not", "null"])
        tags = Seq(Text())


class Greeter(Resource):
    """Read-only over HTTP, with mesh's hello and an overridden get."""

    name = "greeter"
    version = 1
    requests = ["query", "get"]

    class schema:
        name = Text(required=True, nonnull=True, operators=["equal"])

    class hello:
        """Say hello (mesh's example)."""

        endpoint = ("GET", "hello")
        schema = {"name": Text(), "times": Integer(minimum=1, maximum=5)}
        responses = {200: {"message": Text(required=True, nonnull=True)}}

        async def handle(self, documents: Documents, body: dict[str, Any]) -> Any:
            return {
                "message": " ".join(
                    [f"Hello, {body.get('name') or 'world'}!"] * body.get("times", 1)
                )
            }

    class shout:
        endpoint = ("POST", "{key}/shout")
        schema = {"loud": Boolean(default=True)}
        responses = {
            200: {"id": Text(required=True), "message": Text(required=True)},
            204: None,
        }

        async def handle(self, documents: Documents, body: dict[str, Any], key: str) -> Any:
            doc = await documents.get(key)
            assert doc.data is not None
            if not body["loud"]:
                return 204, None
            return {"id": key, "message": doc.data["name"].upper()}

    class broken:
        endpoint = ("POST", "broken")
        responses = {200: {"message": Text(required=True)}}

        async def handle(self, documents: Documents, body: dict[str, Any]) -> Any:
            return {"wrong": "shape"}

    class get(Resource.get):
        fields = {"length": Integer(), "source": Text(default="eventdocs")}

        async def extend(self, documents: Documents, document: dict[str, Any]) -> dict[str, Any]:
            return {"length": len(document["name"])}


class GreeterV2(Greeter):
    version = 2
    requests = STANDARD_REQUESTS


@dataclass
class Api:
    """The app under test, with what a test needs to look behind it."""

    client: ASGIConductor
    service: Service
    clock: ManualClock

    @property
    def store(self) -> EventStore:
        return self.service.store

    async def seq(self, resource: str = "post") -> int:
        """The last seq of ``resource``'s log: unchanged means nothing was appended."""
        return await self.store.last_seq(resource)

    async def due(self, seconds: float) -> None:
        """Advance the clock and let the scheduler apply what came due."""
        self.clock.advance(int(seconds * 1_000_000))
        await self.service.scheduler.run_once()

    def toa(self, seconds: float) -> str:
        """A ``Caesium-TOA`` value ``seconds`` from now (RFC 3339)."""
        return format_time(self.clock.now() + int(seconds * 1_000_000))

    async def create(self, body: dict[str, Any], path: str = "/v1/post") -> dict[str, Any]:
        result = await self.client.simulate_post(path, json=body)
        assert result.status_code == 201, result.text
        doc: dict[str, Any] = result.json
        return doc


def post(**fields: Any) -> dict[str, Any]:
    """A valid blog post body."""
    return {"title": "Hello", "blog": 1, "author": "ann", **fields}


def assert_problem(result: Result, status: int) -> dict[str, Any]:
    """``result`` is an RFC 9457 problem with ``status``; returns its body."""
    assert result.status_code == status, result.text
    assert result.headers["content-type"] == PROBLEM
    body: dict[str, Any] = result.json
    assert set(body) == {"type", "title", "status", "detail", "errors"}
    assert body["status"] == status
    assert body["type"].startswith("urn:eventdocs:problem:")
    assert isinstance(body["errors"], list)
    for error in body["errors"]:
        assert set(error) == {"path", "message"}
    assert "Traceback" not in result.text
    return body


MakeApi = Callable[..., Any]


@asynccontextmanager
async def running(
    specs: Sequence[ResourceSpec],
    *,
    store_url: str = "memory:",
    clock: ManualClock | None = None,
    max_body: int = 1 << 20,
    limits: Limits | None = None,
    with_views: bool = False,
) -> AsyncIterator[Api]:
    """The app over ``specs`` on a fresh store, started and stopped by its lifespan."""
    clock = clock or ManualClock()
    store = open_store(store_url, clock=clock)
    service = Service(
        store,
        specs,
        views=VIEWS if with_views else (),
        clock=clock,
        limits=limits,
        background=False,
    )
    app = create_app(service, max_body=max_body)
    async with ASGIConductor(app) as client:
        yield Api(client, service, clock)
