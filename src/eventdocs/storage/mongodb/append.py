"""Appends: allocate, write, commit; decided atomically without a transaction.

1. *allocate*: a compare-and-set on the log's counter document takes ``n``
   seqs and ``recorded_at = max(now, last, floor)`` and registers the batch as
   *pending*;
2. *write*: the seqs of the idempotency keys claimed before allocating, then
   the events, in one ordered insert;
3. *commit*: a conditional ``$unset`` of the pending entry.

Readers trust only seqs up to the high-water mark (:mod:`.hwm`), so a batch is
never seen in part. A batch whose writer died is voided: its commit then
fails, and so does any late insert of it. An append returns once every seq up
to its last is final, so read-your-writes holds across processes. Concurrent
appends of one process share one allocation (group commit); a call touching a
document that an earlier call of the group touches waits for the next group.

**Guards.** Every event records ``prev``, the seq of its document's previous
event (0 for the first), under a unique index on ``(id, prev)``: a document's
events form one chain, and only one event can ever follow a given one. A
guarded append first claims the place after the guard's ``head`` (a unique
document in ``eventdocs_claims``) and checks that no event took it, before it
takes any seq: of two appends decided on one head, in any processes, one gets
``Stale`` and nothing of it is written, no seq either. The claim is given its
batch when seqs are allocated and dropped after the commit, when the event's
own ``prev`` holds the place; the index stays the last word (an insert it
refuses voids its batch). An unguarded append (an import, a test) follows the
latest final event. A guard's ``before`` is checked against the
``recorded_at`` the allocation's compare-and-set is about to write, so it is
the one the events get. Void markers carry no ``prev``, and a voided batch's
claims go with it, so a voided event frees its place.

**Idempotency keys** are unique documents with the request's fingerprint,
claimed before any seq is taken and given their seqs once allocated: of two
first uses racing in any processes one insert wins; the other call waits for
the key's seqs and replays, or is refused with ``KeyReused`` when the
fingerprints differ. The claim of a writer that died before taking its seqs
is dropped after ``stale_after``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterable, Sequence

from pymongo import UpdateOne
from pymongo.errors import PyMongoError

from eventdocs.errors import (
    InvalidRequest,
    KeyReused,
    LimitExceeded,
    NotFound,
    Stale,
    StorageError,
    StoreUnavailable,
)
from eventdocs.events import Draft, Event
from eventdocs.storage.contract import Appended, Guard, Tip
from eventdocs.storage.mongodb.base import MIN_TIME, wall
from eventdocs.storage.mongodb.cancels import taken
from eventdocs.storage.mongodb.codec import Doc, event_doc, event_of
from eventdocs.storage.mongodb.errors import boundary, duplicate_of, is_duplicate, translate
from eventdocs.storage.mongodb.schedule import Schedules

__all__ = ["Appends", "Call"]

_KEYS = "eventdocs_keys"
_CLAIMS = "eventdocs_claims"


class Call:
    """One ``append`` waiting for its group: settled with a result or an error."""

    __slots__ = (
        "drafts",
        "events",
        "fingerprint",
        "future",
        "guards",
        "key",
        "late",
        "refusal",
        "replay_of",
    )

    def __init__(
        self,
        drafts: list[Draft],
        key: str | None,
        fingerprint: str | None = None,
        guards: Sequence[Guard] = (),
    ) -> None:
        self.drafts = drafts
        self.key = key
        self.fingerprint = fingerprint
        self.guards = {g.id: g for g in guards}
        self.events: list[Event] = []
        self.replay_of: Call | None = None
        self.late = False  # a guard's ``before`` is past the recorded_at it would get
        self.refusal: Exception | None = None  # why a late call fails, if not its guard
        self.future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()

    @property
    def ids(self) -> set[str]:
        return {d.id for d in self.drafts} | set(self.guards)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class _Raced(Exception):
    """Another process took an idempotency key of the group: redo each call alone."""


class _Moved(Exception):
    """An event's place in its document's chain was taken: another append came first."""

    def __init__(self, doc_id: str | None) -> None:
        super().__init__(doc_id)
        self.doc_id = doc_id


def _seq(heads: dict[str, tuple[int, int]], id: str) -> int:
    """The seq of ``id``'s latest event in ``heads`` (0 when it has none)."""
    return heads.get(id, (0, 0))[0]


def _same(first: str | None, again: str | None) -> bool:
    """Whether a key's stored fingerprint allows a replay (either unknown: yes)."""
    return first is None or again is None or first == again


def _stale(r: str, doc_id: str) -> Stale:
    return Stale(f"{r} {doc_id!r} changed since the write was decided")


class Appends(Schedules):
    """``append``, ``load`` and ``find_idempotent``."""

    @boundary
    async def append(
        self,
        resource: str,
        drafts: Sequence[Draft],
        *,
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
        guards: Sequence[Guard] = (),
        tips: Sequence[Tip] = (),  # projected by the projector, as always
    ) -> Appended:
        self._writable()
        r = await self._res(resource)
        if self._db is None:
            raise StorageError("the store is not open")
        call = Call(list(drafts), idempotency_key, fingerprint, guards)
        self._queues.setdefault(r, []).append(call)
        if r not in self._drains:
            task = asyncio.create_task(self._drain(r), name=f"eventdocs-append-{r}")
            self._drains[r] = task
        return await call.future

    async def _drain(self, r: str) -> None:
        """Commit every queued call of ``r``, a group at a time."""
        try:
            while calls := self._queues.pop(r, []):
                group, touched = [], set[str]()
                for call in calls:
                    if call.ids & touched:  # decided on a state the group changes
                        self._queues.setdefault(r, []).append(call)
                    else:
                        group.append(call)
                    touched |= call.ids
                await self._settle(r, group)
        finally:
            self._drains.pop(r, None)

    async def _settle(self, r: str, calls: list[Call], tries: int = 3) -> None:
        try:
            await self._commit(r, calls)
        except (_Raced, _Moved) as exc:
            # Alone, each call finds the key and replays, or learns its guard failed.
            pending = [c for c in calls if not c.future.done()]
            if len(pending) == 1 and isinstance(exc, _Moved):
                (call,) = pending
                guarded = exc.doc_id in call.guards or (exc.doc_id is None and call.guards)
                if guarded or tries <= 1:
                    call.fail(_stale(r, exc.doc_id or "?"))
                    return
                await asyncio.sleep(0.005 * (4 - tries))  # an unguarded write: wait, follow
            if tries > 1:
                for call in pending:
                    call.replay_of = None
                    call.late = False
                    await self._settle(r, [call], tries - 1)
            for call in pending:
                call.fail(StoreUnavailable("mongodb: an idempotency key or guard race"))
            return
        except BaseException as exc:
            error = translate(exc) if isinstance(exc, PyMongoError) else exc
            for call in calls:
                call.fail(error)
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
                events, first_fingerprint = used[call.key]
                if _same(first_fingerprint, call.fingerprint):
                    call.future.set_result(Appended(events, replayed=True))
                else:
                    call.fail(KeyReused())
            elif call.key is not None and call.key in owners:
                if _same(owners[call.key].fingerprint, call.fingerprint):
                    call.replay_of = owners[call.key]
                else:
                    call.fail(KeyReused())
            else:
                fresh.append(call)
                if call.key is not None:
                    owners[call.key] = call
        if not fresh:
            return
        guarded = {i: g.head for c in fresh for i, g in c.guards.items()}
        heads = await self._heads(r, {d.id for c in fresh for d in c.drafts} | guarded.keys())
        # A guard that already fails is refused before any seq is taken; the unique
        # index decides the races this read cannot see (their batch is voided).
        moved = {c for c in fresh if any(_seq(heads, i) != g.head for i, g in c.guards.items())}

        limit = self._pending_limits.get(r)

        def admit(recorded: int, pending: int | None) -> tuple[int, list[int]]:
            """Mark the calls a guard or the pending limit rules out; how many events
            remain, and the TOAs of those scheduled."""
            scheduled: list[int] = []
            for call in fresh:
                call.late = call in moved or any(
                    g.before is not None and recorded >= g.before for g in call.guards.values()
                )
                call.refusal = None
                toas = [d.toa for d in call.drafts if d.toa is not None and d.toa > recorded]
                if call.late or not toas:
                    continue
                if (
                    limit is not None
                    and pending is not None
                    and pending + len(scheduled) + len(toas) > limit
                ):
                    call.late = True
                    call.refusal = LimitExceeded(
                        f"{r} already has {limit} scheduled writes pending",
                        "pending_per_resource",
                    )
                    continue
                scheduled += toas
            return sum(len(c.drafts) for c in fresh if not c.late), scheduled

        schedules = limit is not None and any(d.toa is not None for c in fresh for d in c.drafts)

        # Keys and guarded places are claimed before any seq is taken: a race
        # between processes costs no seqs.
        token = uuid.uuid4().hex
        await self._claim_keys(r, token, [c for c in fresh if c.key is not None and c not in moved])
        try:
            await self._claim_places(r, token, [c for c in fresh if c not in moved])
            first, recorded, n = await self._allocate(r, admit=admit, count=schedules)
        except BaseException:
            with contextlib.suppress(PyMongoError):
                await self._release_keys(r, token)
                await self._release_places(r, token)
            raise
        for call in calls:
            owner = call if call.replay_of is None else call.replay_of
            if owner.late:
                call.fail(owner.refusal or _stale(r, next(iter(owner.guards))))
        late = [c.key for c in fresh if c.late and c.key is not None]
        if late:
            await self._release_keys(r, token, late)
        late_places = [(i, g.head) for c in fresh if c.late for i, g in c.guards.items()]
        if late_places:
            await self._release_places(r, token, late_places)
        fresh = [c for c in fresh if not c.late]
        if not n:
            return
        # What each document's first event follows; a guard that did not hold is late.
        seq, prevs = first, heads
        for call in fresh:
            call.events = [d.record(r, seq + i, recorded) for i, d in enumerate(call.drafts)]
            seq += len(call.drafts)
        docs = await self._docs(r, [e for call in fresh for e in call.events], prevs)
        keyed = [
            UpdateOne(
                {"_id": {"r": r, "k": c.key}, "token": token},
                {"$set": {"seqs": [e.seq for e in c.events], "batch": first}},
            )
            for c in fresh
            if c.key is not None
        ]
        places = sum(len(c.guards) for c in fresh)
        await self._write_batch(r, first, n, docs, keyed, (token, places))

    async def _claim_places(self, r: str, token: str, calls: list[Call]) -> None:
        """Claim, for each guard of ``calls``, the place after its head in its document's
        chain; ``_Moved`` (and none kept) when another append of any process holds
        it, or when an event already follows the head."""
        wanted = [(i, g.head) for c in calls for i, g in c.guards.items()]
        if not wanted:
            return
        claims = self._coll(_CLAIMS)
        now = wall()
        docs = [
            {"_id": {"r": r, "id": i, "prev": h}, "token": token, "at": now, "batch": None}
            for i, h in wanted
        ]
        try:
            await claims.insert_many(docs, ordered=False)
        except PyMongoError as exc:
            await self._release_places(r, token)
            taken = duplicate_of(exc)
            if taken is None:
                raise
            holder = await claims.find_one({"_id": taken.get("_id")}) if taken.get("_id") else None
            stale = now - int(self.stale_after * 1000)
            if holder is not None and holder["batch"] is None and holder["at"] < stale:
                # its writer died before taking seqs: the place is free again
                await claims.delete_one({"_id": holder["_id"], "token": holder["token"]})
            raise _Moved((taken.get("_id") or {}).get("id")) from None
        # A place whose event is written already (its claim is dropped after commit).
        followed = await self._coll(f"{r}_revisions").find_one(
            {"$or": [{"id": i, "prev": h} for i, h in wanted]}, {"id": 1}
        )
        if followed is not None:
            await self._release_places(r, token)
            raise _Moved(followed["id"])

    async def _release_places(
        self, r: str, token: str, places: Sequence[tuple[str, int]] | None = None
    ) -> None:
        """Drop this group's claimed places (all, or ``places``) that got no batch."""
        query: Doc = {"_id.r": r, "token": token, "batch": None}
        if places is not None:
            query["_id"] = {"$in": [{"r": r, "id": i, "prev": h} for i, h in places]}
        await self._coll(_CLAIMS).delete_many(query)

    async def _claim_keys(self, r: str, token: str, calls: list[Call]) -> None:
        """Insert the keys of ``calls``, not yet with their seqs; ``_Raced`` (and none
        kept) when another call, of any process, holds one of them."""
        if not calls:
            return
        claims = [
            {
                "_id": {"r": r, "k": c.key},
                "seqs": None,
                "batch": None,
                "fingerprint": c.fingerprint,
                "token": token,
                "at": wall(),
            }
            for c in calls
        ]
        try:
            await self._coll(_KEYS).insert_many(claims, ordered=False)
        except PyMongoError as exc:
            with contextlib.suppress(PyMongoError):
                await self._release_keys(r, token)
            if is_duplicate(exc):
                raise _Raced from None
            raise

    async def _release_keys(self, r: str, token: str, keys: Sequence[str] | None = None) -> None:
        """Drop this group's claims (all, or those of ``keys``) that got no seqs."""
        query: Doc = {"_id.r": r, "token": token, "seqs": None}
        if keys is not None:
            query["_id"] = {"$in": [{"r": r, "k": k} for k in keys]}
        await self._coll(_KEYS).delete_many(query)

    async def _heads(self, r: str, ids: Iterable[str]) -> dict[str, tuple[int, int]]:
        """The latest final event of each of ``ids`` that has one, and its ``n``: what
        an event follows in its document's chain. A backwards seek on ``(id, seq)``
        each; an event written before events were numbered is numbered by a count."""
        wanted = list(ids)
        if not wanted:
            return {}
        hwm = await self._hwm(r)
        log = self._coll(f"{r}_revisions")

        async def head(id: str) -> tuple[int, int] | None:
            mine = {"id": id, "_id": {"$lte": hwm}}
            doc = await log.find_one(mine, {"n": 1}, sort=[("_id", -1)], hint="id_seq")
            if doc is None:
                return None
            n = doc.get("n")
            return int(doc["_id"]), int(n if n is not None else await log.count_documents(mine))

        found = await asyncio.gather(*(head(i) for i in wanted))
        return {i: h for i, h in zip(wanted, found, strict=True) if h is not None}

    async def _write_batch(
        self,
        r: str,
        first: int,
        n: int,
        docs: list[Doc],
        keyed: Sequence[UpdateOne] = (),
        placed: tuple[str, int] = ("", 0),
    ) -> None:
        """Write an allocated batch (the seqs of its claimed keys, the batch of its
        claimed places), then commit it; on any failure void it."""
        committed = False
        token, places = placed
        try:
            if keyed:
                claimed = await self._coll(_KEYS).bulk_write(list(keyed))
                if claimed.matched_count != len(keyed):  # a claim too old was dropped
                    raise StoreUnavailable("mongodb: the append took too long and was abandoned")
            if places:
                held = await self._coll(_CLAIMS).update_many(
                    {"_id.r": r, "token": token, "batch": None}, {"$set": {"batch": first}}
                )
                if held.matched_count != places:
                    raise StoreUnavailable("mongodb: the append took too long and was abandoned")
            if docs:
                try:
                    await self._coll(f"{r}_revisions").insert_many(docs)
                except PyMongoError as exc:
                    taken = duplicate_of(exc)
                    if taken is None:
                        raise
                    if "prev" in taken:
                        raise _Moved(taken.get("id")) from None
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
        if places:  # the events' (id, prev) index holds the places from now on
            with contextlib.suppress(PyMongoError):
                await self._coll(_CLAIMS).delete_many({"_id.r": r, "batch": first})
        await self._wait_final(r, first + n - 1)

    async def _allocate(
        self,
        r: str,
        n: int = 0,
        *,
        expect: int | None = None,
        rec: int = MIN_TIME,
        admit: Callable[[int, int | None], tuple[int, list[int]]] | None = None,
        count: bool = False,
    ) -> tuple[int, int, int]:
        """Take seqs and a ``recorded_at`` (compare-and-set on the counter): ``n`` of
        them, or as many as ``admit(recorded_at, pending)`` says, ``pending`` the
        writes pending then when ``count`` (:mod:`.schedule`); returns (first seq,
        recorded_at, how many)."""
        counters = self._coll("eventdocs_counters")
        while True:
            doc = await counters.find_one({"_id": r})
            if doc is None:
                raise NotFound(f"unknown resource {r!r}")
            last = int(doc["seq"])
            if expect is not None and (last != expect or doc.get("pending") or doc.get("voiding")):
                raise InvalidRequest(f"imported seqs must continue the log at {last + 1}")
            floor = doc.get("floor")
            recorded = max(self.clock.now(), int(doc["rec"]), int(floor or MIN_TIME), rec)
            scheduled: list[int] = []
            if admit is not None:
                pending = await self._pending_at(r, doc, recorded) if count else None
                n, scheduled = admit(recorded, pending)
            if not n:
                return last + 1, recorded, 0
            entry = {"n": n, "at": wall(), "rec": recorded, "sched": scheduled}
            moved = await counters.update_one(
                # The floor a projection step raised since the read must hold too.
                {"_id": r, "seq": last, "floor": floor},
                {
                    "$set": {
                        "seq": last + n,
                        "rec": recorded,
                        f"pending.{last + 1}": entry,
                    }
                },
            )
            if moved.matched_count:
                return last + 1, recorded, n

    async def _used_keys(
        self, r: str, keys: Iterable[str]
    ) -> dict[str, tuple[list[Event], str | None]]:
        """The events and fingerprint of each of ``keys`` already used.

        A key claimed by an append still being written is waited for; the claim
        of a writer that died before taking its seqs, or whose batch was voided,
        is dropped (the key is unused)."""
        found: dict[str, tuple[list[Event], str | None]] = {}
        key_coll = self._coll(_KEYS)
        for key in keys:
            delay, stale = 0.002, int(self.stale_after * 1000)
            while (doc := await key_coll.find_one({"_id": {"r": r, "k": key}})) is not None:
                if doc.get("seqs") is None:
                    if doc.get("at", 0) < wall() - stale:
                        await key_coll.delete_one(
                            {"_id": doc["_id"], "seqs": None, "at": doc.get("at")}
                        )
                    else:
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 0.05)
                    continue
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
                    found[key] = (events, doc.get("fingerprint"))
                else:  # its batch was voided after the key was written
                    await key_coll.delete_one({"_id": doc["_id"], "batch": doc["batch"]})
                break
        return found

    @boundary
    async def load(self, resource: str, events: Sequence[Event]) -> None:
        self._writable()
        r = await self._res(resource)
        if not events:
            return
        first = events[0].seq
        if [e.seq for e in events] != list(range(first, first + len(events))):
            raise InvalidRequest("imported seqs must be consecutive")
        prevs = await self._heads(r, {e.id for e in events})
        start, _, n = await self._allocate(
            r, len(events), expect=first - 1, rec=max(e.recorded_at for e in events)
        )
        await self._write_batch(r, start, n, await self._docs(r, events, prevs))

    async def _docs(
        self, r: str, events: Sequence[Event], prevs: dict[str, tuple[int, int]]
    ) -> list[Doc]:
        """The log documents of ``events``: each with its place in its document's
        chain (``prev``, and ``n``, its number there: ``prevs`` moves along) and, for
        a cancel, the write it took."""
        took = await taken(self._coll(f"{r}_revisions"), events)
        docs = []
        for event in events:
            prev, n = prevs.get(event.id, (0, 0))
            doc = {**event_doc(event), "prev": prev, "n": n + 1}
            if event.seq in took:
                doc["took"] = took[event.seq]
            docs.append(doc)
            prevs[event.id] = (event.seq, n + 1)
        return docs

    @boundary
    async def find_idempotent(
        self, resource: str, key: str, *, fingerprint: str | None = None
    ) -> list[Event] | None:
        r = await self._res(resource)
        used = (await self._used_keys(r, [key])).get(key)
        if used is None:
            return None
        events, first_fingerprint = used
        if not _same(first_fingerprint, fingerprint):
            raise KeyReused()
        return events
