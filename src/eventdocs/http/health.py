"""``GET /healthz``: liveness, and how far behind the projector is per resource.

The lag of a resource is how long the oldest write that should be visible
has waited: an appended event not yet projected (since it was recorded), or
a scheduled write whose TOA has passed but that is not yet in the master
collection (since its TOA). Zero when the projector is current. The answer is
``200`` while the store answers; a store that cannot be reached is a 503.
A view whose code raised is named under ``failing_views`` (with the seq it
stopped at and the error) and the status is ``degraded`` until it is rebuilt.
"""

from __future__ import annotations

from typing import Any

import falcon.asgi

from eventdocs.http.wire import send
from eventdocs.service import Service
from eventdocs.times import format_time

__all__ = ["HealthResource"]


class HealthResource:
    """Reports ``{"status", "time", "next_toa", "resources": {name: lag...}}``."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        store, now = self.service.store, self.service.clock.now()
        resources: dict[str, Any] = {}
        for name in self.service.resource_names:
            checkpoint = await store.read_checkpoint(name)
            last = await store.last_seq(name)
            lag = 0
            if last > checkpoint.seq:
                first = await store.read_log(name, after=checkpoint.seq, limit=1)
                if first:
                    lag = max(lag, now - first[0].recorded_at)
            due = await store.read_due(
                name, after_toa=checkpoint.toa, until_toa=now, max_seq=last, limit=1
            )
            if due:
                lag = max(lag, now - due[0].toa)
            scheduled = await store.count_pending(name, now=now)
            resources[name] = {
                "last_seq": last,
                "projected_seq": checkpoint.seq,
                "unprojected": last - checkpoint.seq,
                "due_unapplied": len(due),
                "lag_seconds": max(lag, 0) / 1e6,
                "scheduled": scheduled,
            }
        next_toa = self.service.scheduler.next_toa
        failing = {
            name: {"resource": f.resource, "seq": f.seq, "error": f.error}
            for name, f in self.service.projector.failing.items()
        }
        send(
            resp,
            {
                "status": "degraded" if failing else "ok",
                "failing_views": failing,
                "time": format_time(now),
                "next_toa": None if next_toa is None else format_time(next_toa),
                "resources": resources,
            },
        )
