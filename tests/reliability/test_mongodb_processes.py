"""Decided writes across processes: several ``eventdocs serve`` on one MongoDB database.

SPEC section 6: every rule of section 8 holds across processes. Each test
spreads concurrent requests over real server processes sharing one database
(a replica set, so with change streams and transactions), then reads every
document's revisions back: every ``2xx`` appended exactly one event that the
fold applied, every error appended nothing.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from _server import Server
from answers import assert_all_applied, create, revisions

from eventdocs.times import format_time
from mongotest import URL, fresh_url, needs_server

pytestmark = needs_server
ROUNDS = 10


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    """Two server processes on one fresh database."""
    if not URL:
        pytest.skip("set EVENTDOCS_TEST_MONGODB_URL")
    workdir = tmp_path_factory.mktemp("mongo-processes")
    url = fresh_url()
    running = [Server(url, workdir / f"server{i}.log") for i in range(2)]
    try:
        for server in running:
            server.start()
        yield running
    finally:
        for server in running:
            server.kill()
        import pymongo

        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(url)
        client.drop_database(client.get_default_database().name)
        client.close()


@pytest.fixture
async def clients(servers: list[Server]) -> AsyncIterator[list[httpx.AsyncClient]]:
    limits = httpx.Limits(max_connections=16)
    made = [httpx.AsyncClient(base_url=s.url, timeout=60, limits=limits) for s in servers]
    try:
        yield made
    finally:
        for client in made:
            await client.aclose()


async def test_six_posts_sharing_an_idempotency_key_on_two_processes_create_one(
    clients: list[httpx.AsyncClient],
) -> None:
    """Each answers the first create, with the document, whichever process decided it."""
    for round_ in range(ROUNDS):
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        body = {"title": f"keyed {round_}", "blog": 3}
        answers = await asyncio.gather(
            *(clients[i % 2].post("/v1/post", json=body, headers=headers) for i in range(6))
        )
        assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
        ids = {a.json()["id"] for a in answers}
        assert len(ids) == 1
        assert {a.json()["title"] for a in answers} == {f"keyed {round_}"}
        (doc_id,) = ids
        for client in clients:
            rows = await revisions(client, doc_id)
            assert [r["action"] for r in rows] == ["create"]
            assert_all_applied(rows)
        other = await clients[round_ % 2].post(
            "/v1/post", json={"title": "another", "blog": 3}, headers=headers
        )
        assert other.status_code == 422, other.text


async def test_if_match_puts_on_two_processes_decide_one(
    clients: list[httpx.AsyncClient],
) -> None:
    for round_ in range(ROUNDS):
        doc_id = await create(clients[0])
        answers = await asyncio.gather(
            *(
                clients[i].put(
                    f"/v1/post/{doc_id}", json={"title": f"put {i}"}, headers={"If-Match": '"1"'}
                )
                for i in (round_ % 2, 1 - round_ % 2)
            )
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 412], [a.text for a in answers]
        (winner,) = [a for a in answers if a.status_code == 200]
        rows = await revisions(clients[1], doc_id)
        assert_all_applied(rows)
        assert [r["action"] for r in rows] == ["create", "update"]
        assert rows[1]["body"]["title"] == winner.json()["title"]


async def test_bulk_on_one_process_racing_a_delete_on_another(
    clients: list[httpx.AsyncClient],
) -> None:
    for round_ in range(ROUNDS):
        ids = [await create(clients[round_ % 2]) for _ in range(4)]
        victim = ids[round_ % len(ids)]
        body = {"action": "update", "ids": ids, "body": {"title": f"bulk {round_}"}}
        bulk, deleted = await asyncio.gather(
            clients[round_ % 2].post("/v1/post/_bulk", json=body),
            clients[1 - round_ % 2].delete(f"/v1/post/{victim}"),
        )
        assert bulk.status_code == 200 and deleted.status_code == 204, (bulk.text, deleted.text)
        status = {item["id"]: item["status"] for item in bulk.json()["resources"]}
        for doc_id in ids:
            rows = await revisions(clients[0], doc_id)
            assert_all_applied(rows)
            updates = [r for r in rows if r["action"] == "update"]
            assert len(updates) == (1 if status[doc_id] == 200 else 0)
            assert status[doc_id] == 200 or (doc_id == victim and status[doc_id] == 404)


async def test_a_put_and_a_delete_on_two_processes_are_both_decided(
    clients: list[httpx.AsyncClient],
) -> None:
    for round_ in range(ROUNDS):
        doc_id = await create(clients[0])
        put, deleted = await asyncio.gather(
            clients[round_ % 2].put(f"/v1/post/{doc_id}", json={"title": "put"}),
            clients[1 - round_ % 2].delete(f"/v1/post/{doc_id}"),
        )
        assert deleted.status_code == 204, deleted.text
        assert put.status_code in (200, 404), put.text
        rows = await revisions(clients[0], doc_id)
        assert_all_applied(rows)
        expected = (
            ["create", "update", "delete"] if put.status_code == 200 else ["create", "delete"]
        )
        assert [r["action"] for r in rows] == expected


async def read(
    client: httpx.AsyncClient, doc_id: str, seen: list[str], stop: asyncio.Event
) -> None:
    """Read the document until ``stop``, noting every title seen."""
    while not stop.is_set():
        answer = await client.get(f"/v1/post/{doc_id}")
        seen.append(answer.json()["title"])


async def test_a_cancel_answered_200_on_one_process_is_never_seen_in_effect_on_another(
    clients: list[httpx.AsyncClient],
) -> None:
    rng = random.Random(13)
    answered = {200: 0, 409: 0}
    for round_ in range(ROUNDS):
        scheduler, canceller = clients[round_ % 2], clients[1 - round_ % 2]
        doc_id = await create(scheduler, "before")
        toa = time.time() + 0.3
        scheduled = await scheduler.patch(
            f"/v1/post/{doc_id}",
            json={"title": "scheduled"},
            headers={"Caesium-TOA": format_time(int(toa * 1e6))},
        )
        assert scheduled.status_code == 202, scheduled.text
        seen: list[str] = []
        stop = asyncio.Event()
        readers = [asyncio.create_task(read(c, doc_id, seen, stop)) for c in clients]
        await asyncio.sleep(max(0.0, toa + rng.uniform(-0.04, 0.01) - time.time()))
        cancel = await canceller.delete(f"/v1/post/_scheduled/{scheduled.json()['seq']}")
        await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*readers)
        assert cancel.status_code in answered, cancel.text
        answered[cancel.status_code] += 1
        finals = {(await c.get(f"/v1/post/{doc_id}")).json()["title"] for c in clients}
        if cancel.status_code == 200:
            assert "scheduled" not in seen and finals == {"before"}
            continue
        deadline = time.monotonic() + 20  # the write takes effect, however loaded the machine
        while finals != {"scheduled"}:
            assert time.monotonic() < deadline, finals
            await asyncio.sleep(0.05)
            finals = {(await c.get(f"/v1/post/{doc_id}")).json()["title"] for c in clients}
