"""What every part of the MongoDB store shares: the client, names, the wall clock."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from typing import TYPE_CHECKING, Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.write_concern import WriteConcern

from eventdocs.errors import DeclarationError, NotFound, StorageError
from eventdocs.storage.mongodb.codec import Doc
from eventdocs.times import Clock, SystemClock

if TYPE_CHECKING:
    from eventdocs.storage.mongodb.append import Call

__all__ = ["MIN_TIME", "Base", "index_name", "valid_name", "wall"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MIN_TIME = -(2**62)


def valid_name(name: str, what: str) -> str:
    if not _NAME.fullmatch(name):
        raise DeclarationError(f"{what} name {name!r} must match [A-Za-z_][A-Za-z0-9_]*")
    return name


def wall() -> int:
    """Wall-clock milliseconds, for staleness across processes (never the store clock)."""
    return time.time_ns() // 1_000_000


def index_name(*parts: str) -> str:
    name = "_".join(parts)
    if len(name) <= 60:
        return name
    return name[:40] + "_" + hashlib.sha1(name.encode()).hexdigest()[:12]


class Base:
    """The state of one store: its client and database, and per-process bookkeeping."""

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        transactions: bool | None = None,
        stale_after: float = 10.0,
        readonly: bool = False,
        **client_options: Any,
    ) -> None:
        self.url = url
        #: reads only, beside the process that serves the database (CLI reads)
        self.readonly = readonly
        self.clock = clock or SystemClock()
        self.stale_after = stale_after
        self.transactions = transactions
        self._options = {"serverSelectionTimeoutMS": 10_000, **client_options}
        self._client: AsyncMongoClient[Doc] | None = None
        self._db: AsyncDatabase[Doc] | None = None
        self._known: set[str] = set()
        self._queues: dict[str, list[Call]] = {}
        self._drains: dict[str, asyncio.Task[None]] = {}
        self.write_concern = WriteConcern(j=True)
        self.skipped_projections = 0
        #: per resource, this process's --max-pending, and the pending writes it knows
        self._pending_limits: dict[str, int] = {}
        self._schedules: dict[str, Any] = {}
        #: on a standalone server one process serves the database (see .owner)
        self.standalone = False

    @property
    def db(self) -> AsyncDatabase[Doc]:
        if self._db is None:
            raise StorageError("the store is not open")
        return self._db

    def _writable(self) -> None:
        if self.readonly:
            raise StorageError("mongodb: the store is open read-only")

    def _coll(self, name: str) -> AsyncCollection[Doc]:
        return self.db[name]

    async def _res(self, resource: str) -> str:
        if resource not in self._known:
            # Another process may have created it since we opened.
            if await self._coll("eventdocs_resources").find_one({"_id": resource}) is None:
                raise NotFound(f"unknown resource {resource!r}")
            self._known.add(resource)
        return resource
