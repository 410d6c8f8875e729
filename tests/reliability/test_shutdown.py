"""SIGTERM under load: stop accepting, finish what was accepted, flush, exit.

Writers keep creating posts (each with a unique title) while the server gets
SIGTERM. Afterwards the log must hold exactly the acknowledged creates: one
missing would be a lost write, one extra a request the server accepted and
wrote but whose client saw a reset instead of the answer.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
from _server import Server

from eventdocs.events import Create, Event
from eventdocs.http.serve import GRACEFUL_SHUTDOWN_SECONDS
from eventdocs.projections.replay import verify
from eventdocs.storage import open_store

WRITERS = 16
EXIT_BOUND = GRACEFUL_SHUTDOWN_SECONDS + 20  # generous: a loaded CI box is slow


class Writers:
    def __init__(self, url: str) -> None:
        self.url = url
        self.acknowledged: set[str] = set()
        self.after_sigterm = 0
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self.terminated = False

    async def write(self, worker: int) -> None:
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(base_url=self.url, timeout=60, limits=limits) as client:
            for n in range(100_000):
                title = f"t-{worker}-{n}"
                try:
                    response = await client.post("/v1/post", json={"title": title, "blog": 1})
                except httpx.TransportError as exc:
                    self.errors.append(type(exc).__name__)
                    if self.terminated:
                        return  # refused or closed: the server is going away
                    raise
                self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
                if response.status_code == 201:
                    self.acknowledged.add(title)
                    self.after_sigterm += self.terminated


async def _load_then_terminate(server: Server, writers: Writers) -> float:
    tasks = [asyncio.create_task(writers.write(w)) for w in range(WRITERS)]
    deadline = time.monotonic() + 120
    while len(writers.acknowledged) < 100:  # under way on every connection
        assert time.monotonic() < deadline, "no progress before SIGTERM"
        assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
        await asyncio.sleep(0.02)
    os.kill(server.pid, signal.SIGTERM)
    writers.terminated = True
    sent = time.monotonic()
    await asyncio.gather(*tasks)
    return sent


async def _created_titles(path: Path) -> tuple[list[str], int]:
    store = open_store(str(path))
    await store.open()
    try:
        log: list[Event] = []
        while chunk := await store.read_log("post", after=log[-1].seq if log else 0, limit=5000):
            log.extend(chunk)
        titles = [e.body["title"] for e in log if isinstance(e, Create) and e.body]
        return titles, len(await verify(store, ["post"]))
    finally:
        await store.close()


def test_sigterm_finishes_accepted_writes_and_exits(tmp_path: Path) -> None:
    server = Server(tmp_path / "shutdown.db", tmp_path / "serve.log")
    server.start()
    try:
        writers = Writers(server.url)
        sent = asyncio.run(_load_then_terminate(server, writers))
        assert server.proc is not None
        code = server.proc.wait(timeout=EXIT_BOUND)
        exited = time.monotonic() - sent
    finally:
        server.kill()
    log = (tmp_path / "serve.log").read_text()
    assert code in (0, -signal.SIGTERM), log
    assert "Application shutdown complete" in log
    assert set(writers.statuses) == {201}, writers.statuses  # no 5xx, no 503
    titles, differences = asyncio.run(_created_titles(tmp_path / "shutdown.db"))
    assert len(titles) == len(set(titles))
    assert set(titles) == writers.acknowledged  # nothing lost, nothing written unanswered
    assert differences == 0
    print(
        f"{len(titles)} creates acknowledged, {writers.after_sigterm} of them answered after "
        f"SIGTERM; exit {exited:.2f} s after it; client errors after it (requests never "
        f"read): {sorted(set(writers.errors))}"
    )
