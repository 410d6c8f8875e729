"""Reads of the projections: master rows, history and views."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo.asynchronous.collection import AsyncCollection

from eventdocs.query import Query
from eventdocs.storage.contract import Document
from eventdocs.storage.mongodb.base import Base
from eventdocs.storage.mongodb.codec import ROW_FIELDS, Doc, document_of
from eventdocs.storage.mongodb.errors import boundary
from eventdocs.storage.mongodb.keys import compile_query, compile_sort

__all__ = ["ProjectionReads"]


class ProjectionReads(Base):
    """The read methods of the store contract over history, master rows and views."""

    @boundary
    async def get(self, resource: str, id: str) -> Document | None:
        r = await self._res(resource)
        doc = await self._coll(r).find_one({"_id": id}, ROW_FIELDS)
        return None if doc is None else document_of(doc)

    async def _query(
        self, coll: AsyncCollection[Doc], base: Doc, query: Query, id_field: str
    ) -> tuple[int, list[Document]]:
        compiled = compile_query(query)
        parts = [p for p in (base, compiled) if p]
        flt = {} if not parts else parts[0] if len(parts) == 1 else {"$and": parts}
        total = int(await coll.count_documents(flt))  # jongodb counts in Int64
        if query.limit <= 0 or query.offset >= total:
            return total, []
        cursor = (
            coll.find(flt, ROW_FIELDS)
            .sort(compile_sort(query.sort, id_field))
            .skip(query.offset)
            .limit(query.limit)
        )
        return total, [document_of(d) async for d in cursor]

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

    @boundary
    async def history_at(self, resource: str, id: str, *, toa: int) -> Document | None:
        r = await self._res(resource)
        doc = await self._coll(f"{r}_history").find_one(
            {"id": id, "updated": {"$lte": toa}}, ROW_FIELDS, sort=[("rev", -1)]
        )
        return None if doc is None else document_of(doc)

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
