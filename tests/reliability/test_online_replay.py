"""``eventdocs replay --url``: a rebuild inside a running server, under writes from a client."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _server import BLOG_JSON, Server

from eventdocs.events import Create
from eventdocs.projections.replay import replay
from eventdocs.storage.sqlite import SQLiteStore
from eventdocs.times import SystemClock

SEEDED = 20_000
WAIT = 120.0

# A real client process: creates and updates posts until told to stop, and after each
# acknowledged write reads the post back: the read must show that revision or a later one.
_CLIENT = """
import json, os, sys, httpx
url, acks, stop = sys.argv[1], sys.argv[2], sys.argv[3]
ids, n = [], 0
with httpx.Client(base_url=url, timeout=60) as client, open(acks, "w") as out:
    while not os.path.exists(stop):
        n += 1
        if n % 3 or not ids:
            answer = client.post("/v1/post", json={"title": f"c{n}", "blog": 2, "author": "cy"})
            assert answer.status_code == 201, answer.text
            doc = answer.json()
            ids.append(doc["id"])
        else:
            doc_id = ids[n % len(ids)]
            answer = client.patch(f"/v1/post/{doc_id}", json={"title": f"u{n}"})
            assert answer.status_code == 200, answer.text
            doc = answer.json()
        rev = int(answer.headers["etag"].strip('W/"'))
        read = client.get(f"/v1/post/{doc['id']}")
        assert read.status_code == 200, (doc, read.text)
        seen = int(read.headers["etag"].strip('W/"'))
        assert seen >= rev, (doc["id"], rev, seen)
        out.write(json.dumps({"id": doc["id"], "rev": rev, "title": doc["title"]}) + "\\n")
        out.flush()
"""


def _seed(path: Path) -> None:
    async def run() -> None:
        store = SQLiteStore(path)
        await store.open()
        try:
            await store.ensure_resource("post")
            now = SystemClock().now()
            events = [
                Create(
                    seq=seq, resource="post", id=f"seed{seq:06d}", toa=now, recorded_at=now,
                    body={"title": f"s{seq}", "blog": 1, "author": f"a{seq % 9}"},
                )
                for seq in range(1, SEEDED + 1)
            ]  # fmt: skip
            await store.load("post", events)
            await replay(store, "post", now=now)
        finally:
            await store.close()

    asyncio.run(run())


def _eventdocs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventdocs", *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )


def test_a_replay_through_the_server_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    store = tmp_path / "blog.db"
    _seed(store)
    acks, stop = tmp_path / "acks.jsonl", tmp_path / "stop"
    with Server(store, tmp_path / "serve.log") as server:
        server.start()
        client = subprocess.Popen(
            [sys.executable, "-c", _CLIENT, server.url, str(acks), str(stop)],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + WAIT
            while not acks.exists() or acks.stat().st_size < 2000:  # writes are going on
                assert client.poll() is None, client.communicate()[1]
                assert time.monotonic() < deadline
                time.sleep(0.02)
            done = _eventdocs("replay", "--store", str(store), "--url", server.url)
            assert done.returncode == 0, done.stderr
            assert f"replayed post through {server.url}" in done.stdout
            during = acks.read_text().count("\n")
            while acks.read_text().count("\n") < during + 20:  # and go on after the swap
                assert client.poll() is None, client.communicate()[1]
                assert time.monotonic() < deadline
                time.sleep(0.02)
        finally:
            stop.touch()
            _, errors = client.communicate(timeout=WAIT)
        assert client.returncode == 0, errors
        last: dict[str, dict[str, object]] = {}
        for line in acks.read_text().splitlines():
            ack = json.loads(line)
            last[ack["id"]] = ack
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for doc_id, ack in last.items():
                answer = http.get(f"/v1/post/{doc_id}")
                assert answer.status_code == 200, answer.text
                assert answer.json()["title"] == ack["title"]
            assert http.get("/v1/post/seed000007").json()["title"] == "s7"
        checked = _eventdocs("verify", "--store", str(store), "--target", BLOG_JSON)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_replay_beside_a_server_without_url_names_the_way_through_it(tmp_path: Path) -> None:
    store = tmp_path / "blog.db"
    with Server(store, tmp_path / "serve.log") as server:
        server.start()
        refused = _eventdocs("replay", "--store", str(store))
        assert refused.returncode == 1
        lines = refused.stderr.splitlines()
        assert len(lines) == 1 and "--url" in lines[0], refused.stderr
        wrong = _eventdocs("replay", "--store", str(store), "--url", server.url, "--resource", "x")
        assert wrong.returncode == 1
        assert len(wrong.stderr.splitlines()) == 1 and "404" in wrong.stderr, wrong.stderr
