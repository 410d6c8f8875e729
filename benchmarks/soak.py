"""Soak: 80 s of mixed load on one server, then count what it lost.

Starts ``python -m eventdocs.http.serve examples/blog.json`` on a SQLite
file, seeds a few hundred posts, then keeps 64 keep-alive connections busy
from this process for a 20 s warm-up and 60 s more: 70% reads (get by id,
queries), 20% writes (creates, updates) and 10% scheduled writes (a TOA
1-5 s ahead). The load generator speaks HTTP/1.1 on raw asyncio streams (an
HTTP library in Python would be slower than the server it measures). Every
second it reads the server's RSS from ``/proc`` and SQLite's own
allocations (reported by ``_measured_serve.py``, the server's ``main`` with
a reporting thread): SQLite's page caches may grow to the ``cache_size`` the
store sets (64 + 32 MiB), so the growth judged is the rest. At the end it
waits for the schedule to come due, stops the server with SIGTERM and checks
the file:

* zero 5xx, and no answer outside 2xx at all;
* zero lost writes: every acknowledged create, update and scheduled write
  is in the log, applied, once; the log holds nothing unacknowledged;
* ``verify`` clean; RSS growth outside SQLite's caches after the warm-up
  under 10% (the growth of all RSS is reported beside it);
* p50/p99 latency (and per kind), requests per second.

::

    python benchmarks/soak.py                       # 20 + 60 s, 64 connections
    python benchmarks/soak.py --warmup 1 --seconds 5 --json

Only loopback is contacted; the load stops by itself after the warm-up and
``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import uvloop

from eventdocs.documents import new_id
from eventdocs.events import Create, Draft, Event, Update
from eventdocs.fold import fold
from eventdocs.projections.replay import verify
from eventdocs.resources import load_target
from eventdocs.service import Service
from eventdocs.storage import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import BLOG_JSON, HOST, Server

RESOURCE = "post"
PATH = "/v1/post"
KINDS = ("get", "query", "create", "update", "schedule")
# 70% reads, 20% writes, 10% scheduled writes
WEIGHTS = (0.45, 0.25, 0.10, 0.10, 0.10)


class HTTPConnection:
    """One keep-alive HTTP/1.1 connection: a request, then its whole answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> HTTPConnection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        data = b"" if body is None else msgspec.json.encode(body)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", f"Content-Length: {len(data)}"]
        if body is not None:
            lines.append("Content-Type: application/json")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        fields = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            return status, await self.reader.readexactly(int(fields["content-length"]))
        if fields.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                chunks.append(await self.reader.readexactly(size + 2))
            await self.reader.readuntil(b"\r\n")
            return status, b"".join(c[:-2] for c in chunks)
        return status, b""

    def close(self) -> None:
        self.writer.close()


@dataclass
class Settings:
    seconds: float = 60.0  # measured, after the warm-up
    connections: int = 64
    warmup: float = 20.0  # seconds of the same load before the memory baseline
    seed_documents: int = 500  # created over HTTP before the load
    preload_documents: int = 0  # written straight to the file before the server starts
    ahead: tuple[float, float] = (1.0, 5.0)
    seed: int = 1


@dataclass
class Result:
    """What the soak measured; ``problems`` empty means it passed."""

    settings: dict[str, Any]
    requests: int
    requests_per_second: float
    statuses: dict[str, int]
    server_errors: int
    latency_ms: dict[str, dict[str, float]]
    acknowledged_writes: dict[str, int]
    lost_writes: int
    unacknowledged_in_log: int
    verify_differences: int
    rss_mb: dict[str, float | None]
    sqlite_mb: dict[str, float | None]
    malloc_free_mb: dict[str, float | None]
    in_use_mb: dict[str, float | None]
    rss_growth_after_warmup: float
    in_use_growth_after_warmup: float
    # (seconds, RSS, SQLite, malloc's free lists, in use), every 5 s, in MiB
    memory_series_mb: list[tuple[float, float | None, float | None, float | None, float | None]]
    shutdown_seconds: float
    load_average: list[float]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    statuses: dict[int, int] = field(default_factory=dict)
    created: dict[str, str] = field(default_factory=dict)  # id -> title
    updated: dict[str, str] = field(default_factory=dict)  # marker -> id
    scheduled: dict[int, tuple[str, int]] = field(default_factory=dict)  # seq -> (id, toa)
    unexpected: list[str] = field(default_factory=list)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _preload(path: Path, count: int, tally: _Tally) -> list[str]:
    """``count`` posts appended and projected through the library, in big batches.

    For a soak on a store that starts large (``--preload``); the load's reads
    and updates then spread over all of them.
    """
    ids = [new_id() for _ in range(count)]
    service = Service(open_store(str(path)), load_target(BLOG_JSON), background=False)
    async with service:
        for start in range(0, count, 2000):
            drafts = [
                Draft(action="create", id=doc_id, body={"title": f"pre-{n}", "blog": n % 10})
                for n, doc_id in enumerate(ids[start : start + 2000], start)
            ]
            await service.store.append(RESOURCE, drafts)
            tally.created.update((d.id, d.body["title"]) for d in drafts if d.body)
            if start % 20_000 == 0:
                await service.scheduler.run_once()
        await service.scheduler.run_once()
    return ids


async def _seed(port: int, count: int, tally: _Tally) -> list[str]:
    """``count`` posts to read and update, created over 16 connections."""

    async def some(numbers: range) -> list[str]:
        conn = await HTTPConnection.open(port)
        ids = []
        try:
            for n in numbers:
                body = {"title": f"seed-{n}", "blog": n % 10, "author": f"a{n % 7}"}
                status, answer = await conn.request("POST", PATH, body)
                assert status == 201, answer
                doc = msgspec.json.decode(answer)
                ids.append(doc["id"])
                tally.created[doc["id"]] = doc["title"]
        finally:
            conn.close()
        return ids

    parts = await asyncio.gather(*(some(range(i, count, 16)) for i in range(16)))
    return [i for part in parts for i in part]


async def _connection(
    port: int, worker: int, ids: list[str], stop: float, settings: Settings, tally: _Tally
) -> None:
    rng = random.Random(settings.seed * 1000 + worker)
    conn = await HTTPConnection.open(port)
    n = 0
    try:
        while time.monotonic() < stop:
            n += 1
            kind = rng.choices(KINDS, WEIGHTS)[0]
            target = rng.choice(ids)
            marker = f"w{worker}-{n}"
            headers = None
            if kind == "get":
                request: tuple[str, str, Any] = ("GET", f"{PATH}/{target}", None)
            elif kind == "query":
                request = ("GET", f"{PATH}?blog={rng.randrange(10)}&sort=-title&limit=10", None)
            elif kind == "create":
                body = {"title": marker, "blog": rng.randrange(10), "author": f"a{worker}"}
                request = ("POST", PATH, body)
            elif kind == "update":
                request = ("PUT", f"{PATH}/{target}", {"body": marker})
            else:
                toa = time.time() + rng.uniform(*settings.ahead)
                headers = {"Caesium-TOA": f"{toa:.6f}"}
                request = ("PATCH", f"{PATH}/{target}", {"tags": [marker]})
            started = time.perf_counter()
            status, answer = await conn.request(*request, headers=headers)
            tally.latencies[kind].append(time.perf_counter() - started)
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
            if status >= 300:
                if len(tally.unexpected) < 10:
                    tally.unexpected.append(f"{request[0]} {request[1]}: {status} {answer[:200]!r}")
                continue
            if kind == "create":
                tally.created[msgspec.json.decode(answer)["id"]] = marker
            elif kind == "update":
                tally.updated[marker] = target
            elif kind == "schedule" and status == 202:
                event = msgspec.json.decode(answer)
                tally.scheduled[event["seq"]] = (target, toa)
            elif kind == "schedule":  # its TOA passed on the way (a slow box): in effect now
                tally.updated[marker] = target
    finally:
        conn.close()


class Sample(NamedTuple):
    """One reading of the server's memory, ``seconds`` into the load."""

    seconds: float
    rss: int
    sqlite: int | None  # SQLite's own allocations (page caches), when reported
    malloc_free: int | None  # freed memory the C allocator keeps, when reported

    @property
    def in_use(self) -> int:
        """RSS less SQLite's allocations and malloc's free lists: where leaks show."""
        return self.rss - (self.sqlite or 0) - (self.malloc_free or 0)


def _reported(report: Path) -> dict[str, int]:
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, int)}


async def _sample(server: Server, stop: float, samples: list[Sample], report: Path) -> None:
    started = time.monotonic()
    while True:
        reported = _reported(report)
        samples.append(
            Sample(
                time.monotonic() - started,
                server.rss(),
                reported.get("sqlite"),
                reported.get("malloc_free"),
            )
        )
        if time.monotonic() >= stop:
            return
        await asyncio.sleep(1.0)


async def _load(
    server: Server, settings: Settings, tally: _Tally, preloaded: list[str], report: Path
) -> list[Sample]:
    ids = preloaded + await _seed(server.port, settings.seed_documents, tally)
    stop = time.monotonic() + settings.warmup + settings.seconds
    samples: list[Sample] = []
    sampler = asyncio.create_task(_sample(server, stop, samples, report))
    await asyncio.gather(
        *(
            _connection(server.port, w, ids, stop, settings, tally)
            for w in range(settings.connections)
        )
    )
    await sampler
    return samples


async def _settle(server: Server, due: float) -> None:
    """Wait until every scheduled write is due and the projector is idle."""
    await asyncio.sleep(max(0.0, due - time.time()) + 0.2)
    conn = await HTTPConnection.open(server.port)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            _, body = await conn.request("GET", "/healthz")
            health = msgspec.json.decode(body)["resources"][RESOURCE]
            if health["unprojected"] == 0 and health["due_unapplied"] == 0:
                return
            await asyncio.sleep(0.1)
    finally:
        conn.close()


async def _check(path: Path, tally: _Tally, problems: list[str]) -> tuple[int, int, int]:
    """(lost acknowledged writes, unacknowledged events in the log, verify differences)."""
    store = open_store(str(path))
    await store.open()
    try:
        log: list[Event] = []
        while chunk := await store.read_log(RESOURCE, after=log[-1].seq if log else 0, limit=5000):
            log.extend(chunk)
        now = int(time.time() * 1e6)
        by_id: dict[str, list[Event]] = {}
        for e in log:
            by_id.setdefault(e.id, []).append(e)
        outcome = {
            r.event.seq: r.outcome for evs in by_id.values() for r in fold(evs, as_of=now).results
        }
        lost = 0
        creates = {e.id: e for e in log if isinstance(e, Create)}
        for doc_id, title in tally.created.items():
            if doc_id not in creates or creates[doc_id].body.get("title") != title:
                lost += 1
        marks: dict[str, list[Event]] = {}
        for e in log:
            if isinstance(e, Update) and e.body:
                mark = e.body.get("body") if not e.merge else (e.body.get("tags") or [None])[0]
                marks.setdefault(mark, []).append(e)
        for marker, doc_id in tally.updated.items():
            found = marks.get(marker, [])
            if [(e.id, outcome[e.seq]) for e in found] != [(doc_id, "applied")]:
                lost += 1
        seqs = {e.seq: e for e in log}
        for seq, (doc_id, _) in tally.scheduled.items():
            if seq not in seqs or seqs[seq].id != doc_id or outcome[seq] != "applied":
                lost += 1
        acknowledged = len(tally.created) + len(tally.updated) + len(tally.scheduled)
        extra = len(log) - acknowledged
        differences = len(await verify(store, [RESOURCE]))
    finally:
        await store.close()
    if lost:
        problems.append(f"{lost} acknowledged writes lost")
    if extra:
        problems.append(f"{extra} events in the log were never acknowledged")
    if differences:
        problems.append(f"verify found {differences} differences")
    return lost, extra, differences


def run(settings: Settings | None = None, *, workdir: Path | None = None) -> Result:
    """One soak run; see the module docstring."""
    settings = settings or Settings()
    tally = _Tally()
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="eventdocs-soak-", dir=workdir) as tmp:
        report = Path(tmp) / "memory.json"
        server = Server(
            Path(tmp) / "soak.db",
            Path(tmp) / "serve.log",
            script=str(Path(__file__).with_name("_measured_serve.py")),
            env={"EVENTDOCS_MEMORY_REPORT": str(report)},
        )
        try:
            preloaded = asyncio.run(_preload(server.store, settings.preload_documents, tally))
            server.start()
            started = time.monotonic()
            samples = uvloop.run(_load(server, settings, tally, preloaded, report))
            elapsed = time.monotonic() - started
            due = max((toa for _, toa in tally.scheduled.values()), default=0.0)
            uvloop.run(_settle(server, due))
            code, shutdown = server.terminate()
            if code not in (0, -15):
                problems.append(f"exit status {code} after SIGTERM")
            lost, extra, differences = asyncio.run(_check(server.store, tally, problems))
        except BaseException:
            print((Path(tmp) / "serve.log").read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            server.kill()
    statuses = {str(k): v for k, v in sorted(tally.statuses.items())}
    server_errors = sum(v for k, v in tally.statuses.items() if k >= 500)
    if server_errors:
        problems.append(f"{server_errors} server errors")
    if any(k >= 300 for k in tally.statuses):
        problems.append(f"answers outside 2xx: {tally.unexpected[:3]}")
    every = [x for values in tally.latencies.values() for x in values]
    latency = {"all": every, **tally.latencies}
    after = [x for x in samples if x.seconds >= settings.warmup] or samples[-1:]
    growth = (after[-1].rss - after[0].rss) / after[0].rss
    in_use = (after[-1].in_use - after[0].in_use) / after[0].in_use

    def mib(value: int | None) -> float | None:
        return None if value is None else round(value / 2**20, 1)

    result = Result(
        settings=asdict(settings),
        requests=len(every),
        requests_per_second=round(len(every) / elapsed, 1),
        statuses=statuses,
        server_errors=server_errors,
        latency_ms={
            kind: {
                "p50": round(_percentile(v, 0.50) * 1000, 2),
                "p99": round(_percentile(v, 0.99) * 1000, 2),
                "max": round(max(v, default=0.0) * 1000, 2),
            }
            for kind, v in latency.items()
        },
        acknowledged_writes={
            "create": len(tally.created) - settings.seed_documents - settings.preload_documents,
            "update": len(tally.updated),
            "scheduled": len(tally.scheduled),
            "seed": settings.seed_documents,
            "preloaded": settings.preload_documents,
        },
        lost_writes=lost,
        unacknowledged_in_log=extra,
        verify_differences=differences,
        rss_mb={
            "start": mib(samples[0].rss),
            "after_warmup": mib(after[0].rss),
            "end": mib(after[-1].rss),
            "max": mib(max(x.rss for x in samples)),
        },
        sqlite_mb={"after_warmup": mib(after[0].sqlite), "end": mib(after[-1].sqlite)},
        malloc_free_mb={
            "after_warmup": mib(after[0].malloc_free),
            "end": mib(after[-1].malloc_free),
        },
        in_use_mb={"after_warmup": mib(after[0].in_use), "end": mib(after[-1].in_use)},
        rss_growth_after_warmup=round(growth, 4),
        in_use_growth_after_warmup=round(in_use, 4),
        memory_series_mb=[
            (round(x.seconds), mib(x.rss), mib(x.sqlite), mib(x.malloc_free), mib(x.in_use))
            for x in samples[::5]
        ],
        shutdown_seconds=round(shutdown, 2),
        load_average=[round(x, 2) for x in os.getloadavg()],
        problems=problems,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=Settings.seconds)
    parser.add_argument("--connections", type=int, default=Settings.connections)
    parser.add_argument("--warmup", type=float, default=Settings.warmup)
    parser.add_argument(
        "--preload", type=int, default=Settings.preload_documents, help="posts in the file first"
    )
    parser.add_argument(
        "--max-growth",
        type=float,
        default=0.10,
        help="growth after the warm-up that fails: of RSS less SQLite's allocations and "
        "malloc's free lists (of all RSS where they are not reported)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    settings = Settings(
        seconds=args.seconds,
        connections=args.connections,
        warmup=args.warmup,
        preload_documents=args.preload,
    )
    result = run(settings)
    judged, what = result.in_use_growth_after_warmup, "in use outside SQLite's page caches"
    if result.sqlite_mb["end"] is None:
        judged, what = result.rss_growth_after_warmup, "in all"
    if judged >= args.max_growth:
        result.problems.append(
            f"RSS {what} grew {judged:.1%} after the warm-up (limit {args.max_growth:.0%})"
        )
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        lat = result.latency_ms["all"]
        print(
            f"{result.requests} requests in {settings.warmup + settings.seconds:.0f} s at "
            f"{settings.connections} connections: {result.requests_per_second} req/s, "
            f"p50 {lat['p50']} ms, p99 {lat['p99']} ms"
        )
        for kind in KINDS:
            k = result.latency_ms[kind]
            print(f"  {kind:8s} p50 {k['p50']:7.2f} ms  p99 {k['p99']:7.2f} ms")
        print(f"statuses {result.statuses}; 5xx: {result.server_errors}")
        print(
            f"acknowledged writes {result.acknowledged_writes}; lost {result.lost_writes}; "
            f"unacknowledged in the log {result.unacknowledged_in_log}; "
            f"verify differences {result.verify_differences}"
        )
        print(
            f"RSS {result.rss_mb} MiB; SQLite {result.sqlite_mb} MiB; malloc's free lists "
            f"{result.malloc_free_mb} MiB; the rest, in use {result.in_use_mb} MiB"
        )
        print(
            f"growth after the warm-up: {result.rss_growth_after_warmup:.1%} of RSS, "
            f"{result.in_use_growth_after_warmup:.1%} of the memory in use outside SQLite"
        )
        print(f"SIGTERM to exit {result.shutdown_seconds} s; load average {result.load_average}")
        print("ok" if result.ok else "FAIL: " + "; ".join(result.problems))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
