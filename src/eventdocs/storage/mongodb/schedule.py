"""Pending writes counted where an append is decided: ``--max-pending`` exact
across processes.

A limit is checked inside the allocation's compare-and-set (:mod:`.append`):
the count is taken against the counter document the allocation read, and
the allocation only lands if that document is unchanged, so no other
append (of any process) slipped in between the count and the seqs. The
count is this process's :class:`~eventdocs.storage.pending.Pending`, caught
up from the log up to the first batch still being written, plus what lies
above it: the final events there (scheduled ones, cancels not subtracted)
and the scheduled TOAs each batch in flight registered with its
allocation. Both parts can only overcount, never miss a pending write, so
the limit is never passed; catching up reads only the events appended
since the last look.
"""

from __future__ import annotations

import asyncio

from eventdocs.storage.mongodb.codec import OPEN, Doc, event_of
from eventdocs.storage.mongodb.log import LogReads
from eventdocs.storage.pending import Pending

__all__ = ["Schedules"]


class _Known:
    """One resource's pending writes up to ``upto``, as this process last read them."""

    def __init__(self) -> None:
        self.pending: Pending | None = None
        self.upto = 0
        self.lock = asyncio.Lock()


class Schedules(LogReads):
    """``set_pending_limit`` and ``count_pending``, and the count an allocation checks."""

    async def set_pending_limit(self, resource: str, limit: int | None) -> None:
        """Checked by this process's allocations (see the module docstring)."""
        r = await self._res(resource)
        if limit is None:
            self._pending_limits.pop(r, None)
        else:
            self._pending_limits[r] = limit

    async def count_pending(self, resource: str, *, now: int) -> int:
        """Scheduled writes with a TOA after ``now`` that no cancel took (batches
        still being written counted by what they scheduled)."""
        r = await self._res(resource)
        doc = await self._coll("eventdocs_counters").find_one({"_id": r}) or {"seq": 0}
        return await self._pending_at(r, doc, now)

    async def _pending_at(self, r: str, counter: Doc, now: int) -> int:
        """The writes pending after ``now`` in the log as ``counter`` describes it."""
        last = int(counter["seq"])
        flights = {int(f): e for f, e in counter.get("pending", {}).items()}
        voids = {int(f): e for f, e in counter.get("voiding", {}).items()}
        open_from = min([*flights, *voids, last + 1])
        known: _Known = self._schedules.get(r) or self._schedules.setdefault(r, _Known())
        async with known.lock:
            if known.pending is None:  # first use: the pending writes, one range scan
                rows = self._due(r, now, OPEN, open_from - 1, full=False)
                known.pending = Pending([(d["toa"], d["_id"], d["id"]) async for d in rows])
                known.upto = open_from - 1
            elif known.upto < open_from - 1:  # the events final since the last look
                query = {"_id": {"$gt": known.upto, "$lt": open_from}, "void": {"$exists": False}}
                async for doc in self._coll(f"{r}_revisions").find(query).sort("_id", 1):
                    known.pending.add(event_of(doc), doc.get("took"))
                known.upto = open_from - 1
            count = known.pending.count(now)
        if open_from > last:
            return count
        above: Doc = {
            "_id": {"$gte": open_from, "$lte": last},
            "toa": {"$gt": now},
            "action": {"$ne": "cancel"},
        }
        busy = [*flights.items(), *voids.items()]
        above["$nor"] = [{"_id": {"$gte": f, "$lt": f + int(e["n"])}} for f, e in busy]
        count += await self._coll(f"{r}_revisions").count_documents(above)
        for entry in flights.values():
            scheduled = entry.get("sched")
            count += int(entry["n"]) if scheduled is None else sum(t > now for t in scheduled)
        return count
