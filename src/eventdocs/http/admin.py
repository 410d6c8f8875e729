"""``POST /admin/replay/{name}``: rebuild a resource's projections inside the server.

The server owns its SQLite file, so ``eventdocs replay --url`` asks it to
replay instead of opening the file. The rebuild runs beside the live
projection (the SQLite store builds fresh tables and swaps them in one
transaction), so reads and writes go on meanwhile; events appended during
it are folded in at the swap. The views reading the resource are rebuilt
after. One replay at a time per server; it needs the ``admin`` scope on
the resource.
"""

from __future__ import annotations

import asyncio
import time

import falcon.asgi

from eventdocs.errors import NotFound
from eventdocs.http.wire import send
from eventdocs.projections.replay import replay
from eventdocs.service import Service

__all__ = ["ReplayResource"]


class ReplayResource:
    """Replays one resource of the served store on request."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._lock = asyncio.Lock()

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str
    ) -> None:
        service = self.service
        if name not in service.resource_names:
            raise NotFound(f"unknown resource {name!r}")
        async with self._lock:
            started = time.perf_counter()
            views = [v for v in service.views if name in v.sources]
            events = await replay(service.store, name, now=service.clock.now(), views=views)
            seconds = time.perf_counter() - started
        send(
            resp,
            {
                "resource": name,
                "events": events,
                "seconds": round(seconds, 3),
                "views": [v.name for v in views],
            },
        )
