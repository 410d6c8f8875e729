"""Fixtures of the storage tests: every backend behind one ``store`` fixture."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from eventdocs.storage import EventStore, open_store
from eventdocs.storage.memory import MemoryStore
from eventdocs.storage.sqlite import SQLiteStore
from eventdocs.times import ManualClock

MONGODB_URL = os.environ.get("EVENTDOCS_TEST_MONGODB_URL")
BACKENDS = ["memory", "sqlite", "mongodb"]


class Clock(ManualClock):
    """A manual clock that can also go back, to prove ``recorded_at`` never does."""

    def rewind(self, micros: int) -> None:
        self._now -= micros


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def make_store(backend: str, tmp_path: Path, clock: ManualClock | None = None) -> EventStore:
    """An opened store of ``backend``; a fresh MongoDB database per test."""
    clock = clock or Clock()
    if backend == "memory":
        store: EventStore = MemoryStore(clock)
    elif backend == "sqlite":
        store = SQLiteStore(tmp_path / "store.db", clock=clock)
    else:
        if not MONGODB_URL:
            pytest.skip("set EVENTDOCS_TEST_MONGODB_URL to run the contract suite on MongoDB")
        database = f"eventdocs_test_{os.getpid()}_{abs(hash(tmp_path)) % 10**8}"
        url = urlsplit(MONGODB_URL)._replace(path=f"/{database}")
        store = open_store(urlunsplit(url), clock=clock)
    await store.open()
    return store


@pytest.fixture(scope="session")
def store_factory() -> Callable[[str, Path], Awaitable[EventStore]]:
    """For fixtures of a wider scope: ``await store_factory(backend, path)``."""
    return make_store


@pytest.fixture(params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[EventStore]:
    s = await make_store(request.param, tmp_path, clock)
    await s.ensure_resource("post")
    yield s
    await s.close()
