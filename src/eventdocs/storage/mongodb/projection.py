"""Projection writes: the checkpoint lock, transactions or the journal, recovery.

Each step is written under a lock held in the resource's checkpoint document
(taken with compare-and-set, kept fresh while its holder writes, stolen when
stale) and only if the stored checkpoint is the batch's base, so nothing is
applied twice whichever process projects. On a replica set the writes and the
new checkpoint commit in one transaction; on a standalone server the batch is
first written to ``eventdocs_journal`` and a crashed apply is rolled forward
by the next reader of the checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from pymongo import DeleteMany, DeleteOne, InsertOne, ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError

from eventdocs.errors import StoreUnavailable
from eventdocs.storage.contract import Checkpoint, ProjectionBatch
from eventdocs.storage.mongodb.base import valid_name, wall
from eventdocs.storage.mongodb.codec import Doc, checkpoint_of, closed_doc, put_data, row_doc
from eventdocs.storage.mongodb.errors import boundary, is_duplicate
from eventdocs.storage.mongodb.hwm import HighWater

__all__ = ["Projections"]

_CHUNK = 8 * 1024 * 1024  # journal bytes per document, well under BSON's 16 MiB


class Projections(HighWater):
    """``write_projection``, ``reset_projection`` and ``read_checkpoint``."""

    @boundary
    async def read_checkpoint(self, resource: str) -> Checkpoint:
        r = await self._res(resource)
        doc = await self._coll("eventdocs_checkpoints").find_one({"_id": r})
        recover = doc is not None and "lock" in doc and not self.readonly
        if recover and doc is not None and await self._stale(r, doc["lock"]):
            await self._recover(r, doc["lock"])
            doc = await self._coll("eventdocs_checkpoints").find_one({"_id": r})
        return Checkpoint() if doc is None else checkpoint_of(doc)

    async def _stale(self, r: str, lock: Doc) -> bool:
        """Whether the lock's holder has shown no sign of life for ``stale_after``."""
        at: int = lock["at"]
        beat = await self._coll("eventdocs_leases").find_one({"_id": f"lock:{r}"})
        if beat is not None and beat["token"] == lock["token"]:
            at = max(at, beat["at"])
        return at < wall() - int(self.stale_after * 1000)

    async def _lock(self, r: str, lock: Doc, ok: Callable[[Checkpoint], bool]) -> bool:
        """Take the checkpoint lock of ``r`` if ``ok(stored)``; ``False`` when not ok."""
        checkpoints = self._coll("eventdocs_checkpoints")
        delay = 0.001
        while True:
            doc = await checkpoints.find_one({"_id": r})
            if doc is None:
                try:
                    await checkpoints.insert_one({"_id": r, "seq": 0, "toa": Checkpoint().toa})
                except PyMongoError as exc:
                    if not is_duplicate(exc):
                        raise
                continue
            if "lock" in doc:
                if await self._stale(r, doc["lock"]):
                    await self._recover(r, doc["lock"])
                else:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.05)
                continue
            if not ok(checkpoint_of(doc)):
                return False
            taken = await checkpoints.update_one(
                {"_id": r, "seq": doc["seq"], "toa": doc["toa"], "lock": {"$exists": False}},
                {"$set": {"lock": {**lock, "at": wall()}}},
            )
            if taken.matched_count:
                return True

    @contextlib.asynccontextmanager
    async def _held(self, r: str, token: str) -> AsyncIterator[None]:
        """Show the lock's holder alive while it writes, so that only a holder that
        died or froze goes stale, never one that is merely slow. The beats go to a
        document of their own: writing the checkpoint document would conflict with
        the step's transaction, which writes it at the end."""

        async def beat() -> None:
            beats = self._coll("eventdocs_leases")
            while True:
                await asyncio.sleep(self.stale_after / 3)
                with contextlib.suppress(PyMongoError):
                    await beats.replace_one(
                        {"_id": f"lock:{r}"}, {"token": token, "at": wall()}, upsert=True
                    )

        task = asyncio.create_task(beat(), name=f"eventdocs-lock-{r}")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _unlock(
        self, r: str, token: str, checkpoint: Checkpoint, session: Any = None
    ) -> bool:
        done = await self._coll("eventdocs_checkpoints").update_one(
            {"_id": r, "lock.token": token},
            {"$set": {"seq": checkpoint.seq, "toa": checkpoint.toa}, "$unset": {"lock": ""}},
            session=session,
        )
        return bool(done.matched_count)

    async def _recover(self, r: str, lock: Doc) -> None:
        """Finish or drop the work of a lock holder that died.

        The lock is first taken over (compare-and-set on its token and time), so
        only one process recovers, and only from a lock that is still there: a
        journal is never replayed over a newer step.
        """
        token = lock["token"]
        target = checkpoint_of(lock)
        checkpoints = self._coll("eventdocs_checkpoints")
        taken = await checkpoints.update_one(
            {"_id": r, "lock.token": token, "lock.at": lock["at"]},
            {"$set": {"lock.at": wall()}},
        )
        if not taken.matched_count:
            return  # released, or someone else is recovering it
        journal = self._coll("eventdocs_journal")
        if lock["kind"] == "journal":
            parts = [d async for d in journal.find({"token": token}).sort("i", 1)]
            if len(parts) == lock["n"]:
                batch = msgspec.json.decode(
                    b"".join(p["data"] for p in parts), type=ProjectionBatch
                )
                await self._apply(r, batch)
                await self._unlock(r, token, target)
            await journal.delete_many({"token": token})
        elif lock["kind"] == "reset":
            await self._clear(r)
            await self._unlock(r, token, target)
        # A transaction either committed (and removed the lock) or left nothing.
        await checkpoints.update_one({"_id": r, "lock.token": token}, {"$unset": {"lock": ""}})

    # -- projections -----------------------------------------------------------

    @boundary
    async def write_projection(self, resource: str, batch: ProjectionBatch) -> bool:
        self._writable()
        r = await self._res(resource)
        for view in batch.views:
            valid_name(view, "view")
        new = batch.checkpoint
        token = uuid.uuid4().hex
        journal = self._coll("eventdocs_journal")
        lock: Doc = {"token": token, "seq": new.seq, "toa": new.toa, "kind": "transaction"}
        if not self.transactions:
            data = msgspec.json.encode(batch)
            parts = [data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK)] or [b""]
            await journal.insert_many(
                [
                    {"_id": f"{token}/{i}", "token": token, "i": i, "data": p}
                    for i, p in enumerate(parts)
                ]
            )
            lock.update(kind="journal", n=len(parts))
        stored: list[Checkpoint] = []

        def fits(checkpoint: Checkpoint) -> bool:
            stored[:] = [checkpoint]
            return batch.fits(checkpoint)

        pending = 0
        try:
            if not await self._lock(r, lock, fits):
                self.skipped_projections += 1
                return False
            async with self._held(r, token):
                unseen, pending = await self._unseen(r, stored[0], new)
                if unseen:
                    if not self.transactions:  # nothing to roll forward should we die now
                        await journal.delete_many({"token": token})
                    await self._unlock(r, token, stored[0])
                    self.skipped_projections += 1
                    return False
                if self.transactions and self._client is not None:

                    async def run(session: AsyncClientSession) -> None:
                        await self._apply(r, batch, session)
                        if not await self._unlock(r, token, new, session):
                            raise StoreUnavailable("mongodb: the projection lock was lost")

                    async with self._client.start_session() as session:
                        await session.with_transaction(run, write_concern=self.write_concern)
                else:
                    await self._apply(r, batch)
                    if not await self._unlock(r, token, new):
                        raise StoreUnavailable("mongodb: the projection lock was lost")
        finally:
            if not self.transactions:
                with contextlib.suppress(PyMongoError):
                    await journal.delete_many({"token": token})
            if pending:  # refused for a batch still being written: let it finish first
                with contextlib.suppress(StoreUnavailable):
                    await self._wait_final(r, pending)
        return True

    async def _unseen(self, r: str, stored: Checkpoint, new: Checkpoint) -> tuple[bool, int]:
        """Whether an event the step did not see (``seq > new.seq``) was recorded after
        ``stored.toa`` and at or before ``new.toa``; and the last seq of a batch still
        being written if one such is.

        The counter's ``floor`` is raised to ``new.toa`` first, so every allocation
        after this check records at ``new.toa`` or later: the check and the step
        are atomic with respect to appends, whichever processes make them.
        """
        if new.toa <= stored.toa:
            return False, 0
        counters = self._coll("eventdocs_counters")
        await counters.update_one({"_id": r}, {"$max": {"floor": new.toa}})
        doc = await counters.find_one({"_id": r}) or {}
        for first, entry in doc.get("pending", {}).items():
            last = int(first) + int(entry["n"]) - 1
            rec = entry.get("rec", new.toa)  # an entry of an older version: assume the worst
            if last > new.seq and stored.toa < rec <= new.toa:
                return True, last
        hit = await self._coll(f"{r}_revisions").find_one(
            {"_id": {"$gt": new.seq}, "recorded_at": {"$gt": stored.toa, "$lte": new.toa}},
            {"_id": 1},
        )
        return (False, 0) if hit is None else (True, int(hit["_id"]))

    async def _apply(self, r: str, batch: ProjectionBatch, session: Any = None) -> None:
        """Every write of ``batch``; each is idempotent, so a roll-forward may repeat it."""
        history: list[Any] = []
        closed: list[Any] = []
        for write in batch.history:
            history.append(DeleteMany({"id": write.id, "rev": {"$gte": write.from_rev}}))
            history += [InsertOne(row_doc(write.id, row, history=True)) for row in write.rows]
            if write.replace_closed:
                closed.append(DeleteMany({"id": write.id}))
            for row in write.closed:
                doc = closed_doc(write.id, row)
                closed.append(ReplaceOne({"_id": doc["_id"]}, doc, upsert=True))
        master: list[Any] = [
            ReplaceOne({"_id": d.id}, row_doc(d.id, d, history=False), upsert=True)
            for d in batch.upserts
        ]
        master += [DeleteOne({"_id": doc_id}) for doc_id in batch.deletes]
        if history:
            await self._coll(f"{r}_history").bulk_write(history, session=session)
        if closed:
            await self._coll(f"{r}_superseded").bulk_write(closed, session=session)
        if master:
            await self._coll(r).bulk_write(master, session=session)
        marks: list[Any] = []
        for name, view in batch.views.items():
            ops: list[Any] = [
                ReplaceOne({"_id": k}, put_data({"_id": k}, v), upsert=True)
                for k, v in view.puts.items()
            ]
            ops += [DeleteOne({"_id": k}) for k in view.deletes]
            if ops:
                await self._coll(f"view_{name}").bulk_write(ops, session=session)
            marks += [
                ReplaceOne(
                    {"_id": f"{name}/{source}"},
                    {"view": name, "resource": source, "seq": cp.seq, "toa": cp.toa},
                    upsert=True,
                )
                for source, cp in view.checkpoint.items()
            ]
        if marks:
            await self._coll("eventdocs_view_checkpoints").bulk_write(marks, session=session)

    async def _clear(self, r: str) -> None:
        await self._coll(f"{r}_history").delete_many({})
        await self._coll(f"{r}_superseded").delete_many({})
        await self._coll(r).delete_many({})

    @boundary
    async def reset_projection(self, resource: str, *, base: Checkpoint | None = None) -> bool:
        self._writable()
        r = await self._res(resource)
        token = uuid.uuid4().hex
        zero = Checkpoint()
        lock = {"token": token, "seq": 0, "toa": zero.toa, "kind": "reset"}
        if not await self._lock(r, lock, lambda stored: base is None or stored == base):
            return False
        async with self._held(r, token):
            # The zero checkpoint goes first: a crash in between leaves a store the
            # projector rebuilds from scratch.
            await self._coll("eventdocs_checkpoints").update_one(
                {"_id": r, "lock.token": token}, {"$set": {"seq": 0, "toa": zero.toa}}
            )
            await self._clear(r)
            await self._unlock(r, token, zero)
        return True
