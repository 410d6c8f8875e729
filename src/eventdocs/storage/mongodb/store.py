"""The MongoDB store: its lifecycle, resources, views and leases; the rest is mixed in.

See the package docstring for the design. The parts: :mod:`.append` (the log's
writes), :mod:`.hwm` (the high-water mark), :mod:`.log` (the log's reads),
:mod:`.projection` (projection writes), :mod:`.reads` (projection reads),
:mod:`.codec` and :mod:`.keys` (BSON and query keys), :mod:`.errors` (the
boundary of driver errors).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from pymongo.write_concern import WriteConcern

from eventdocs.errors import DeclarationError
from eventdocs.events import Event
from eventdocs.storage.contract import Checkpoint, IndexSpec
from eventdocs.storage.loading import load_in_chunks
from eventdocs.storage.mongodb.append import Appends
from eventdocs.storage.mongodb.base import MIN_TIME, index_name, valid_name, wall
from eventdocs.storage.mongodb.cancels import decide_cancels
from eventdocs.storage.mongodb.codec import Doc, checkpoint_of, data_of, event_of
from eventdocs.storage.mongodb.errors import boundary, is_duplicate
from eventdocs.storage.mongodb.keys import path_field
from eventdocs.storage.mongodb.log import LogReads
from eventdocs.storage.mongodb.owner import Owner
from eventdocs.storage.mongodb.projection import Projections
from eventdocs.storage.mongodb.reads import ProjectionReads
from eventdocs.storage.mongodb.watch import Watch

__all__ = ["MongoStore"]

_RESERVED = re.compile(r"^(eventdocs_|view_|system)|_(revisions|history|superseded)$")


class MongoStore(Appends, LogReads, Projections, ProjectionReads, Watch):
    """Every resource in one MongoDB database; see the package docstring for the design."""

    _owner: Owner | None = None

    # -- lifecycle -----------------------------------------------------------

    @boundary
    async def open(self) -> None:
        if self._client is not None:
            return
        client: AsyncMongoClient[Doc] = AsyncMongoClient(self.url, **self._options)
        try:
            hello = await client.admin.command("hello")
            clustered = "setName" in hello or hello.get("msg") == "isdbgrid"
            if self.transactions is None:
                self.transactions = clustered
            self.write_concern = WriteConcern(w="majority") if clustered else WriteConcern(j=True)
            default = client.get_default_database(default="eventdocs")
            self._db = client.get_database(default.name, write_concern=self.write_concern)
            self._client = client
            async for doc in self._coll("eventdocs_resources").find({}):
                self._known.add(doc["_id"])
            await self._coll("eventdocs_view_checkpoints").create_index("view")
            self.standalone = not clustered
            if self.standalone and not self.readonly:
                self._owner = Owner(self.db, self.stale_after)
                await self._owner.claim()
        except BaseException:
            self._client = self._db = None
            self._owner = None
            await client.close()
            raise

    async def close(self) -> None:
        drains = list(self._drains.values())
        if drains:
            await asyncio.gather(*drains, return_exceptions=True)
        owner, self._owner = self._owner, None
        if owner is not None:
            await owner.release()
        client, self._client, self._db = self._client, None, None
        if client is not None:
            await client.close()

    @boundary
    async def ensure_resource(self, resource: str, indexes: Sequence[IndexSpec] = ()) -> None:
        self._writable()
        r = valid_name(resource, "resource")
        if _RESERVED.search(r):
            raise DeclarationError(f"resource name {r!r} is reserved for the store's own use")
        log, history, master = (
            self._coll(f"{r}_revisions"),
            self._coll(f"{r}_history"),
            self._coll(r),
        )
        await log.create_index([("id", 1), ("_id", 1)], name="id_seq")
        await log.create_index([("id", 1), ("toa", 1), ("_id", 1)], name="id_toa_seq")
        await log.create_index([("toa", 1), ("_id", 1)], name="toa_seq")
        await log.create_index(
            [("took", 1)], name="took", partialFilterExpression={"took": {"$exists": True}}
        )
        # One event at most follows each event of a document: guards (see .append).
        await log.create_index(
            [("id", 1), ("prev", 1)],
            name="id_prev",
            unique=True,
            partialFilterExpression={"prev": {"$exists": True}},
        )
        await history.create_index([("id", 1), ("rev", 1)], name="id_rev", unique=True)
        await history.create_index([("until", 1), ("updated", 1)], name="alive")
        # Reads at a valid time, and as known at a time (see .reads): index seeks.
        at = [("id", 1), ("updated", 1), ("seq", 1)]
        await history.create_index(at, name="id_at")
        await history.create_index(at, name="ahead", partialFilterExpression={"ahead": True})
        closed = self._coll(f"{r}_superseded")
        await closed.create_index(at, name="id_at")
        await closed.create_index([("known_to", 1)], name="known_to")
        for spec in indexes:
            if spec.field == "id":
                continue  # _id serves it
            path = path_field(spec.field)
            prefix = "_d." if spec.kind == "decimal" else "_k."
            await master.create_index(
                [(prefix + path, 1), ("_id", 1)], name=index_name("q", prefix[1], spec.field)
            )
            if spec.kind == "text":
                await master.create_index(
                    [("_l." + path, 1), ("_id", 1)], name=index_name("q_l", spec.field)
                )
        counters = self._coll("eventdocs_counters")
        fresh = {"seq": 0, "rec": MIN_TIME, "pending": {}, "voiding": {}, "closed_kept": True}
        await counters.update_one({"_id": r}, {"$setOnInsert": fresh}, upsert=True)
        await decide_cancels(log, counters, r)
        await self._keep_closed(r)
        await self._coll("eventdocs_resources").update_one(
            {"_id": r}, {"$setOnInsert": {"created": wall()}}, upsert=True
        )
        self._known.add(r)

    async def _keep_closed(self, r: str) -> None:
        """A projection written before the store kept closed history rows (and marked
        scheduled ones) is rebuilt once by the projector: its ``known_at`` reads need them."""
        counters = self._coll("eventdocs_counters")
        if (await counters.find_one({"_id": r}, {"closed_kept": 1}) or {}).get("closed_kept"):
            return
        await self.reset_projection(r)
        await counters.update_one({"_id": r}, {"$set": {"closed_kept": True}})

    async def load_stream(self, events: Iterable[Event]) -> dict[str, int]:
        return await load_in_chunks(self, events)

    @boundary
    async def resources(self) -> list[str]:
        return [d["_id"] async for d in self._coll("eventdocs_resources").find({}).sort("_id", 1)]

    # -- views -------------------------------------------------------------------

    @boundary
    async def ensure_view(self, view: str) -> None:
        valid_name(view, "view")

    @boundary
    async def read_view(self, view: str, keys: Sequence[str] | None = None) -> dict[str, Any]:
        coll = self._coll(f"view_{valid_name(view, 'view')}")
        if keys is not None and not keys:
            return {}
        query = {} if keys is None else {"_id": {"$in": list(keys)}}
        return {d["_id"]: data_of(d) async for d in coll.find(query)}

    @boundary
    async def view_checkpoints(self, view: str) -> dict[str, Checkpoint]:
        cursor = self._coll("eventdocs_view_checkpoints").find({"view": view})
        return {d["resource"]: checkpoint_of(d) async for d in cursor}

    @boundary
    async def reset_view(self, view: str) -> None:
        self._writable()
        await self._coll(f"view_{valid_name(view, 'view')}").delete_many({})
        await self._coll("eventdocs_view_checkpoints").delete_many({"view": view})

    # -- leases (see eventdocs.projections.lease) ------------------------------------

    @boundary
    async def claim_lease(self, name: str, holder: str, ttl: float) -> bool:
        self._writable()
        """Hold lease ``name`` for ``ttl`` seconds if it is free, expired or ours."""
        leases = self._coll("eventdocs_leases")
        now = wall()
        until = now + int(ttl * 1000)
        taken = await leases.update_one(
            {"_id": name, "$or": [{"holder": holder}, {"until": {"$lt": now}}]},
            {"$set": {"holder": holder, "until": until}},
        )
        if taken.matched_count:
            return True
        try:
            await leases.insert_one({"_id": name, "holder": holder, "until": until})
        except PyMongoError as exc:
            if is_duplicate(exc):
                return False
            raise
        return True

    @boundary
    async def release_lease(self, name: str, holder: str) -> None:
        """Give lease ``name`` up at once, if ``holder`` holds it."""
        await self._coll("eventdocs_leases").delete_one({"_id": name, "holder": holder})

    # -- scheduled writes ----------------------------------------------------------

    async def read_pending(
        self,
        resource: str,
        *,
        now: int,
        limit: int,
        offset: int = 0,
        after: tuple[int, int] | None = None,
    ) -> list[Event]:
        """A page of what :meth:`count_pending` counts, in ``(toa, seq)`` order."""
        last = await self.last_seq(resource)
        if after is None:
            due = await self.read_due(
                resource, after_toa=now, until_toa=2**62, max_seq=last, limit=offset + limit
            )
            return due[offset:]
        # From the cursor's TOA on (one index range, streamed), past the cursor itself.
        r, skip = await self._res(resource), offset
        out: list[Event] = []
        async for doc in self._due(r, max(now, after[0] - 1), 2**62, last):
            if (doc["toa"], doc["_id"]) <= after:
                continue
            if skip:
                skip -= 1
                continue
            if len(out) >= limit:
                break
            out.append(event_of(doc))
        return out
