"""On a standalone server one process serves a database.

Without transactions a projection step is written row by row (through the
journal, see :mod:`.projection`). A process that froze in the middle of a step
for longer than ``stale_after`` (a VM pause, ``SIGSTOP``) and then resumed
could overwrite rows of the steps another process took meanwhile. Rather than
fence every row, a store on a standalone server takes the database for its
process: ``eventdocs_leases`` holds an ``owner`` document that the process
refreshes every ``stale_after / 3``; another process that opens the database
while the owner is alive is refused with one line naming the owner. When the
owner dies, the next process takes over once its document is ``stale_after``
old, or at once on the owner's host (its pid no longer runs there). A replica
set (a single node is enough) needs none of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from eventdocs.errors import StorageError
from eventdocs.storage.mongodb.base import wall
from eventdocs.storage.mongodb.codec import Doc
from eventdocs.storage.mongodb.errors import is_duplicate

__all__ = ["Owner"]

_ID = "owner"


class Owner:
    """This process's hold on a database of a standalone server."""

    def __init__(self, db: AsyncDatabase[Doc], stale_after: float) -> None:
        self.leases = db["eventdocs_leases"]
        self.database = db.name
        self.stale_ms = int(stale_after * 1000)
        self.period = stale_after / 3
        self.token = uuid.uuid4().hex
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.name = f"pid {self.pid} on {self.host}"
        self._beat: asyncio.Task[None] | None = None

    async def claim(self) -> None:
        """Take the database, or raise ``StorageError`` naming the process that has it."""
        now = wall()
        mine = {"token": self.token, "name": self.name, "host": self.host, "pid": self.pid}
        taken = await self.leases.update_one(
            {"_id": _ID, "$or": [{"token": self.token}, {"at": {"$lt": now - self.stale_ms}}]},
            {"$set": {**mine, "at": now}},
        )
        if not taken.matched_count:
            try:
                await self.leases.insert_one({"_id": _ID, **mine, "at": now})
            except PyMongoError as exc:
                if not is_duplicate(exc):
                    raise
                holder = await self.leases.find_one({"_id": _ID}) or {}
                if self._dead_here(holder):  # restarted after a crash on this host: no wait
                    await self.leases.delete_one({"_id": _ID, "token": holder.get("token")})
                    await self.claim()
                    return
                raise StorageError(
                    f"mongodb: database {self.database!r} is on a standalone server and "
                    f"{holder.get('name', 'another process')} serves it; a standalone "
                    "server is served by one process: use a replica set for several "
                    "(a single node is enough: mongod --replSet rs0)"
                ) from None
        self._beat = asyncio.create_task(self._refresh(), name="eventdocs-owner")

    def _dead_here(self, holder: Doc) -> bool:
        """Whether ``holder`` was a process of this host that no longer runs."""
        pid = holder.get("pid")
        if holder.get("host") != self.host or not isinstance(pid, int) or pid == self.pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # it runs, as another user
            return False
        return False

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            with contextlib.suppress(PyMongoError):
                await self.leases.update_one(
                    {"_id": _ID, "token": self.token}, {"$set": {"at": wall()}}
                )

    async def release(self) -> None:
        """Give the database up (on close), so the next process need not wait."""
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
        with contextlib.suppress(PyMongoError):
            await self.leases.delete_one({"_id": _ID, "token": self.token})
