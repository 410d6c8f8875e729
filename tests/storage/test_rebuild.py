"""The SQLite rebuild: equal to the fold, views included, and safe to kill."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from blog import Post, PostsPerAuthor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventdocs.events import Create, Event
from eventdocs.projections.bitemporal import document_timeline
from eventdocs.projections.projector import in_effect
from eventdocs.projections.replay import expected_rows, replay, verify
from eventdocs.storage.sqlite import SQLiteStore
from eventdocs.storage.sqlite.rebuild import PREFIX, document_rows
from eventdocs.times import ManualClock
from logs import IDS, SECOND, START, log_of, step


@given(st.lists(step, max_size=40), st.integers(0, 45))
def test_document_rows_are_the_rows_of_the_fold(steps: list[tuple[Any, ...]], at: int) -> None:
    now = START + at * SECOND
    for doc_id in IDS:
        events = [e for e in log_of(steps) if e.id == doc_id]
        rows, master, closed = document_rows(doc_id, list(events), now)
        timeline = document_timeline(doc_id, events)
        want = timeline.rows
        assert want == expected_rows(doc_id, events)
        got = [
            (d.id, d.data, d.rev, d.updated, d.seq, d.valid_to, d.known_from, d.end_known)
            for d in want
        ]
        assert [(i, None if doc is None else _json(doc), *rest) for i, doc, *rest in rows] == got
        assert [(i, None if doc is None else _json(doc), *rest) for i, doc, *rest in closed] == [
            (d.id, d.data, d.rev, d.updated, d.seq, d.valid_to, d.known_from, d.end_known,
             d.known_to)
            for d in timeline.closed
        ]  # fmt: skip
        live = in_effect(want, now)
        if live is None or live.data is None:
            assert master is None
        else:
            assert master is not None
            assert (master[0], _json(master[1]), *master[2:]) == (
                live.id, live.data, live.rev, live.updated, live.seq, None
            )  # fmt: skip


def _json(doc: str | None) -> Any:
    import msgspec

    return None if doc is None else msgspec.json.decode(doc)


async def _store(path: Path, clock: ManualClock) -> SQLiteStore:
    store = SQLiteStore(path, clock=clock)
    await store.open()
    await store.ensure_resource("post", Post.spec().indexes())
    await store.ensure_view(PostsPerAuthor.name)
    return store


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=60), st.integers(0, 65))
def test_a_rebuilt_store_verifies_clean_with_its_views(
    tmp_path_factory: Any, steps: list[tuple[Any, ...]], at: int
) -> None:
    path = tmp_path_factory.mktemp("rebuild") / "s.db"

    async def run() -> None:
        clock = ManualClock(START + at * SECOND)
        store = await _store(path, clock)
        try:
            events = log_of(steps)
            clock.set(max(e.recorded_at for e in events))
            await store.load("post", events)
            views = [PostsPerAuthor()]  # rebuilt in the swap's transaction
            assert await replay(store, "post", now=clock.now(), views=views) == len(events)
            assert await verify(store, ["post"], [PostsPerAuthor()]) == []
            # Again over the projection it wrote: the same, and no fresh table is left.
            await replay(store, "post", now=clock.now(), views=views)
            assert await verify(store, ["post"], [PostsPerAuthor()]) == []
            tables = await store._call(
                lambda c: c.execute("SELECT name FROM sqlite_master").fetchall(), sync=None
            )
            assert not [t for (t,) in tables if t.startswith(PREFIX)]
            indexes = {t for (t,) in tables if t.startswith("post__")}
            assert {"post__author", "post__author_at"} <= indexes
        finally:
            await store.close()

    asyncio.run(run())


_REBUILD = """
import asyncio, sys
sys.path.insert(0, {examples!r})
from blog import Post
from eventdocs.projections.replay import replay
from eventdocs.storage.sqlite import SQLiteStore
from eventdocs.times import SystemClock

async def main():
    store = SQLiteStore({path!r})
    await store.open()
    await store.ensure_resource("post", Post.spec().indexes())
    await replay(store, "post", now=SystemClock().now())

asyncio.run(main())
"""


def _tables(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    finally:
        conn.close()


def test_a_rebuild_killed_before_its_swap_leaves_the_live_projection(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    clock = ManualClock()

    async def fill() -> list[Any]:
        store = await _store(path, clock)
        try:
            for start in range(0, 60_000, 2000):
                events: list[Event] = [
                    Create(
                        seq=seq, resource="post", id=f"p{seq:06d}", toa=clock.now(),
                        recorded_at=clock.now(),
                        body={"title": "x" * 40, "blog": seq % 7, "author": f"a{seq % 13}"},
                    )
                    for seq in range(start + 1, start + 2001)
                ]  # fmt: skip
                await store.load("post", events)
            await replay(store, "post", now=clock.now())
            return await store.scan("post", limit=100_000)
        finally:
            await store.close()

    before = asyncio.run(fill())
    examples = str(Path(__file__).resolve().parents[2] / "examples")
    child = subprocess.Popen(
        [sys.executable, "-c", _REBUILD.format(examples=examples, path=str(path))]
    )
    try:
        deadline = time.monotonic() + 60
        while not any(t.startswith(PREFIX) for t in _tables(path)):
            assert child.poll() is None, "the rebuild finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert any(t.startswith(PREFIX) for t in _tables(path))

    async def check() -> None:
        store = await _store(path, clock)
        try:
            assert not [t for t in _tables(path) if t.startswith(PREFIX)]  # dropped at open
            assert await store.scan("post", limit=100_000) == before
            assert await verify(store, ["post"]) == []
        finally:
            await store.close()

    asyncio.run(check())


def test_writes_during_a_rebuild_are_folded_in_at_the_swap(tmp_path: Path) -> None:
    """Appends while the fresh tables fill, and writes coming due meanwhile, are in
    the swapped projection: the swap folds their documents again."""
    from eventdocs.events import Draft
    from eventdocs.projections.projector import Projector

    async def run() -> None:
        clock = ManualClock()
        store = await _store(tmp_path / "s.db", clock)
        try:
            seed: list[Event] = [
                Create(
                    seq=seq, resource="post", id=f"p{seq:05d}", toa=clock.now(),
                    recorded_at=clock.now(), body={"title": "t", "blog": 1, "author": "ann"},
                )
                for seq in range(1, 30_001)
            ]  # fmt: skip
            await store.load("post", seed)
            due = clock.now() + SECOND
            await store.append(
                "post", [Draft(action="update", id="p29999", body={"blog": 9}, toa=due)]
            )
            rebuilding = asyncio.ensure_future(
                replay(store, "post", now=clock.now(), views=[PostsPerAuthor()])
            )
            n = 0
            while not rebuilding.done():
                n += 1
                clock.advance(SECOND)  # the scheduled update comes due during the rebuild
                drafts = [
                    Draft(action="update", id=f"p{n:05d}", body={"author": "bob"}),
                    Draft(action="create", id=f"new{n}", body={"title": "n", "blog": 2}),
                ]
                await store.append("post", drafts)
                await asyncio.sleep(0)
            await rebuilding
            assert store.rebuild_timings["caught_up"] > 0
            assert await verify(store, ["post"], [PostsPerAuthor()]) == []
            assert (await store.get("post", "p29999")).data["blog"] == 9  # type: ignore[union-attr]
            assert (await store.get("post", "new1")) is not None
            # The last append may come after the swap: the projector goes on from it.
            await Projector(store, clock, [PostsPerAuthor()]).project("post")
            assert (await store.get("post", f"new{n}")) is not None
            assert await verify(store, ["post"], [PostsPerAuthor()]) == []
        finally:
            await store.close()

    asyncio.run(run())
