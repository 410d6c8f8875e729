"""Every backend behind one constructor, for the storage tests and the state machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventdocs.storage import EventStore, open_store
from eventdocs.storage.memory import MemoryStore
from eventdocs.storage.sqlite import SQLiteStore
from eventdocs.times import ManualClock

BACKENDS = ["memory", "sqlite", "mongodb"]


class Clock(ManualClock):
    """A manual clock that can also go back, to prove ``recorded_at`` never does."""

    def rewind(self, micros: int) -> None:
        self._now -= micros


async def make_store(backend: str, tmp_path: Path, clock: ManualClock | None = None) -> EventStore:
    """An opened store of ``backend``; a fresh MongoDB database each time."""
    clock = clock or Clock()
    if backend == "memory":
        store: EventStore = MemoryStore(clock)
    elif backend == "sqlite":
        store = SQLiteStore(tmp_path / "store.db", clock=clock)
    else:
        from mongotest import SKIP_REASON, URL, fresh_url

        if not URL:
            pytest.skip(SKIP_REASON)
        store = open_store(fresh_url(), clock=clock)
    await store.open()
    return store


async def dispose(store: EventStore) -> None:
    """Close ``store``, removing a MongoDB store's data: tests leave nothing behind."""
    from eventdocs.storage.mongodb import MongoStore

    if isinstance(store, MongoStore):
        from mongotest import discard

        await discard(store)
    else:
        await store.close()
