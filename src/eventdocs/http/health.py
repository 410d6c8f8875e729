"""``/healthz`` (liveness) and ``/readyz`` (readiness), with the projector's lag.

The lag of a resource is how long the oldest write that should be visible
has waited: an appended event not yet projected (since it was recorded), or
a scheduled write whose TOA has passed but that is not yet in the master
collection (since its TOA). Zero when the projector is current.

``/healthz`` answers ``200`` while the store answers; a store that cannot be
reached is a 503. A view whose code raised is named under ``failing_views``
(with the seq it stopped at and the error) and the status is ``degraded``
until it is rebuilt. ``/readyz`` answers ``200`` only when the store answers,
every resource's lag is at most ``ready_lag`` seconds and no view is failing
or behind its sources, else ``503`` with the reasons: a load balancer sends
no traffic to a process still catching up after a restart.
"""

from __future__ import annotations

from typing import Any, Final

import falcon.asgi

from eventdocs.errors import EventdocsError
from eventdocs.http.wire import send
from eventdocs.service import Service
from eventdocs.times import format_time

__all__ = [
    "READY_LAG_SECONDS",
    "HealthResource",
    "ReadyResource",
    "failing_views",
    "status",
    "views_behind",
]

READY_LAG_SECONDS: Final = 5.0


async def status(service: Service) -> dict[str, dict[str, Any]]:
    """Per resource: last and projected seq, unprojected, due unapplied, lag, scheduled."""
    store, now = service.store, service.clock.now()
    resources: dict[str, Any] = {}
    for name in service.resource_names:
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
    return resources


def failing_views(service: Service) -> dict[str, dict[str, Any]]:
    """The views whose code raised, with the resource and seq they stopped at and the error."""
    return {
        name: {"resource": f.resource, "seq": f.seq, "error": f.error}
        for name, f in service.projector.failing.items()
    }


async def views_behind(service: Service, resources: dict[str, dict[str, Any]]) -> list[str]:
    """The views whose checkpoint on a source is behind that source's projection."""
    behind = []
    for view in service.views:
        checkpoints = await service.store.view_checkpoints(view.name)
        for source in view.sources:
            projected = resources.get(source, {}).get("projected_seq", 0)
            mark = checkpoints.get(source)
            if (mark.seq if mark is not None else 0) < projected:
                behind.append(view.name)
                break
    return behind


class HealthResource:
    """Reports ``{"status", "time", "next_toa", "resources": {name: lag...}}``."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resources = await status(self.service)
        next_toa = self.service.scheduler.next_toa
        failing = failing_views(self.service)
        send(
            resp,
            {
                "status": "degraded" if failing else "ok",
                "failing_views": failing,
                "time": format_time(self.service.clock.now()),
                "next_toa": None if next_toa is None else format_time(next_toa),
                "resources": resources,
            },
        )


class ReadyResource:
    """``{"status": "ready"|"not ready", "reasons": [...]}``: 200 or 503."""

    public = True  # like /healthz: a load balancer has no token

    def __init__(self, service: Service, ready_lag: float = READY_LAG_SECONDS) -> None:
        self.service = service
        self.ready_lag = ready_lag

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        reasons: list[str] = []
        try:
            resources = await status(self.service)
            behind = await views_behind(self.service, resources)
        except (EventdocsError, OSError) as exc:
            reasons.append(f"store: {getattr(exc, 'detail', None) or exc}")
        else:
            for name, state in resources.items():
                if state["lag_seconds"] > self.ready_lag:
                    reasons.append(f"{name}: {state['lag_seconds']:.1f} s behind")
            failing = failing_views(self.service)
            reasons += [f"view {name} is failing: {f['error']}" for name, f in failing.items()]
            reasons += [
                f"view {name} is behind its sources" for name in behind if name not in failing
            ]
        send(
            resp,
            {"status": "not ready" if reasons else "ready", "reasons": reasons},
            503 if reasons else 200,
        )
