"""Activation lag across processes on MongoDB: change streams against polling.

python benchmarks/mongo_lag.py --url mongodb://127.0.0.1:27017/?replicaSet=rs0 [--writes 30]

Two worker processes serve one database with the real scheduler and lease;
this process appends scheduled writes (TOA 300 ms ahead) through a store of its
own, without a scheduler, as a CLI or a process that died would. The lag is
the time from a write's TOA until a worker has projected it, seen by polling
the checkpoint every 5 ms. It is measured twice: with change streams (the
leader is woken by every append) and with the fallback poll (once a second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import uuid
from urllib.parse import urlsplit, urlunsplit

from eventdocs.events import Draft
from eventdocs.storage.mongodb import MongoStore

WORKER = """
import asyncio, sys
from eventdocs.fields import Integer
from eventdocs.resources import Resource
from eventdocs.service import Service
from eventdocs.storage.mongodb import MongoStore

class Item(Resource):
    name = "item"
    class schema:
        n = Integer()

class Polling(MongoStore):
    watch_appends = None  # what a server without change streams leaves

async def main(url, watch):
    store = (MongoStore if watch == "1" else Polling)(url)
    async with Service(store, [Item.spec()]):
        print("READY", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main(*sys.argv[1:]))
"""


def spawn(url: str, watch: bool) -> list[subprocess.Popen[str]]:
    """Two workers, each with a store, the scheduler and the lease."""
    args = [sys.executable, "-c", WORKER, url, "1" if watch else "0"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        assert proc.stdout is not None and "READY" in proc.stdout.readline()
    return procs


async def applied(store: MongoStore, seq: int, toa: int) -> None:
    """Return once a worker projected up to ``seq`` at valid time ``toa``."""
    while True:
        checkpoint = await store.read_checkpoint("item")
        if checkpoint.seq >= seq and checkpoint.toa >= toa:
            return
        await asyncio.sleep(0.005)


async def measure(url: str, writes: int, watch: bool) -> list[float]:
    procs = spawn(url, watch)
    store = MongoStore(url)
    try:
        await store.open()
        lags: list[float] = []
        for i in range(writes):
            toa = store.clock.now() + 300_000
            draft = Draft(action="create", id=f"d{i:04}", body={"n": i}, toa=toa)
            (event,) = (await store.append("item", [draft])).events
            await applied(store, event.seq, toa)
            lags.append((store.clock.now() - toa) / 1000)
            await asyncio.sleep(0.1)
        return lags
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        if store._db is not None:
            await store.db.client.drop_database(store.db.name)
        await store.close()


def summary(lags: list[float]) -> dict[str, float]:
    ordered = sorted(lags)
    return {
        "p50": statistics.median(ordered),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
        "max": ordered[-1],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True, help="a MongoDB replica set")
    p.add_argument("--writes", type=int, default=30)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    results = {}
    for watch in (True, False):
        name = f"eventdocs_lag_{uuid.uuid4().hex[:8]}"
        url = urlunsplit(urlsplit(args.url)._replace(path="/" + name))
        results["change stream" if watch else "poll"] = summary(
            asyncio.run(measure(url, args.writes, watch))
        )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, s in results.items():
            print(
                f"{name}: lag p50 {s['p50']:.1f} ms, p95 {s['p95']:.1f} ms, max {s['max']:.1f} ms"
            )


if __name__ == "__main__":
    main()
