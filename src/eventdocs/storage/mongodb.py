"""The MongoDB store: PyMongo's native async API, safe with many app processes.

Collections, per resource ``r``: the log ``r_revisions`` (one document per
event, ``_id`` = seq), the master collection ``r`` (``_id`` = document id)
and the history ``r_history``; shared by all resources: ``eventdocs_counters``
(the seq counter of each log), ``eventdocs_checkpoints``, ``eventdocs_keys``
(idempotency keys, unique by ``_id``), ``eventdocs_view_checkpoints``,
``eventdocs_journal``, ``eventdocs_leases`` and ``eventdocs_resources``; each
view ``v`` has ``view_v``. Rows carry query keys (:mod:`.mongo_keys`).

**Appends** never need a multi-document transaction, so one algorithm serves a
replica set, a sharded cluster and a standalone server alike:

1. *allocate*: a compare-and-set on the counter document takes ``n`` seqs and
   ``recorded_at = max(now, last)`` and registers the batch as *pending*;
2. *write*: the idempotency keys, then the events, in ordered inserts;
3. *commit*: a conditional ``$unset`` of the pending entry.

Readers trust only seqs up to the *high-water mark*: the counter's seq, or
just below the oldest pending batch. So a reader never sees a batch in part,
nor a gap that a slower writer fills later. A batch pending longer than
``stale_after`` (its writer died) is *voided*: its entry moves to ``voiding``
(the commit of a live-but-late writer then fails, and so does its append),
every seq of it is overwritten by a ``{void: true}`` marker that readers skip
and that makes any late insert fail, then the entry is dropped. An append
returns once every seq up to its last is final, so read-your-writes holds.
Concurrent appends of one process share one allocation (group commit).

**Projection writes** are serialized per resource by a lock in the
checkpoint document (taken with compare-and-set, kept fresh while its holder
writes, stolen when stale) and applied only if the stored checkpoint is the
batch's base (a batch computed from an older state is dropped: nothing is
applied twice). On a replica set the writes and the new checkpoint commit in
one transaction; on a standalone server the batch is first written to a
journal and a crashed apply is rolled forward by the next reader of the
checkpoint.

Writes use ``w="majority"`` on a replica set or cluster and ``j=True`` on a
standalone server. Driver errors become :class:`~eventdocs.errors.StorageError`
or :class:`~eventdocs.errors.StoreUnavailable` in :func:`_boundary` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from typing import Any, ParamSpec, TypeVar

import msgspec
from pymongo import AsyncMongoClient, DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WaitQueueTimeoutError,
    WTimeoutError,
)
from pymongo.write_concern import WriteConcern

from eventdocs.errors import (
    DeclarationError,
    InvalidRequest,
    NotFound,
    Stale,
    StorageError,
    StoreUnavailable,
)
from eventdocs.events import Draft, Event
from eventdocs.query import Query
from eventdocs.storage.contract import (
    Appended,
    Checkpoint,
    Document,
    Guard,
    Head,
    IndexSpec,
    ProjectionBatch,
)
from eventdocs.storage.loading import load_in_chunks
from eventdocs.storage.mongo_bson import (
    OPEN,
    ROW_FIELDS,
    Doc,
    checkpoint_of,
    data_of,
    document_of,
    event_doc,
    event_of,
    put_data,
    row_doc,
)
from eventdocs.storage.mongo_keys import compile_query, compile_sort, path_field
from eventdocs.times import Clock, SystemClock

__all__ = ["MongoStore"]

P = ParamSpec("P")
T = TypeVar("T")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = re.compile(r"^(eventdocs_|view_|system)|_(revisions|history)$")
_MIN_TIME = -(2**62)
_CHUNK = 8 * 1024 * 1024  # journal bytes per document, well under BSON's 16 MiB
# Server errors that say "try again": not primary, shutting down, interrupted...
_RETRYABLE_CODES = {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}


def _translate(exc: PyMongoError) -> StorageError:
    """The one place driver errors become eventdocs errors."""
    transient = isinstance(
        exc, ConnectionFailure | ExecutionTimeout | WTimeoutError | WaitQueueTimeoutError
    ) or exc.has_error_label("TransientTransactionError")
    if isinstance(exc, OperationFailure) and exc.code in _RETRYABLE_CODES:
        transient = True
    if transient:
        return StoreUnavailable(f"mongodb: {exc}")
    if isinstance(exc, DuplicateKeyError):
        return StorageError(f"mongodb: duplicate key: {exc}")
    return StorageError(f"mongodb: {exc}")


def _boundary(
    fn: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    @functools.wraps(fn)
    async def translated(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except PyMongoError as exc:
            raise _translate(exc) from exc

    return translated


def _name(name: str, what: str) -> str:
    if not _NAME.fullmatch(name):
        raise DeclarationError(f"{what} name {name!r} must match [A-Za-z_][A-Za-z0-9_]*")
    return name


def _wall() -> int:
    """Wall-clock milliseconds, for staleness across processes (never the store clock)."""
    return time.time_ns() // 1_000_000


def _index_name(*parts: str) -> str:
    name = "_".join(parts)
    if len(name) <= 60:
        return name
    return name[:40] + "_" + hashlib.sha1(name.encode()).hexdigest()[:12]


# -- appends ---------------------------------------------------------------------


class _Call:
    """One ``append`` waiting for its group: settled with a result or an error."""

    __slots__ = ("drafts", "events", "future", "key", "replay_of")

    def __init__(self, drafts: list[Draft], key: str | None) -> None:
        self.drafts = drafts
        self.key = key
        self.events: list[Event] = []
        self.replay_of: _Call | None = None
        self.future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()


class _Raced(Exception):
    """Another process took an idempotency key of the group: redo each call alone."""


class MongoStore:
    """Every resource in one MongoDB database; see the module docstring for the design."""

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        transactions: bool | None = None,
        stale_after: float = 10.0,
        **client_options: Any,
    ) -> None:
        self.url = url
        self.clock = clock or SystemClock()
        self.stale_after = stale_after
        self.transactions = transactions
        self._options = {"serverSelectionTimeoutMS": 10_000, **client_options}
        self._client: AsyncMongoClient[Doc] | None = None
        self._db: AsyncDatabase[Doc] | None = None
        self._known: set[str] = set()
        self._queues: dict[str, list[_Call]] = {}
        self._drains: dict[str, asyncio.Task[None]] = {}
        self.write_concern = WriteConcern(j=True)
        self.skipped_projections = 0

    # -- plumbing ------------------------------------------------------------

    @property
    def db(self) -> AsyncDatabase[Doc]:
        if self._db is None:
            raise StorageError("the store is not open")
        return self._db

    def _coll(self, name: str) -> AsyncCollection[Doc]:
        return self.db[name]

    async def _res(self, resource: str) -> str:
        if resource not in self._known:
            # Another process may have created it since we opened.
            if await self._coll("eventdocs_resources").find_one({"_id": resource}) is None:
                raise NotFound(f"unknown resource {resource!r}")
            self._known.add(resource)
        return resource

    # -- lifecycle -----------------------------------------------------------

    @_boundary
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
        except BaseException:
            self._client = self._db = None
            await client.close()
            raise

    async def close(self) -> None:
        drains = list(self._drains.values())
        if drains:
            await asyncio.gather(*drains, return_exceptions=True)
        client, self._client, self._db = self._client, None, None
        if client is not None:
            await client.close()

    @_boundary
    async def ensure_resource(self, resource: str, indexes: Sequence[IndexSpec] = ()) -> None:
        r = _name(resource, "resource")
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
            [("target", 1)], name="target", partialFilterExpression={"action": "cancel"}
        )
        await history.create_index([("id", 1), ("rev", 1)], name="id_rev", unique=True)
        await history.create_index([("until", 1), ("updated", 1)], name="alive")
        for spec in indexes:
            if spec.field == "id":
                continue  # _id serves it
            path = path_field(spec.field)
            prefix = "_d." if spec.kind == "decimal" else "_k."
            await master.create_index(
                [(prefix + path, 1), ("_id", 1)], name=_index_name("q", prefix[1], spec.field)
            )
            if spec.kind == "text":
                await master.create_index(
                    [("_l." + path, 1), ("_id", 1)], name=_index_name("q_l", spec.field)
                )
        await self._coll("eventdocs_counters").update_one(
            {"_id": r},
            {"$setOnInsert": {"seq": 0, "rec": _MIN_TIME, "pending": {}, "voiding": {}}},
            upsert=True,
        )
        await self._coll("eventdocs_resources").update_one(
            {"_id": r}, {"$setOnInsert": {"created": _wall()}}, upsert=True
        )
        self._known.add(r)

    @_boundary
    async def resources(self) -> list[str]:
        return [d["_id"] async for d in self._coll("eventdocs_resources").find({}).sort("_id", 1)]

    # -- the high-water mark -------------------------------------------------

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
            stale = _wall() - int(self.stale_after * 1000)
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
                    "$set": {f"voiding.{first}": {"n": n, "at": _wall()}},
                },
            )
            if not moved.matched_count:
                return  # committed, or someone else is voiding it
        await self._coll(f"{r}_revisions").bulk_write(
            [ReplaceOne({"_id": s}, {"void": True}, upsert=True) for s in range(first, first + n)]
        )
        await self._coll("eventdocs_keys").delete_many({"_id.r": r, "batch": first})
        await counters.update_one({"_id": r}, {"$unset": {f"voiding.{first}": ""}})

    async def _wait_final(self, r: str, last: int) -> None:
        """Return once every seq up to ``last`` is final (earlier batches committed)."""
        delay, deadline = 0.001, time.monotonic() + 3 * self.stale_after
        while await self._hwm(r) < last:
            if time.monotonic() > deadline:
                raise StoreUnavailable("mongodb: an earlier append is still pending")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    # -- the log -------------------------------------------------------------

    @_boundary
    async def append(
        self,
        resource: str,
        drafts: Sequence[Draft],
        *,
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
        guards: Sequence[Guard] = (),
    ) -> Appended:
        r = await self._res(resource)
        if self._db is None:
            raise StorageError("the store is not open")
        # Checked before the append, not atomically with it: not yet decided across processes.
        for guard in guards:
            head = await self.read_head(resource, guard.id, after_toa=self.clock.now())
            late = guard.before is not None and self.clock.now() >= guard.before
            if head.seq != guard.head or late:
                raise Stale(f"{resource} {guard.id!r} changed since the write was decided")
        call = _Call(list(drafts), idempotency_key)
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

    async def _settle(self, r: str, calls: list[_Call], tries: int = 3) -> None:
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
            error = _translate(exc) if isinstance(exc, PyMongoError) else exc
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

    async def _commit(self, r: str, calls: list[_Call]) -> None:
        keys = {c.key for c in calls if c.key is not None}
        used = await self._used_keys(r, keys) if keys else {}
        fresh: list[_Call] = []
        owners: dict[str, _Call] = {}
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
                except DuplicateKeyError:
                    raise _Raced from None
            if events:
                try:
                    await self._coll(f"{r}_revisions").insert_many([event_doc(e) for e in events])
                except DuplicateKeyError:  # void markers: the batch was given up on
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
        self, r: str, n: int, *, expect: int | None = None, rec: int = _MIN_TIME
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
                        f"pending.{last + 1}": {"n": n, "at": _wall()},
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

    @_boundary
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

    async def load_stream(self, events: Iterable[Event]) -> dict[str, int]:
        return await load_in_chunks(self, events)

    @_boundary
    async def find_idempotent(
        self, resource: str, key: str, *, fingerprint: str | None = None
    ) -> list[Event] | None:
        r = await self._res(resource)
        return (await self._used_keys(r, [key])).get(key)

    @_boundary
    async def read_head(self, resource: str, id: str, *, after_toa: int) -> Head:
        r = await self._res(resource)
        log = self._coll(f"{r}_revisions")
        hwm = await self._hwm(r)
        live = {"id": id, "_id": {"$lte": hwm}, "void": {"$exists": False}}
        last = await log.find_one(live, sort=[("_id", -1)])
        if last is None:
            return Head()
        later = {**live, "toa": {"$gt": after_toa}, "action": {"$ne": "cancel"}}
        nxt = await log.find_one(later, sort=[("toa", 1)])
        return Head(int(last["_id"]), None if nxt is None else int(nxt["toa"]))

    async def _events(
        self, r: str, query: Doc, sort: list[tuple[str, int]], limit: int = 0
    ) -> list[Event]:
        cursor = self._coll(f"{r}_revisions").find(query).sort(sort)
        if limit:
            cursor = cursor.limit(limit)
        return [event_of(d) async for d in cursor]

    @_boundary
    async def read_log(self, resource: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        r = await self._res(resource)
        if limit <= 0:
            return []
        hwm = await self._hwm(r)
        query = {"_id": {"$gt": after, "$lte": hwm}, "void": {"$exists": False}}
        return await self._events(r, query, [("_id", 1)], limit)

    @_boundary
    async def read_log_by_document(
        self, resource: str, *, after: str = "", limit: int = 1000
    ) -> list[Event]:
        r = await self._res(resource)
        if limit <= 0:
            return []
        hwm = await self._hwm(r)
        query = {"id": {"$gt": after}, "_id": {"$lte": hwm}}
        return await self._events(r, query, [("id", 1), ("_id", 1)], limit)

    @_boundary
    async def read_event(self, resource: str, seq: int) -> Event | None:
        r = await self._res(resource)
        if seq > await self._hwm(r):
            return None
        doc = await self._coll(f"{r}_revisions").find_one({"_id": seq, "void": {"$exists": False}})
        return None if doc is None else event_of(doc)

    @_boundary
    async def read_document(self, resource: str, id: str) -> list[Event]:
        r = await self._res(resource)
        hwm = await self._hwm(r)
        return await self._events(r, {"id": id, "_id": {"$lte": hwm}}, [("_id", 1)])

    async def _due(
        self, r: str, after_toa: int, until_toa: int, max_seq: int, *, full: bool = True
    ) -> Any:
        """Writes due in the range, in (toa, seq) order, cancelled ones left out (a stream)."""
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
            by_seq = {d["_id"]: d for d in docs}
            cancels = log.find(
                {"action": "cancel", "target": {"$in": list(by_seq)}, "_id": {"$lte": max_seq}},
                {"target": 1, "id": 1, "toa": 1},
            )
            dropped = set()
            async for c in cancels:
                target = by_seq[c["target"]]
                if c["id"] == target["id"] and c["toa"] < target["toa"]:
                    dropped.add(c["target"])
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

    @_boundary
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

    @_boundary
    async def count_due(
        self, resource: str, *, after_toa: int, until_toa: int, max_seq: int
    ) -> int:
        r = await self._res(resource)
        count = 0
        async for _ in self._due(r, after_toa, until_toa, max_seq, full=False):
            count += 1
        return count

    @_boundary
    async def next_toa(self, resource: str, *, after_toa: int, max_seq: int) -> int | None:
        r = await self._res(resource)
        async for doc in self._due(r, after_toa, OPEN, max_seq, full=False):
            return int(doc["toa"])
        return None

    @_boundary
    async def read_heads(
        self, resource: str, ids: Sequence[str], *, max_seq: int
    ) -> dict[str, tuple[int, int]]:
        r = await self._res(resource)
        if not ids:
            return {}
        pipeline: list[Doc] = [
            {
                "$match": {
                    "id": {"$in": list(ids)},
                    "_id": {"$lte": max_seq},
                    "action": {"$ne": "cancel"},
                }
            },
            {"$sort": {"toa": -1, "_id": -1}},
            {"$group": {"_id": "$id", "toa": {"$first": "$toa"}, "seq": {"$first": "$_id"}}},
        ]
        cursor = await self._coll(f"{r}_revisions").aggregate(pipeline)
        return {d["_id"]: (int(d["toa"]), int(d["seq"])) async for d in cursor}

    @_boundary
    async def last_seq(self, resource: str) -> int:
        return await self._hwm(await self._res(resource))

    # -- projections: the checkpoint lock --------------------------------------

    @_boundary
    async def read_checkpoint(self, resource: str) -> Checkpoint:
        r = await self._res(resource)
        doc = await self._coll("eventdocs_checkpoints").find_one({"_id": r})
        if doc is not None and "lock" in doc and await self._stale(r, doc["lock"]):
            await self._recover(r, doc["lock"])
            doc = await self._coll("eventdocs_checkpoints").find_one({"_id": r})
        return Checkpoint() if doc is None else checkpoint_of(doc)

    async def _stale(self, r: str, lock: Doc) -> bool:
        """Whether the lock's holder has shown no sign of life for ``stale_after``."""
        at: int = lock["at"]
        beat = await self._coll("eventdocs_leases").find_one({"_id": f"lock:{r}"})
        if beat is not None and beat["token"] == lock["token"]:
            at = max(at, beat["at"])
        return at < _wall() - int(self.stale_after * 1000)

    async def _lock(self, r: str, lock: Doc, ok: Callable[[Checkpoint], bool]) -> bool:
        """Take the checkpoint lock of ``r`` if ``ok(stored)``; ``False`` when not ok."""
        checkpoints = self._coll("eventdocs_checkpoints")
        delay = 0.001
        while True:
            doc = await checkpoints.find_one({"_id": r})
            if doc is None:
                with contextlib.suppress(DuplicateKeyError):
                    await checkpoints.insert_one({"_id": r, "seq": 0, "toa": Checkpoint().toa})
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
                {"$set": {"lock": {**lock, "at": _wall()}}},
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
                        {"_id": f"lock:{r}"}, {"token": token, "at": _wall()}, upsert=True
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
            {"$set": {"lock.at": _wall()}},
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

    @_boundary
    async def write_projection(self, resource: str, batch: ProjectionBatch) -> bool:
        r = await self._res(resource)
        for view in batch.views:
            _name(view, "view")
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
        try:
            if not await self._lock(r, lock, batch.fits):
                self.skipped_projections += 1
                return False
            async with self._held(r, token):
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
        return True

    async def _apply(self, r: str, batch: ProjectionBatch, session: Any = None) -> None:
        """Every write of ``batch``; each is idempotent, so a roll-forward may repeat it."""
        history: list[Any] = []
        for write in batch.history:
            history.append(DeleteMany({"id": write.id, "rev": {"$gte": write.from_rev}}))
            if write.from_rev > 1:
                end = write.rows[0].updated if write.rows else None
                history.append(
                    UpdateOne(
                        {"id": write.id, "rev": write.from_rev - 1},
                        {"$set": {"valid_to": end, "until": OPEN if end is None else end}},
                    )
                )
            ends: list[int | None] = [row.updated for row in write.rows[1:]]
            for row, end in zip(write.rows, [*ends, None], strict=False):
                linked = msgspec.structs.replace(row, valid_to=end)
                history.append(InsertOne(row_doc(write.id, linked, history=True)))
        master: list[Any] = [
            ReplaceOne({"_id": d.id}, row_doc(d.id, d, history=False), upsert=True)
            for d in batch.upserts
        ]
        master += [DeleteOne({"_id": doc_id}) for doc_id in batch.deletes]
        if history:
            await self._coll(f"{r}_history").bulk_write(history, session=session)
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
        await self._coll(r).delete_many({})

    @_boundary
    async def reset_projection(self, resource: str, *, base: Checkpoint | None = None) -> bool:
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

    # -- reads of projections --------------------------------------------------

    @_boundary
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

    @_boundary
    async def query(self, resource: str, query: Query) -> tuple[int, list[Document]]:
        r = await self._res(resource)
        return await self._query(self._coll(r), {}, query, "_id")

    @_boundary
    async def scan(self, resource: str, *, after: str = "", limit: int = 1000) -> list[Document]:
        r = await self._res(resource)
        if limit <= 0:
            return []
        cursor = self._coll(r).find({"_id": {"$gt": after}}, ROW_FIELDS).sort("_id", 1)
        return [document_of(d) async for d in cursor.limit(limit)]

    @_boundary
    async def read_history(self, resource: str, id: str) -> list[Document]:
        r = await self._res(resource)
        cursor = self._coll(f"{r}_history").find({"id": id}, ROW_FIELDS).sort("rev", 1)
        return [document_of(d) async for d in cursor]

    @_boundary
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

    @_boundary
    async def history_at(self, resource: str, id: str, *, toa: int) -> Document | None:
        r = await self._res(resource)
        doc = await self._coll(f"{r}_history").find_one(
            {"id": id, "updated": {"$lte": toa}}, ROW_FIELDS, sort=[("rev", -1)]
        )
        return None if doc is None else document_of(doc)

    @_boundary
    async def query_history(
        self, resource: str, query: Query, *, toa: int
    ) -> tuple[int, list[Document]]:
        r = await self._res(resource)
        alive = {"until": {"$gt": toa}, "updated": {"$lte": toa}, "live": True}
        return await self._query(self._coll(f"{r}_history"), alive, query, "id")

    @_boundary
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

    # -- views -------------------------------------------------------------------

    @_boundary
    async def ensure_view(self, view: str) -> None:
        _name(view, "view")

    @_boundary
    async def read_view(self, view: str, keys: Sequence[str] | None = None) -> dict[str, Any]:
        coll = self._coll(f"view_{_name(view, 'view')}")
        if keys is not None and not keys:
            return {}
        query = {} if keys is None else {"_id": {"$in": list(keys)}}
        return {d["_id"]: data_of(d) async for d in coll.find(query)}

    @_boundary
    async def view_checkpoints(self, view: str) -> dict[str, Checkpoint]:
        cursor = self._coll("eventdocs_view_checkpoints").find({"view": view})
        return {d["resource"]: checkpoint_of(d) async for d in cursor}

    @_boundary
    async def reset_view(self, view: str) -> None:
        await self._coll(f"view_{_name(view, 'view')}").delete_many({})
        await self._coll("eventdocs_view_checkpoints").delete_many({"view": view})

    # -- leases (see eventdocs.projections.lease) ------------------------------------

    @_boundary
    async def claim_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Hold lease ``name`` for ``ttl`` seconds if it is free, expired or ours."""
        leases = self._coll("eventdocs_leases")
        now = _wall()
        until = now + int(ttl * 1000)
        taken = await leases.update_one(
            {"_id": name, "$or": [{"holder": holder}, {"until": {"$lt": now}}]},
            {"$set": {"holder": holder, "until": until}},
        )
        if taken.matched_count:
            return True
        try:
            await leases.insert_one({"_id": name, "holder": holder, "until": until})
        except DuplicateKeyError:
            return False
        return True

    @_boundary
    async def release_lease(self, name: str, holder: str) -> None:
        """Give lease ``name`` up at once, if ``holder`` holds it."""
        await self._coll("eventdocs_leases").delete_one({"_id": name, "holder": holder})

    # -- reads bounded by the answer (simple defaults over the methods above) --------

    async def read_revisions(
        self, resource: str, id: str, *, limit: int, offset: int = 0
    ) -> tuple[int, list[Event]]:
        """A page of the document's events in ``(toa, seq)`` order, and their count."""
        events = sorted(await self.read_document(resource, id), key=lambda e: (e.toa, e.seq))
        return len(events), events[offset : offset + limit]

    async def read_from(self, resource: str, id: str, *, toa: int, seq: int) -> list[Event]:
        """The document's events from ``(toa, seq)`` on, in that order."""
        events = await self.read_document(resource, id)
        return sorted(
            (e for e in events if (e.toa, e.seq) >= (toa, seq)), key=lambda e: (e.toa, e.seq)
        )

    async def read_cancels(self, resource: str, targets: Sequence[int]) -> list[Event]:
        """The cancels whose target is one of ``targets``, in seq order."""
        from eventdocs.events import Cancel  # here: keeps this addition in one place

        wanted, out = set(targets), []
        for seq in sorted(wanted):
            event = await self.read_event(resource, seq)
            if event is not None:
                out += [
                    e
                    for e in await self.read_document(resource, event.id)
                    if isinstance(e, Cancel) and e.target in wanted and e not in out
                ]
        return sorted(out, key=lambda e: e.seq)

    async def history_before(
        self, resource: str, id: str, *, toa: int, seq: int
    ) -> Document | None:
        """The last history row of ``id`` before ``(toa, seq)`` in valid-time order."""
        rows = [r for r in await self.read_history(resource, id) if (r.updated, r.seq) < (toa, seq)]
        return rows[-1] if rows else None

    async def history_span(self, resource: str, id: str, *, start: int, end: int) -> list[Document]:
        """The history rows of ``id`` with ``start <= updated <= end``, in rev order."""
        return [r for r in await self.read_history(resource, id) if start <= r.updated <= end]

    async def history_rev(self, resource: str, id: str, rev: int) -> Document | None:
        """The history row of ``id`` at revision ``rev``."""
        return next((r for r in await self.read_history(resource, id) if r.rev == rev), None)

    async def history_at_many(
        self, resource: str, ids: Sequence[str], *, toa: int
    ) -> dict[str, Document]:
        """:meth:`history_at` of each of ``ids`` that has a row then."""
        found = {i: await self.history_at(resource, i, toa=toa) for i in ids}
        return {i: row for i, row in found.items() if row is not None}

    async def set_pending_limit(self, resource: str, limit: int | None) -> None:
        """Not enforced at append here: :class:`~eventdocs.documents.Documents`
        checks :meth:`count_pending` before appending (exact within one process)."""

    async def count_pending(self, resource: str, *, now: int) -> int:
        """Scheduled writes with a TOA after ``now`` that no cancel cancelled."""
        last = await self.last_seq(resource)
        return await self.count_due(resource, after_toa=now, until_toa=2**62, max_seq=last)

    async def read_pending(
        self, resource: str, *, now: int, limit: int, offset: int = 0
    ) -> list[Event]:
        """A page of what :meth:`count_pending` counts, in ``(toa, seq)`` order."""
        last = await self.last_seq(resource)
        due = await self.read_due(
            resource, after_toa=now, until_toa=2**62, max_seq=last, limit=offset + limit
        )
        return due[offset:]
