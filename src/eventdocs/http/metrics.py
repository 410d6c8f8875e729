"""``GET /metrics``: Prometheus text format, through ``prometheus-client``.

Counted as requests pass (falcon middleware):

* ``eventdocs_http_requests_total{method, route, status}``, ``route`` being
  the route template (``/v1/post/{id}``), so ids do not explode the series;
* ``eventdocs_http_request_duration_seconds{route}``, a histogram.

Read from the store at each scrape (what :mod:`eventdocs.http.health` reads):

* ``eventdocs_appended_events_total{resource}``: the log's last seq;
* ``eventdocs_projected_events_total{resource}``: the projector's checkpoint;
* ``eventdocs_projection_lag_seconds{resource}`` and
  ``eventdocs_unprojected_events{resource}``;
* ``eventdocs_pending_writes{resource}``: scheduled writes not yet due;
* ``eventdocs_views_failing``: views whose code raised (until rebuilt);
* ``eventdocs_views_behind``: views whose checkpoint is behind a source.

Each app has its own registry, so several apps in one process (tests) do
not collide.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Final

import falcon.asgi
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from eventdocs.http.health import failing_views, status, views_behind
from eventdocs.service import Service

__all__ = ["Metrics", "MetricsResource"]

_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _StoreCollector(Collector):
    """The store's figures, as read just before the scrape renders them."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}
        self.behind = 0
        self.failing = 0

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            "appended": CounterMetricFamily(
                "eventdocs_appended_events", "Events appended to the log", labels=["resource"]
            ),
            "projected": CounterMetricFamily(
                "eventdocs_projected_events",
                "Events the projector has applied (its checkpoint)",
                labels=["resource"],
            ),
            "lag": GaugeMetricFamily(
                "eventdocs_projection_lag_seconds",
                "How long the oldest write that should be visible has waited",
                labels=["resource"],
            ),
            "unprojected": GaugeMetricFamily(
                "eventdocs_unprojected_events",
                "Appended events the projector has not applied yet",
                labels=["resource"],
            ),
            "pending": GaugeMetricFamily(
                "eventdocs_pending_writes",
                "Scheduled writes whose time of action is still ahead",
                labels=["resource"],
            ),
        }
        for name, state in self.resources.items():
            families["appended"].add_metric([name], state["last_seq"])
            families["projected"].add_metric([name], state["projected_seq"])
            families["lag"].add_metric([name], state["lag_seconds"])
            families["unprojected"].add_metric([name], state["unprojected"])
            families["pending"].add_metric([name], state["scheduled"])
        yield from families.values()
        yield GaugeMetricFamily(
            "eventdocs_views_failing",
            "Views whose code raised; they stay behind until rebuilt",
            value=self.failing,
        )
        yield GaugeMetricFamily(
            "eventdocs_views_behind",
            "Views whose checkpoint is behind a source's projection (failing or rebuilding)",
            value=self.behind,
        )


class Metrics:
    """The registry of one app, and the middleware that counts its requests."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "eventdocs_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "eventdocs_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.store = _StoreCollector()
        self.registry.register(self.store)

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        req.context.metrics_started = time.perf_counter()

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        started: float | None = getattr(req.context, "metrics_started", None)
        route = req.uri_template or "unmatched"
        method = "HEAD" if getattr(req.context, "head", False) else req.method
        self.requests.labels(method, route, str(resp.status_code)).inc()
        if started is not None:
            self.latency.labels(route).observe(time.perf_counter() - started)


class MetricsResource:
    """``GET /metrics``."""

    def __init__(self, service: Service, metrics: Metrics) -> None:
        self.service = service
        self.metrics = metrics

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resources = await status(self.service)
        self.metrics.store.resources = resources
        self.metrics.store.behind = len(await views_behind(self.service, resources))
        self.metrics.store.failing = len(failing_views(self.service))
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self.metrics.registry)
