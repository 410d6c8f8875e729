"""Reads of the projections: master rows, history and views."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pymongo.asynchronous.collection import AsyncCollection

from eventdocs.query import Query
from eventdocs.storage.contract import Document, believed
from eventdocs.storage.mongodb.base import Base
from eventdocs.storage.mongodb.codec import ROW_FIELDS, Doc, document_of
from eventdocs.storage.mongodb.errors import boundary
from eventdocs.storage.mongodb.keys import compile_query, compile_sort

__all__ = ["ProjectionReads"]

_LATEST = [("updated", -1), ("seq", -1)]


def _believed(toa: int, known_at: int) -> Doc:
    """:func:`~eventdocs.storage.contract.believed` as a filter on a row's plain fields
    (``until`` is ``valid_to``, open as the largest time)."""
    return {
        "known_from": {"$lte": known_at},
        "updated": {"$lte": toa},
        "$or": [{"until": {"$gt": toa}}, {"end_known": {"$gt": known_at}}],
        "$nor": [{"known_to": {"$lte": known_at}}],
    }


class ProjectionReads(Base):
    """The read methods of the store contract over history, master rows and views."""

    @boundary
    async def get(self, resource: str, id: str) -> Document | None:
        r = await self._res(resource)
        doc = await self._coll(r).find_one({"_id": id}, ROW_FIELDS)
        return None if doc is None else document_of(doc)

    async def _query(
        self,
        coll: AsyncCollection[Doc],
        base: Doc,
        query: Query,
        id_field: str,
        *,
        union: tuple[AsyncCollection[Doc], Doc] | None = None,
    ) -> tuple[int, list[Document]]:
        """A page of ``query`` over ``coll`` (and the ``union`` collection's rows)."""
        compiled = compile_query(query)

        def where(base: Doc) -> Doc:
            parts = [p for p in (base, compiled) if p]
            return {} if not parts else parts[0] if len(parts) == 1 else {"$and": parts}

        flt = where(base)
        total = int(await coll.count_documents(flt))  # jongodb counts in Int64
        if union is not None:
            total += int(await union[0].count_documents(where(union[1])))
        if query.limit <= 0 or query.offset >= total:
            return total, []
        order = compile_sort(query.sort, id_field)
        if union is None:
            cursor = coll.find(flt, ROW_FIELDS).sort(order).skip(query.offset).limit(query.limit)
            return total, [document_of(d) async for d in cursor]
        pipeline: list[Doc] = [
            {"$match": flt},
            {"$unionWith": {"coll": union[0].name, "pipeline": [{"$match": where(union[1])}]}},
            {"$sort": dict(order)},
            {"$skip": query.offset},
            {"$limit": query.limit},
            {"$project": ROW_FIELDS},
        ]
        return total, [document_of(d) async for d in await coll.aggregate(pipeline)]

    @boundary
    async def query(self, resource: str, query: Query) -> tuple[int, list[Document]]:
        r = await self._res(resource)
        return await self._query(self._coll(r), {}, query, "_id")

    @boundary
    async def scan(self, resource: str, *, after: str = "", limit: int = 1000) -> list[Document]:
        r = await self._res(resource)
        if limit <= 0:
            return []
        cursor = self._coll(r).find({"_id": {"$gt": after}}, ROW_FIELDS).sort("_id", 1)
        return [document_of(d) async for d in cursor.limit(limit)]

    @boundary
    async def read_history(self, resource: str, id: str) -> list[Document]:
        r = await self._res(resource)
        cursor = self._coll(f"{r}_history").find({"id": id}, ROW_FIELDS).sort("rev", 1)
        return [document_of(d) async for d in cursor]

    @boundary
    async def history_tails(self, resource: str, ids: Sequence[str]) -> dict[str, Document]:
        r = await self._res(resource)
        if not ids:
            return {}
        history = self._coll(f"{r}_history")
        pipeline: list[Doc] = [
            {"$match": {"id": {"$in": list(ids)}}},
            {"$sort": {"id": 1, "rev": -1}},
            {"$group": {"_id": "$id", "rev": {"$first": "$rev"}}},
        ]
        tails = [(d["_id"], d["rev"]) async for d in await history.aggregate(pipeline)]
        if not tails:
            return {}
        cursor = history.find({"$or": [{"id": i, "rev": rev} for i, rev in tails]}, ROW_FIELDS)
        return {d["id"]: document_of(d) async for d in cursor}

    async def _latest(self, coll: str, query: Doc, *, hint: str = "id_at") -> Document | None:
        """The last row of ``query`` in valid-time order: a seek on ``(id, updated, seq)``."""
        doc = await self._coll(coll).find_one(query, ROW_FIELDS, sort=_LATEST, hint=hint)
        return None if doc is None else document_of(doc)

    @boundary
    async def history_at(self, resource: str, id: str, *, toa: int) -> Document | None:
        r = await self._res(resource)
        return await self._latest(f"{r}_history", {"id": id, "updated": {"$lte": toa}})

    @boundary
    async def history_before(
        self, resource: str, id: str, *, toa: int, seq: int
    ) -> Document | None:
        r = await self._res(resource)
        before = {"$or": [{"updated": {"$lt": toa}}, {"updated": toa, "seq": {"$lt": seq}}]}
        return await self._latest(f"{r}_history", {"id": id, **before})

    @boundary
    async def history_span(self, resource: str, id: str, *, start: int, end: int) -> list[Document]:
        r = await self._res(resource)
        query = {"id": id, "updated": {"$gte": start, "$lte": end}}
        cursor = (
            self._coll(f"{r}_history").find(query, ROW_FIELDS).sort([("updated", 1), ("seq", 1)])
        )
        return [document_of(d) async for d in cursor.hint("id_at")]

    @boundary
    async def history_rev(self, resource: str, id: str, rev: int) -> Document | None:
        r = await self._res(resource)
        doc = await self._coll(f"{r}_history").find_one({"id": id, "rev": rev}, ROW_FIELDS)
        return None if doc is None else document_of(doc)

    async def history_at_many(
        self, resource: str, ids: Sequence[str], *, toa: int
    ) -> dict[str, Document]:
        """:meth:`history_at` of each of ``ids`` that has a row then: a seek each."""
        found = await asyncio.gather(*(self.history_at(resource, i, toa=toa) for i in ids))
        return {row.id: row for row in found if row is not None}

    @boundary
    async def history_known(
        self, resource: str, id: str, *, toa: int, known_at: int
    ) -> Document | None:
        """The row believed at ``known_at`` in effect at ``toa``: one of the history's
        two candidates (a seek each, the first nearly always), or else one of the rows
        a correction closed since (see :meth:`SQLiteStore.history_known`)."""
        r = await self._res(resource)
        by = {"id": id, "known_from": {"$lte": known_at}}
        candidates = (
            (f"{r}_history", {**by, "updated": {"$lte": min(toa, known_at)}}, "id_at"),
            (f"{r}_history", {**by, "ahead": True, "updated": {"$gt": known_at, "$lte": toa}},
             "ahead"),
            (f"{r}_superseded", {**_believed(toa, known_at), "id": id}, "id_at"),
        )  # fmt: skip
        for coll, query, hint in candidates:
            row = await self._latest(coll, query, hint=hint)
            if row is not None and believed(row, toa, known_at):
                return row
        return None

    @boundary
    async def query_known(
        self, resource: str, query: Query, *, toa: int, known_at: int
    ) -> tuple[int, list[Document]]:
        """Like :meth:`query_history`, over the rows believed at ``known_at``: the
        history's, and the closed rows' when a correction since closed one believed
        then (rare)."""
        r = await self._res(resource)
        history = self._coll(f"{r}_history")
        base = {**_believed(toa, known_at), "live": True}
        closed = self._coll(f"{r}_superseded")
        if await closed.find_one({"known_to": {"$gt": known_at}, "known_from": {"$lte": known_at}}):
            return await self._query(history, base, query, "id", union=(closed, base))
        return await self._query(history, base, query, "id")

    @boundary
    async def query_history(
        self, resource: str, query: Query, *, toa: int
    ) -> tuple[int, list[Document]]:
        r = await self._res(resource)
        alive = {"until": {"$gt": toa}, "updated": {"$lte": toa}, "live": True}
        return await self._query(self._coll(f"{r}_history"), alive, query, "id")

    @boundary
    async def scan_history(
        self, resource: str, *, after: str = "", limit: int = 1000
    ) -> list[Document]:
        r = await self._res(resource)
        history = self._coll(f"{r}_history")
        order = [("id", 1), ("rev", 1)]
        cursor = history.find({"id": {"$gt": after}}, ROW_FIELDS).sort(order).limit(limit + 1)
        docs = [d async for d in cursor]
        if len(docs) > limit:  # drop the document the limit cut, or read all of the first
            cut = docs[-1]["id"]
            docs = [d for d in docs if d["id"] != cut]
            if not docs:
                docs = [d async for d in history.find({"id": cut}, ROW_FIELDS).sort("rev", 1)]
        return [document_of(d) for d in docs]
