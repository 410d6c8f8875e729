"""Operations: /metrics in Prometheus format, /readyz beside /healthz."""

from __future__ import annotations

from typing import Any

from httpkit import Api, post
from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[str, list[Any]]:
    """Every sample of a Prometheus exposition, by sample name."""
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def value(found: dict[str, list[Any]], name: str, **labels: str) -> float:
    matching = [
        s.value for s in found[name] if all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matching) == 1, (name, labels, found.get(name))
    return float(matching[0])


async def test_metrics_count_requests_and_read_the_store(api: Api) -> None:
    doc = await api.create(post())
    await api.client.simulate_get(f"/v1/post/{doc['id']}")
    await api.client.simulate_head(f"/v1/post/{doc['id']}")
    await api.client.simulate_get("/v1/post/missing")
    await api.client.simulate_patch(
        f"/v1/post/{doc['id']}", json={"title": "later"}, headers={"TOA": api.toa(60)}
    )
    got = await api.client.simulate_get("/metrics")
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/plain; version=")
    found = samples(got.text)
    requests = "eventdocs_http_requests_total"
    assert value(found, requests, method="POST", route="/v1/post", status="201") == 1
    assert value(found, requests, method="GET", route="/v1/post/{id}", status="200") == 1
    assert value(found, requests, method="HEAD", route="/v1/post/{id}", status="200") == 1
    assert value(found, requests, method="GET", route="/v1/post/{id}", status="404") == 1
    count = "eventdocs_http_request_duration_seconds_count"
    assert value(found, count, route="/v1/post/{id}") == 4
    assert value(found, "eventdocs_appended_events_total", resource="post") == 2
    assert value(found, "eventdocs_projected_events_total", resource="post") == 2
    assert value(found, "eventdocs_pending_writes", resource="post") == 1
    assert value(found, "eventdocs_unprojected_events", resource="post") == 0
    assert value(found, "eventdocs_projection_lag_seconds", resource="post") == 0
    assert value(found, "eventdocs_views_behind") == 0
    assert value(found, "eventdocs_views_failing") == 0


async def test_readyz_waits_for_the_projector(api: Api) -> None:
    ready = await api.client.simulate_get("/readyz")
    assert ready.status_code == 200 and ready.json == {"status": "ready", "reasons": []}
    doc = await api.create(post())
    await api.client.simulate_patch(
        f"/v1/post/{doc['id']}", json={"title": "later"}, headers={"TOA": api.toa(1)}
    )
    api.clock.advance(30_000_000)  # due for 29 s, and the scheduler has not run
    behind = await api.client.simulate_get("/readyz")
    assert behind.status_code == 503, behind.text
    assert behind.json["status"] == "not ready"
    assert behind.json["reasons"] == ["post: 29.0 s behind"]
    head = await api.client.simulate_head("/readyz")
    assert head.status_code == 503 and head.content == b""
    assert (await api.client.simulate_get("/healthz")).status_code == 200  # alive all the same
    await api.service.scheduler.run_once()
    assert (await api.client.simulate_get("/readyz")).status_code == 200
