"""Reads of the log: by seq, by document, and the scheduler's scans by TOA.

Every read stops at the high-water mark (:mod:`.hwm`), so a batch is never
seen in part, and skips void markers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from eventdocs.events import Event
from eventdocs.storage.contract import Head
from eventdocs.storage.mongodb.codec import OPEN, Doc, event_of
from eventdocs.storage.mongodb.errors import boundary
from eventdocs.storage.mongodb.hwm import HighWater

__all__ = ["LogReads"]


class LogReads(HighWater):
    """The log's read methods of the store contract."""

    async def _events(
        self, r: str, query: Doc, sort: list[tuple[str, int]], limit: int = 0
    ) -> list[Event]:
        cursor = self._coll(f"{r}_revisions").find(query).sort(sort)
        if limit:
            cursor = cursor.limit(limit)
        return [event_of(d) async for d in cursor]

    @boundary
    async def read_log(self, resource: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        r = await self._res(resource)
        if limit <= 0:
            return []
        hwm = await self._hwm(r)
        query = {"_id": {"$gt": after, "$lte": hwm}, "void": {"$exists": False}}
        return await self._events(r, query, [("_id", 1)], limit)

    @boundary
    async def read_log_by_document(
        self, resource: str, *, after: str = "", limit: int = 1000
    ) -> list[Event]:
        r = await self._res(resource)
        if limit <= 0:
            return []
        hwm = await self._hwm(r)
        query = {"id": {"$gt": after}, "_id": {"$lte": hwm}}
        return await self._events(r, query, [("id", 1), ("_id", 1)], limit)

    @boundary
    async def read_event(self, resource: str, seq: int) -> Event | None:
        r = await self._res(resource)
        if seq > await self._hwm(r):
            return None
        doc = await self._coll(f"{r}_revisions").find_one({"_id": seq, "void": {"$exists": False}})
        return None if doc is None else event_of(doc)

    @boundary
    async def read_document(self, resource: str, id: str) -> list[Event]:
        r = await self._res(resource)
        hwm = await self._hwm(r)
        return await self._events(r, {"id": id, "_id": {"$lte": hwm}}, [("_id", 1)])

    async def _due(
        self, r: str, after_toa: int, until_toa: int, max_seq: int, *, full: bool = True
    ) -> Any:
        """Writes due in the range, in (toa, seq) order, those a cancel took left out (a stream)."""
        log = self._coll(f"{r}_revisions")
        query = {
            "toa": {"$gt": after_toa, "$lte": until_toa},
            "_id": {"$lte": max_seq},
            "action": {"$ne": "cancel"},
        }
        projection = None if full else {"_id": 1, "id": 1, "toa": 1}
        cursor = log.find(query, projection).sort([("toa", 1), ("_id", 1)])
        chunk: list[Doc] = []

        async def screened(docs: list[Doc]) -> list[Doc]:
            seqs = [d["_id"] for d in docs]
            takers = log.find({"took": {"$in": seqs}, "_id": {"$lte": max_seq}}, {"took": 1})
            dropped = {c["took"] async for c in takers}
            return [d for d in docs if d["_id"] not in dropped]

        async for doc in cursor:
            chunk.append(doc)
            if len(chunk) >= 500:
                for kept in await screened(chunk):
                    yield kept
                chunk = []
        if chunk:
            for kept in await screened(chunk):
                yield kept

    @boundary
    async def read_due(
        self,
        resource: str,
        *,
        after_toa: int,
        until_toa: int,
        max_seq: int,
        limit: int | None = None,
    ) -> list[Event]:
        r = await self._res(resource)
        out: list[Event] = []
        if limit is not None and limit <= 0:
            return out
        async for doc in self._due(r, after_toa, until_toa, max_seq):
            out.append(event_of(doc))
            if limit is not None and len(out) >= limit:
                break
        return out

    @boundary
    async def count_due(
        self, resource: str, *, after_toa: int, until_toa: int, max_seq: int
    ) -> int:
        r = await self._res(resource)
        count = 0
        async for _ in self._due(r, after_toa, until_toa, max_seq, full=False):
            count += 1
        return count

    @boundary
    async def next_toa(self, resource: str, *, after_toa: int, max_seq: int) -> int | None:
        r = await self._res(resource)
        async for doc in self._due(r, after_toa, OPEN, max_seq, full=False):
            return int(doc["toa"])
        return None

    @boundary
    async def read_head(self, resource: str, id: str, *, after_toa: int) -> Head:
        r = await self._res(resource)
        log = self._coll(f"{r}_revisions")
        hwm = await self._hwm(r)
        live = {"id": id, "_id": {"$lte": hwm}, "void": {"$exists": False}}
        last = await log.find_one(live, {"_id": 1}, sort=[("_id", -1)])
        if last is None:
            return Head()
        later = {**live, "toa": {"$gt": after_toa}, "action": {"$ne": "cancel"}}
        cursor = log.find(later, {"toa": 1}, sort=[("toa", 1), ("_id", 1)])
        async for write in cursor:  # the first no cancel took
            if await log.find_one({**live, "took": write["_id"]}, {"_id": 1}) is None:
                await cursor.close()
                return Head(int(last["_id"]), int(write["toa"]))
        return Head(int(last["_id"]), None)

    @boundary
    async def read_heads(
        self, resource: str, ids: Sequence[str], *, max_seq: int
    ) -> dict[str, tuple[int, int]]:
        """Per id one backwards seek on ``(id, toa, seq)``, not its whole log."""
        r = await self._res(resource)
        log = self._coll(f"{r}_revisions")

        async def head(id: str) -> Doc | None:
            query = {"id": id, "_id": {"$lte": max_seq}, "action": {"$ne": "cancel"}}
            order = [("toa", -1), ("_id", -1)]
            return await log.find_one(query, {"toa": 1}, sort=order, hint="id_toa_seq")

        found = await asyncio.gather(*(head(i) for i in ids))
        pairs = zip(ids, found, strict=True)
        return {i: (int(d["toa"]), int(d["_id"])) for i, d in pairs if d is not None}

    @boundary
    async def read_revisions(
        self,
        resource: str,
        id: str,
        *,
        limit: int,
        offset: int = 0,
        after: tuple[int, int] | None = None,
    ) -> tuple[int, list[Event]]:
        """A page of the document's events in ``(toa, seq)`` order, from the index,
        and their count: the ``n`` of its latest event (see :mod:`.append`)."""
        r = await self._res(resource)
        log, hwm = self._coll(f"{r}_revisions"), await self._hwm(r)
        mine: Doc = {"id": id, "_id": {"$lte": hwm}}
        latest = await log.find_one(mine, {"n": 1}, sort=[("_id", -1)], hint="id_seq")
        if latest is None:
            return 0, []
        total = latest.get("n")
        if total is None:  # written before events were numbered
            total = await log.count_documents(mine)
        if after is not None:
            toa, seq = after
            mine["$or"] = [{"toa": {"$gt": toa}}, {"toa": toa, "_id": {"$gt": seq}}]
        if limit <= 0:
            return int(total), []
        cursor = log.find(mine).sort([("toa", 1), ("_id", 1)]).hint("id_toa_seq")
        return int(total), [event_of(d) async for d in cursor.skip(offset).limit(limit)]

    @boundary
    async def read_from(self, resource: str, id: str, *, toa: int, seq: int) -> list[Event]:
        """The document's events from ``(toa, seq)`` on, in that order: a seek."""
        r = await self._res(resource)
        hwm = await self._hwm(r)
        query = {
            "id": id,
            "_id": {"$lte": hwm},
            "$or": [{"toa": {"$gt": toa}}, {"toa": toa, "_id": {"$gte": seq}}],
        }
        return await self._events(r, query, [("toa", 1), ("_id", 1)])

    @boundary
    async def read_cancels(self, resource: str, targets: Sequence[int]) -> list[Event]:
        """The cancels that took one of ``targets``, in seq order."""
        r = await self._res(resource)
        hwm = await self._hwm(r)
        query = {
            "took": {"$in": sorted(set(targets))},
            "_id": {"$lte": hwm},
            "void": {"$exists": False},
        }
        return await self._events(r, query, [("_id", 1)])

    @boundary
    async def last_seq(self, resource: str) -> int:
        return await self._hwm(await self._res(resource))
