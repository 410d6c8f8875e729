"""Decided writes under real concurrency: an answer is the truth (SPEC section 8).

Each test drives one real server process (SQLite file) with concurrent
clients racing on the same documents, then reads every document's revisions
back. The invariant: every ``2xx`` appended exactly one event and the fold
applied it; every error appended nothing. So in these races no event may
ever be ``failed``, and each document has exactly as many events as its
writes got ``2xx`` answers.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from _server import Server
from answers import assert_all_applied, create, revisions

from eventdocs.times import format_time

ROUNDS = 12


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("decided")
    with Server(workdir / "store.db", workdir / "server.log") as running:
        running.start()
        yield running


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
        yield client


async def read(
    client: httpx.AsyncClient, doc_id: str, seen: list[str], stop: asyncio.Event
) -> None:
    """Read the document until ``stop``, noting every title seen."""
    while not stop.is_set():
        answer = await client.get(f"/v1/post/{doc_id}")
        seen.append(answer.json()["title"])


async def test_bulk_racing_a_delete_answers_what_the_log_holds(
    client: httpx.AsyncClient,
) -> None:
    for round_ in range(ROUNDS):
        ids = [await create(client) for _ in range(4)]
        victim = ids[round_ % len(ids)]
        body = {"action": "update", "ids": ids, "body": {"title": f"bulk {round_}"}}
        requests = [client.post("/v1/post/_bulk", json=body), client.delete(f"/v1/post/{victim}")]
        if round_ % 2:  # either may reach the server first
            requests.reverse()
        answers = await asyncio.gather(*requests)
        bulk, deleted = answers if round_ % 2 == 0 else answers[::-1]
        assert bulk.status_code == 200 and deleted.status_code == 204
        status = {item["id"]: item["status"] for item in bulk.json()["resources"]}
        for doc_id in ids:
            rows = await revisions(client, doc_id)
            assert_all_applied(rows)
            updates = [r for r in rows if r["action"] == "update"]
            assert len(updates) == (1 if status[doc_id] == 200 else 0)
            assert status[doc_id] == 200 or (doc_id == victim and status[doc_id] == 404)


async def test_one_idempotency_key_on_two_requests_decides_one(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(ROUNDS):
        other = await create(client)
        changed = await client.put(f"/v1/post/{other}", json={"title": "second"})
        assert changed.status_code == 200
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        created, reverted = await asyncio.gather(
            client.post("/v1/post", json={"title": "new", "blog": 2}, headers=headers),
            client.post(f"/v1/post/{other}/revert", json={"to_revision": 1}, headers=headers),
        )
        statuses = sorted([created.status_code, reverted.status_code])
        assert statuses in ([201, 422], [200, 422]), (created.text, reverted.text)
        rows = await revisions(client, other)
        assert_all_applied(rows)
        if reverted.status_code == 200:
            assert reverted.json()["title"] == "first"
            assert [r["action"] for r in rows] == ["create", "update", "revert"]
        else:
            assert [r["action"] for r in rows] == ["create", "update"]


async def test_if_match_racing_a_bulk_change_is_decided_on_what_it_saw(
    client: httpx.AsyncClient,
) -> None:
    for round_ in range(ROUNDS):
        doc_id = await create(client)
        bulk = {"action": "update", "ids": [doc_id], "body": {"title": "bulk"}}
        requests = [
            client.put(f"/v1/post/{doc_id}", json={"title": "put"}, headers={"If-Match": '"1"'}),
            client.post("/v1/post/_bulk", json=bulk),
        ]
        if round_ % 2:
            requests.reverse()
        answers = await asyncio.gather(*requests)
        put = answers[round_ % 2]
        rows = await revisions(client, doc_id)
        assert_all_applied(rows)
        bodies = [r.get("body", {}).get("title") for r in rows]
        if put.status_code == 200:
            assert put.json()["_rev"] == 2 and bodies[1] == "put"
        else:
            assert put.status_code == 412 and "put" not in bodies


async def test_bulk_items_carry_their_own_if_match(client: httpx.AsyncClient) -> None:
    fresh, stale = await create(client), await create(client)
    await client.put(f"/v1/post/{stale}", json={"title": "moved on"})
    body = {
        "action": "update",
        "ids": [{"id": fresh, "if_match": 1}, {"id": stale, "if_match": 1}],
        "body": {"title": "conditional"},
    }
    answer = await client.post("/v1/post/_bulk", json=body)
    assert [r["status"] for r in answer.json()["resources"]] == [200, 412]
    assert [r["action"] for r in await revisions(client, stale)] == ["create", "update"]


async def test_a_cancel_that_answers_200_is_never_seen_in_effect(
    client: httpx.AsyncClient,
) -> None:
    rng = random.Random(11)
    answered = {200: 0, 409: 0}
    for _ in range(ROUNDS):
        doc_id = await create(client, "before")
        toa = time.time() + 0.25
        scheduled = await client.patch(
            f"/v1/post/{doc_id}",
            json={"title": "scheduled"},
            headers={"Caesium-TOA": format_time(int(toa * 1e6))},
        )
        assert scheduled.status_code == 202
        seq = scheduled.json()["seq"]
        seen: list[str] = []
        stop = asyncio.Event()
        readers = [asyncio.create_task(read(client, doc_id, seen, stop)) for _ in range(3)]
        await asyncio.sleep(max(0.0, toa + rng.uniform(-0.03, 0.01) - time.time()))
        cancel = await client.delete(f"/v1/post/_scheduled/{seq}")
        await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*readers)
        final = (await client.get(f"/v1/post/{doc_id}")).json()["title"]
        assert cancel.status_code in answered, cancel.text
        answered[cancel.status_code] += 1
        if cancel.status_code == 200:
            assert "scheduled" not in seen and final == "before"
        else:
            assert final == "scheduled"
    assert sum(answered.values()) == ROUNDS
