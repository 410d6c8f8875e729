"""Stores: the contract, and the one factory that picks a backend by URL.

``memory:`` keeps everything in this process; ``sqlite:///path`` (or a plain
path) is the embedded default; ``mongodb://…`` and ``mongodb+srv://…`` use
MongoDB through PyMongo's async API (the ``mongodb`` extra).
"""

from __future__ import annotations

from eventdocs.errors import InvalidRequest
from eventdocs.storage.contract import (
    Appended,
    Checkpoint,
    Document,
    EventStore,
    Guard,
    Head,
    HistoryWrite,
    IndexSpec,
    ProjectionBatch,
    ViewWrite,
)
from eventdocs.times import Clock

__all__ = [
    "Appended",
    "Checkpoint",
    "Document",
    "EventStore",
    "Guard",
    "Head",
    "HistoryWrite",
    "IndexSpec",
    "ProjectionBatch",
    "ViewWrite",
    "open_store",
    "sqlite_path",
]


def open_store(url: str, *, clock: Clock | None = None, readonly: bool = False) -> EventStore:
    """The store for ``url``; call ``await store.open()`` before use.

    ``readonly`` opens a SQLite file (or a MongoDB database of a standalone
    server) as a reader beside its owner: nothing is created or written, and no
    ownership is taken (the memory store ignores it).
    """
    if url == "memory:":
        from eventdocs.storage.memory import MemoryStore

        return MemoryStore(clock)
    if url.startswith(("mongodb://", "mongodb+srv://")):
        from eventdocs.storage.mongodb import MongoStore  # type: ignore[import-not-found,unused-ignore]

        return MongoStore(url, clock=clock, readonly=readonly)  # type: ignore[no-any-return,unused-ignore]
    path = sqlite_path(url)
    assert path is not None
    from eventdocs.storage.sqlite import SQLiteStore  # type: ignore[import-not-found,unused-ignore]

    return SQLiteStore(path, clock=clock, readonly=readonly)  # type: ignore[no-any-return,unused-ignore]


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite store URL (``sqlite:///tmp/x.db`` or a plain path), else None.

    Raises:
        InvalidRequest: ``url`` is of no backend.
    """
    if url == "memory:" or url.startswith(("mongodb://", "mongodb+srv://")):
        return None
    if url.startswith("sqlite://"):
        return url.removeprefix("sqlite://")  # sqlite:///tmp/x.db is /tmp/x.db
    if "://" in url:
        raise InvalidRequest(
            f"unknown store URL {url!r}: use a path, sqlite:///, mongodb:// or memory:"
        )
    return url
