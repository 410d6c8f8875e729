"""Crash safety under load: kill -9 the server mid-write, restart, lose nothing.

Each round starts ``python -m eventdocs.http.serve examples/blog.json`` on
one SQLite file (the same file every round), drives concurrent creates,
updates, bulk updates and scheduled writes (a TOA a few seconds ahead) at it
from asyncio tasks in this process, records every 2xx, and SIGKILLs the
server at a random moment. It then restarts the server on the same file,
waits until every acknowledged scheduled write is due, checks over HTTP,
stops the server with SIGTERM and checks the file itself:

* every acknowledged write is there: creates exist with their fields,
  updates and bulk updates are in the revisions, applied, exactly once;
* nothing is half-written: the log's seqs run 1..N without a gap, a create
  that was in flight is whole or absent, a bulk request in flight applied to
  all of its ids or to none; ``PRAGMA integrity_check`` is ``ok``;
* every acknowledged scheduled write applied exactly once after its TOA
  (one ``applied`` revision, one history row, the projector past its TOA);
* ``verify`` (projections == fold of the log) finds no difference.

::

    python benchmarks/crash.py                 # 20 rounds
    python benchmarks/crash.py --rounds 2 --json

Only loopback is ever contacted; every loop is bounded by the round's kill.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import Server

from eventdocs.events import Create, Event, Update
from eventdocs.fold import fold
from eventdocs.projections.replay import verify
from eventdocs.storage import open_store
from eventdocs.times import parse_time

RESOURCE = "post"
PATH = "/v1/post"
FIELDS = ("title", "blog", "author")


@dataclass
class Scheduled:
    """An acknowledged (202) scheduled write."""

    seq: int
    id: str
    toa: float  # epoch seconds
    action: str
    marker: str | None


@dataclass
class Ledger:
    """Everything the server acknowledged, and what was in flight at a kill."""

    created: dict[str, dict[str, Any]] = field(default_factory=dict)
    updated: list[tuple[str, str]] = field(default_factory=list)
    scheduled: dict[int, Scheduled] = field(default_factory=dict)
    bulk: list[tuple[list[str], str]] = field(default_factory=list)
    inflight_creates: dict[str, dict[str, Any]] = field(default_factory=dict)
    inflight_bulk: list[tuple[list[str], str]] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)


@dataclass
class Settings:
    concurrency: int = 32
    kill_after: tuple[float, float] = (0.5, 3.0)  # seconds of load before SIGKILL
    ahead: tuple[float, float] = (0.2, 3.0)  # how far ahead scheduled writes are
    seed: int = 1


@dataclass
class Round:
    """One round's figures; ``problems`` empty means it passed."""

    round: int
    killed_after: float
    acknowledged: dict[str, int]
    in_flight: int
    log_events: int
    verify_differences: int
    restart_seconds: float
    problems: list[str] = field(default_factory=list)


@dataclass
class Report:
    rounds: list[Round]
    settings: dict[str, Any]

    @property
    def ok(self) -> bool:
        return all(not r.problems for r in self.rounds)

    def summary(self) -> dict[str, Any]:
        acknowledged: dict[str, int] = {}
        for r in self.rounds:
            for k, v in r.acknowledged.items():
                acknowledged[k] = acknowledged.get(k, 0) + v
        return {
            "rounds": len(self.rounds),
            "rounds_passed": sum(not r.problems for r in self.rounds),
            "acknowledged_writes": acknowledged,
            "acknowledged_total": sum(acknowledged.values()),
            "in_flight_at_kill": sum(r.in_flight for r in self.rounds),
            "lost_acknowledged_writes": sum(
                1 for r in self.rounds for p in r.problems if p.startswith("lost")
            ),
            "verify_differences": sum(r.verify_differences for r in self.rounds),
            "log_events": self.rounds[-1].log_events if self.rounds else 0,
        }


class _Load:
    """The writers of one round: they stop when the server is killed."""

    def __init__(self, ledger: Ledger, settings: Settings, rng: random.Random, tag: str) -> None:
        self.ledger = ledger
        self.settings = settings
        self.rng = rng
        self.tag = tag
        self.killed = False
        self.counts = {"create": 0, "update": 0, "scheduled": 0, "bulk": 0}
        self.in_flight = 0
        self.unexpected: list[str] = []
        self.fresh: list[str] = []  # this round's acknowledged creates and scheduled writes
        self.fresh_scheduled: list[Scheduled] = []
        self.n = 0

    def marker(self, kind: str) -> str:
        self.n += 1
        return f"{kind}-{self.tag}-{self.n}"

    async def worker(self, client: httpx.AsyncClient, worker: int) -> None:
        while not self.killed:
            choice = self.rng.random()
            if not self.ledger.targets or choice < 0.35:
                await self.create(client, worker, scheduled=False)
            elif choice < 0.45:
                await self.create(client, worker, scheduled=True)
            elif choice < 0.72:
                await self.update(client)
            elif choice < 0.90:
                await self.schedule(client)
            else:
                await self.bulk(client)

    def toa(self) -> float:
        return time.time() + self.rng.uniform(*self.settings.ahead)

    async def send(
        self, client: httpx.AsyncClient, *args: Any, **kwargs: Any
    ) -> tuple[int, Any] | None:
        """The status and JSON of a 2xx answer; ``None`` if the server died first."""
        try:
            response = await client.request(*args, **kwargs)
        except httpx.TransportError:
            if self.killed:
                self.in_flight += 1
                return None
            raise
        if response.status_code >= 300:
            self.unexpected.append(f"{args[0]} {args[1]}: {response.status_code} {response.text}")
            return None
        return response.status_code, response.json()

    async def create(self, client: httpx.AsyncClient, worker: int, *, scheduled: bool) -> None:
        title = self.marker("c")
        body = {"title": title, "blog": self.rng.randrange(1, 10), "author": f"a{worker}"}
        headers = {"Caesium-TOA": f"{self.toa():.6f}"} if scheduled else {}
        self.ledger.inflight_creates[title] = body
        answer = await self.send(client, "POST", PATH, json=body, headers=headers)
        if answer is None:
            return
        status, doc = answer
        del self.ledger.inflight_creates[title]
        self.ledger.created[doc["id"]] = body
        if status == 202:
            self.counts["scheduled"] += 1
            self._scheduled(doc, None)
        else:  # immediate, or a TOA that passed on the way (a slow box): in effect now
            self.counts["create"] += 1
            self.fresh.append(doc["id"])
            self.ledger.targets.append(doc["id"])

    async def update(self, client: httpx.AsyncClient) -> None:
        target, marker = self.rng.choice(self.ledger.targets), self.marker("u")
        answer = await self.send(client, "PUT", f"{PATH}/{target}", json={"body": marker})
        if answer is not None:
            self.counts["update"] += 1
            self.ledger.updated.append((target, marker))

    async def schedule(self, client: httpx.AsyncClient) -> None:
        target, marker = self.rng.choice(self.ledger.targets), self.marker("s")
        headers = {"Caesium-TOA": f"{self.toa():.6f}"}
        answer = await self.send(
            client, "PATCH", f"{PATH}/{target}", json={"tags": [marker]}, headers=headers
        )
        if answer is None:
            return
        status, event = answer
        if status == 202:
            self.counts["scheduled"] += 1
            self._scheduled(event, marker)
        else:  # its TOA passed on the way: an update in effect now
            self.counts["update"] += 1
            self.ledger.updated.append((target, marker))

    def _scheduled(self, event: dict[str, Any], marker: str | None) -> None:
        toa = parse_time(event["toa"]) / 1e6
        scheduled = Scheduled(event["seq"], event["id"], toa, event["action"], marker)
        self.ledger.scheduled[scheduled.seq] = scheduled
        self.fresh_scheduled.append(scheduled)

    async def bulk(self, client: httpx.AsyncClient) -> None:
        ids = list(
            dict.fromkeys(self.rng.sample(self.ledger.targets, min(4, len(self.ledger.targets))))
        )
        marker = self.marker("b")
        request = {"action": "update", "ids": ids, "body": {"body": marker}}
        self.ledger.inflight_bulk.append((ids, marker))
        answer = await self.send(client, "POST", f"{PATH}/_bulk", json=request)
        if answer is None:
            return
        self.ledger.inflight_bulk.remove((ids, marker))
        results = answer[1]["resources"]
        applied = [item["id"] for item in results if item["status"] == 200]
        if len(applied) != len(ids):
            self.unexpected.append(f"bulk: not every id applied: {results}")
        self.counts["bulk"] += 1
        self.ledger.bulk.append((applied, marker))


async def _drive(
    server: Server, ledger: Ledger, settings: Settings, rng: random.Random, tag: str
) -> tuple[_Load, float]:
    load = _Load(ledger, settings, rng, tag)
    limits = httpx.Limits(max_connections=settings.concurrency)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
        workers = [asyncio.create_task(load.worker(client, w)) for w in range(settings.concurrency)]
        kill_after = rng.uniform(*settings.kill_after)
        done: set[asyncio.Task[None]] = set()
        try:
            done, _ = await asyncio.wait(
                workers, timeout=kill_after, return_when=asyncio.FIRST_EXCEPTION
            )
            for task in done:  # a worker only ends early on an error
                task.result()
        finally:
            server.kill()
            load.killed = True
            if done:
                for task in workers:
                    task.cancel()
            await asyncio.gather(*workers, return_exceptions=bool(done))
    return load, kill_after


async def _wait_applied(server: Server, ledger: Ledger, problems: list[str]) -> None:
    """Wait until every acknowledged scheduled write is due and the projector is idle."""
    due = max((s.toa for s in ledger.scheduled.values()), default=0.0)
    await asyncio.sleep(max(0.0, due - time.time()) + 0.1)
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        while time.monotonic() < deadline:
            health = (await client.get("/healthz")).json()["resources"][RESOURCE]
            if health["unprojected"] == 0 and health["due_unapplied"] == 0:
                return
            await asyncio.sleep(0.05)
    problems.append("the projector did not catch up within 60 s of the restart")


async def _check_http(server: Server, ledger: Ledger, load: _Load, problems: list[str]) -> None:
    """This round's acknowledged writes, as a client sees them after the restart."""
    semaphore = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

        async def document(doc_id: str) -> None:
            async with semaphore:
                response = await client.get(f"{PATH}/{doc_id}")
            if response.status_code != 200:
                problems.append(f"lost: create {doc_id} answers {response.status_code}")
                return
            doc = response.json()
            want = ledger.created[doc_id]
            if any(doc.get(k) != want[k] for k in FIELDS):
                problems.append(f"lost: create {doc_id} has {doc}, not {want}")

        async def revisions(s: Scheduled) -> None:
            async with semaphore:
                response = await client.get(f"{PATH}/{s.id}/revisions", params={"limit": 1000})
            mine = [r for r in response.json().get("resources", []) if r["seq"] == s.seq]
            if len(mine) != 1 or mine[0]["outcome"] != "applied":
                problems.append(f"lost: scheduled {s.seq} on {s.id} shows {mine}")

        await asyncio.gather(
            *(document(i) for i in load.fresh), *(revisions(s) for s in load.fresh_scheduled)
        )


def _integrity(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


async def _check_store(path: Path, ledger: Ledger, problems: list[str]) -> tuple[int, int]:
    """Every acknowledged write so far, in the file itself; (log length, verify diffs)."""
    store = open_store(str(path))
    await store.open()
    try:
        log: list[Event] = []
        while chunk := await store.read_log(RESOURCE, after=log[-1].seq if log else 0, limit=5000):
            log.extend(chunk)
        if [e.seq for e in log] != list(range(1, len(log) + 1)):
            problems.append("half-written: the log's seqs have a gap")
        by_id: dict[str, list[Event]] = {}
        markers: dict[str, list[Event]] = {}
        titles: dict[str, list[Event]] = {}
        for e in log:
            by_id.setdefault(e.id, []).append(e)
            if isinstance(e, Update) and e.body:
                mark = e.body.get("body") or (e.body.get("tags") or [None])[0]
                if isinstance(mark, str):
                    markers.setdefault(mark, []).append(e)
            elif isinstance(e, Create) and e.body:
                titles.setdefault(e.body["title"], []).append(e)
        now = int(time.time() * 1e6)
        outcomes = {}
        for doc_id in by_id:
            for r in fold(by_id[doc_id], as_of=now).results:
                outcomes[r.event.seq] = r.outcome

        for doc_id, body in ledger.created.items():
            creates = [e for e in by_id.get(doc_id, []) if isinstance(e, Create)]
            if len(creates) != 1 or any(creates[0].body.get(k) != body[k] for k in FIELDS):
                problems.append(f"lost: create {doc_id} (log has {creates})")
        for title, body in ledger.inflight_creates.items():
            found = titles.get(title, [])
            if len(found) > 1 or any(e.body.get(k) != body[k] for e in found for k in FIELDS):
                problems.append(f"half-written: in-flight create {title}: {found}")
        for doc_id, marker in ledger.updated:
            found = markers.get(marker, [])
            if [(e.id, outcomes[e.seq]) for e in found] != [(doc_id, "applied")]:
                problems.append(f"lost: update {marker} on {doc_id}: {found}")
        for ids, marker in ledger.bulk:
            found = markers.get(marker, [])
            if sorted(e.id for e in found) != sorted(ids) or any(
                outcomes[e.seq] != "applied" for e in found
            ):
                problems.append(f"lost: bulk {marker} on {ids}: {found}")
        for ids, marker in ledger.inflight_bulk:
            found = markers.get(marker, [])
            if found and sorted(e.id for e in found) != sorted(ids):
                problems.append(f"half-written: in-flight bulk {marker} on {ids}: {found}")
        events = {e.seq: e for e in log}
        for s in ledger.scheduled.values():
            event = events.get(s.seq)
            if event is None or event.id != s.id or outcomes.get(s.seq) != "applied":
                problems.append(f"lost: scheduled {s.seq} on {s.id}: {event}")
                continue
            rows = [r for r in await store.read_history(RESOURCE, s.id) if r.seq == s.seq]
            if len(rows) != 1:
                problems.append(f"not exactly once: scheduled {s.seq} has {len(rows)} rows")
        checkpoint = await store.read_checkpoint(RESOURCE)
        due = max((s.toa for s in ledger.scheduled.values()), default=0.0)
        if checkpoint.toa < due * 1e6 - 1:
            problems.append("the projector's checkpoint is before an acknowledged TOA")
        differences = await verify(store, [RESOURCE])
        for d in differences[:5]:
            problems.append(f"verify: {d.collection} {d.id}: {d.expected} != {d.actual}")
        return len(log), len(differences)
    finally:
        await store.close()


def run_round(
    number: int, server: Server, ledger: Ledger, settings: Settings, rng: random.Random
) -> Round:
    """Start, load, kill -9, restart, wait for the schedule, check; one round."""
    problems: list[str] = []
    server.start()
    load, killed_after = asyncio.run(_drive(server, ledger, settings, rng, f"r{number}"))
    problems += [f"unexpected answer: {u}" for u in load.unexpected[:5]]
    started = time.monotonic()
    server.start()
    restart = time.monotonic() - started
    asyncio.run(_wait_applied(server, ledger, problems))
    asyncio.run(_check_http(server, ledger, load, problems))
    code, _ = server.terminate()
    if code not in (0, -15):
        problems.append(f"exit status {code} after SIGTERM")
    if (status := _integrity(server.store)) != "ok":
        problems.append(f"half-written: integrity_check says {status}")
    events, differences = asyncio.run(_check_store(server.store, ledger, problems))
    return Round(
        number,
        round(killed_after, 3),
        dict(load.counts),
        load.in_flight,
        events,
        differences,
        round(restart, 3),
        problems,
    )


def run(
    rounds: int = 20, *, settings: Settings | None = None, workdir: Path | None = None
) -> Report:
    """``rounds`` crash rounds on one store; see the module docstring."""
    settings = settings or Settings()
    rng = random.Random(settings.seed)
    ledger = Ledger()
    with tempfile.TemporaryDirectory(prefix="eventdocs-crash-", dir=workdir) as tmp:
        server = Server(Path(tmp) / "crash.db", Path(tmp) / "serve.log")
        results = []
        try:
            for number in range(1, rounds + 1):
                results.append(run_round(number, server, ledger, settings, rng))
        except BaseException:
            print((Path(tmp) / "serve.log").read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            server.kill()
    return Report(results, asdict(settings))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=Settings.concurrency)
    parser.add_argument("--seed", type=int, default=Settings.seed)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    settings = Settings(concurrency=args.concurrency, seed=args.seed)
    started = time.monotonic()
    report = run(args.rounds, settings=settings)
    summary = {**report.summary(), "seconds": round(time.monotonic() - started, 1)}
    if args.json:
        print(
            json.dumps(
                {
                    "summary": summary,
                    "rounds": [asdict(r) for r in report.rounds],
                    "settings": report.settings,
                },
                indent=2,
            )
        )
    else:
        for r in report.rounds:
            status = "ok" if not r.problems else "FAIL: " + "; ".join(r.problems[:3])
            print(
                f"round {r.round:2d}: killed after {r.killed_after:.2f} s, "
                f"acknowledged {sum(r.acknowledged.values())}, in flight {r.in_flight}, "
                f"log {r.log_events}, restart {r.restart_seconds:.2f} s: {status}"
            )
        print(
            f"{summary['rounds_passed']}/{summary['rounds']} rounds passed; "
            f"{summary['acknowledged_total']} acknowledged writes, "
            f"{summary['lost_acknowledged_writes']} lost, "
            f"{summary['verify_differences']} verify differences ({summary['seconds']} s)"
        )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
