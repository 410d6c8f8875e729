"""What the decided-writes tests read back from a real server over HTTP."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["assert_all_applied", "create", "revisions"]


async def create(client: httpx.AsyncClient, title: str = "first") -> str:
    """Create a post; its id."""
    answer = await client.post("/v1/post", json={"title": title, "blog": 1})
    assert answer.status_code == 201, answer.text
    doc_id: str = answer.json()["id"]
    return doc_id


async def revisions(client: httpx.AsyncClient, doc_id: str) -> list[dict[str, Any]]:
    """Every event of the document with its outcome."""
    answer = await client.get(f"/v1/post/{doc_id}/revisions", params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()["resources"]
    return rows


def assert_all_applied(rows: list[dict[str, Any]]) -> None:
    """In these races no event may fail: every 2xx applied, every error appended nothing."""
    failed = [r for r in rows if r["outcome"] != "applied"]
    assert failed == [], "an answered write was not applied, or an error appended"
