"""Appends: allocate, write, commit; no multi-document transaction needed.

1. *allocate*: a compare-and-set on the log's counter document takes ``n``
   seqs and ``recorded_at = max(now, last)`` and registers the batch as
   *pending*;
2. *write*: the idempotency keys, then the events, in ordered inserts;
3. *commit*: a conditional ``$unset`` of the pending entry.

Readers trust only seqs up to the high-water mark (:mod:`.hwm`), so a batch is
never seen in part. A batch whose writer died is voided: its commit then
fails, and so does any late insert of it. An append returns once every seq up
to its last is final, so read-your-writes holds across processes. Concurrent
appends of one process share one allocation (group commit), so one resource
serializes on its counter document only once per group.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence

from pymongo.errors import PyMongoError

from eventdocs.errors import InvalidRequest, NotFound, StorageError, StoreUnavailable
from eventdocs.events import Draft, Event
from eventdocs.storage.contract import Appended
from eventdocs.storage.mongodb.base import MIN_TIME, wall
from eventdocs.storage.mongodb.codec import Doc, event_doc, event_of
from eventdocs.storage.mongodb.errors import boundary, is_duplicate, translate
from eventdocs.storage.mongodb.hwm import HighWater

__all__ = ["Appends", "Call"]


class Call:
    """One ``append`` waiting for its group: settled with a result or an error."""

    __slots__ = ("drafts", "events", "future", "key", "replay_of")

    def __init__(self, drafts: list[Draft], key: str | None) -> None:
        self.drafts = drafts
        self.key = key
        self.events: list[Event] = []
        self.replay_of: Call | None = None
        self.future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()


class _Raced(Exception):
    """Another process took an idempotency key of the group: redo each call alone."""


class Appends(HighWater):
    """``append``, ``load`` and ``find_idempotent``."""

    @boundary
    async def append(
        self, resource: str, drafts: Sequence[Draft], *, idempotency_key: str | None = None
    ) -> Appended:
        r = await self._res(resource)
        if self._db is None:
            raise StorageError("the store is not open")
        call = Call(list(drafts), idempotency_key)
        self._queues.setdefault(r, []).append(call)
        if r not in self._drains:
            task = asyncio.create_task(self._drain(r), name=f"eventdocs-append-{r}")
            self._drains[r] = task
        return await call.future

    async def _drain(self, r: str) -> None:
        """Commit every queued call of ``r``, a group at a time."""
        try:
            while calls := self._queues.pop(r, []):
                await self._settle(r, calls)
        finally:
            self._drains.pop(r, None)

    async def _settle(self, r: str, calls: list[Call], tries: int = 3) -> None:
        try:
            await self._commit(r, calls)
        except _Raced:
            # Another process used a key first: alone, each call now finds it and replays.
            pending = [c for c in calls if not c.future.done()]
            if tries > 1:
                for call in pending:
                    call.replay_of = None
                    await self._settle(r, [call], tries - 1)
            for call in pending:
                if not call.future.done():
                    call.future.set_exception(StoreUnavailable("mongodb: idempotency key race"))
            return
        except BaseException as exc:
            error = translate(exc) if isinstance(exc, PyMongoError) else exc
            for call in calls:
                if not call.future.done():
                    call.future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        for call in calls:
            if call.future.done():
                continue
            if call.replay_of is not None:
                call.future.set_result(Appended(call.replay_of.events, replayed=True))
            else:
                call.future.set_result(Appended(call.events))

    async def _commit(self, r: str, calls: list[Call]) -> None:
        keys = {c.key for c in calls if c.key is not None}
        used = await self._used_keys(r, keys) if keys else {}
        fresh: list[Call] = []
        owners: dict[str, Call] = {}
        for call in calls:
            if call.key is not None and call.key in used:
                call.future.set_result(Appended(used[call.key], replayed=True))
            elif call.key is not None and call.key in owners:
                call.replay_of = owners[call.key]
            else:
                fresh.append(call)
                if call.key is not None:
                    owners[call.key] = call
        n = sum(len(c.drafts) for c in fresh)
        if not n:
            return
        first, recorded = await self._allocate(r, n)
        seq = first
        for call in fresh:
            call.events = [d.record(r, seq + i, recorded) for i, d in enumerate(call.drafts)]
            seq += len(call.drafts)
        key_docs = [
            {"_id": {"r": r, "k": c.key}, "seqs": [e.seq for e in c.events], "batch": first}
            for c in fresh
            if c.key is not None
        ]
        events = [e for c in fresh for e in c.events]
        await self._write_batch(r, first, n, events, key_docs)

    async def _write_batch(
        self, r: str, first: int, n: int, events: list[Event], key_docs: list[Doc]
    ) -> None:
        """Write an allocated batch and commit it; on any failure void it."""
        committed = False
        try:
            if key_docs:
                try:
                    await self._coll("eventdocs_keys").insert_many(key_docs)
                except PyMongoError as exc:
                    if is_duplicate(exc):
                        raise _Raced from None
                    raise
            if events:
                try:
                    await self._coll(f"{r}_revisions").insert_many([event_doc(e) for e in events])
                except PyMongoError as exc:
                    if not is_duplicate(exc):
                        raise
                    # void markers: the batch was given up on
                    raise StoreUnavailable(
                        "mongodb: the append took too long and was abandoned"
                    ) from None
            done = await self._coll("eventdocs_counters").update_one(
                {"_id": r, f"pending.{first}": {"$exists": True}},
                {"$unset": {f"pending.{first}": ""}},
            )
            if not done.matched_count:
                raise StoreUnavailable("mongodb: the append took too long and was abandoned")
            committed = True
        finally:
            if not committed:
                with contextlib.suppress(PyMongoError):
                    await self._void(r, first, n)
        await self._wait_final(r, first + n - 1)

    async def _allocate(
        self, r: str, n: int, *, expect: int | None = None, rec: int = MIN_TIME
    ) -> tuple[int, int]:
        """Take ``n`` seqs and a ``recorded_at`` (compare-and-set on the counter)."""
        counters = self._coll("eventdocs_counters")
        while True:
            doc = await counters.find_one({"_id": r})
            if doc is None:
                raise NotFound(f"unknown resource {r!r}")
            last = int(doc["seq"])
            if expect is not None and (last != expect or doc.get("pending") or doc.get("voiding")):
                raise InvalidRequest(f"imported seqs must continue the log at {last + 1}")
            recorded = max(self.clock.now(), int(doc["rec"]), rec)
            moved = await counters.update_one(
                {"_id": r, "seq": last},
                {
                    "$set": {
                        "seq": last + n,
                        "rec": recorded,
                        f"pending.{last + 1}": {"n": n, "at": wall()},
                    }
                },
            )
            if moved.matched_count:
                return last + 1, recorded

    async def _used_keys(self, r: str, keys: Iterable[str]) -> dict[str, list[Event]]:
        """The events of each of ``keys`` already used (dead keys of void batches dropped)."""
        found: dict[str, list[Event]] = {}
        key_coll = self._coll("eventdocs_keys")
        ids = [{"r": r, "k": k} for k in keys]
        async for doc in key_coll.find({"_id": {"$in": ids}}):
            seqs = [int(s) for s in doc["seqs"]]
            if seqs:
                await self._wait_final(r, max(seqs))
            events = [
                event_of(d)
                async for d in self._coll(f"{r}_revisions")
                .find({"_id": {"$in": seqs}, "void": {"$exists": False}})
                .sort("_id", 1)
            ]
            if len(events) == len(seqs):
                found[doc["_id"]["k"]] = events
            else:  # its batch was voided after the key was written
                await key_coll.delete_one({"_id": doc["_id"], "batch": doc["batch"]})
        return found

    @boundary
    async def load(self, resource: str, events: Sequence[Event]) -> None:
        r = await self._res(resource)
        if not events:
            return
        first = events[0].seq
        if [e.seq for e in events] != list(range(first, first + len(events))):
            raise InvalidRequest("imported seqs must be consecutive")
        start, _ = await self._allocate(
            r, len(events), expect=first - 1, rec=max(e.recorded_at for e in events)
        )
        await self._write_batch(r, start, len(events), list(events), [])

    @boundary
    async def find_idempotent(self, resource: str, key: str) -> list[Event] | None:
        r = await self._res(resource)
        return (await self._used_keys(r, [key])).get(key)
