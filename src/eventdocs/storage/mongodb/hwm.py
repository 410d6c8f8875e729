"""The high-water mark of a log: the seq up to which every seq is final.

Appends allocate seqs before they write them (see :mod:`.append`), so a log
may hold *pending* batches. Readers trust seqs only up to just below the
oldest one; a batch pending longer than ``stale_after`` (its writer died) is
voided so that the mark moves on.
"""

from __future__ import annotations

import asyncio
import time

from pymongo import ReplaceOne

from eventdocs.errors import StoreUnavailable
from eventdocs.storage.mongodb.base import Base, wall

__all__ = ["HighWater"]


class HighWater(Base):
    """Reading the high-water mark, voiding dead batches, waiting for earlier ones."""

    async def _hwm(self, r: str) -> int:
        """The highest seq up to which every seq is final (committed or void)."""
        while True:
            doc = await self._coll("eventdocs_counters").find_one({"_id": r})
            if doc is None:
                return 0
            open_ = {**doc.get("pending", {}), **doc.get("voiding", {})}
            if not open_:
                seq = int(doc["seq"])
                return seq
            stale = wall() - int(self.stale_after * 1000)
            first = min(open_, key=int)
            entry = open_[first]
            if entry["at"] > stale:
                return int(first) - 1
            await self._void(r, int(first), entry["n"], voiding=first in doc.get("voiding", {}))

    async def _void(self, r: str, first: int, n: int, *, voiding: bool = False) -> None:
        """Abandon the pending batch at ``first``: its seqs become void markers."""
        counters = self._coll("eventdocs_counters")
        if not voiding:
            moved = await counters.update_one(
                {"_id": r, f"pending.{first}": {"$exists": True}},
                {
                    "$unset": {f"pending.{first}": ""},
                    "$set": {f"voiding.{first}": {"n": n, "at": wall()}},
                },
            )
            if not moved.matched_count:
                return  # committed, or someone else is voiding it
        await self._coll(f"{r}_revisions").bulk_write(
            [ReplaceOne({"_id": s}, {"void": True}, upsert=True) for s in range(first, first + n)]
        )
        await self._coll("eventdocs_keys").delete_many({"_id.r": r, "batch": first})
        await self._coll("eventdocs_claims").delete_many({"_id.r": r, "batch": first})
        await counters.update_one({"_id": r}, {"$unset": {f"voiding.{first}": ""}})

    async def _wait_final(self, r: str, last: int) -> None:
        """Return once every seq up to ``last`` is final (earlier batches committed)."""
        delay, deadline = 0.001, time.monotonic() + 3 * self.stale_after
        while await self._hwm(r) < last:
            if time.monotonic() > deadline:
                raise StoreUnavailable("mongodb: an earlier append is still pending")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
