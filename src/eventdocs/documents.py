"""The document API of one resource: the use cases the HTTP layer and CLI call.

Every write is checked against the document's state at its time of action
(now, a past time for a backdated correction, a future time for a scheduled
write), turned into one event and appended; an immediate write is projected
before the call returns (read-your-writes). Anything that fails a check
raises from :mod:`eventdocs.errors` before anything is appended.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import jsonpatch
import msgspec

from eventdocs.errors import (
    Conflict,
    ErrorDetail,
    EventdocsError,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from eventdocs.events import Cancel, Draft, Event
from eventdocs.fold import Result, fold, merge_patch
from eventdocs.query import Query, matches, sort_documents
from eventdocs.storage.contract import Document
from eventdocs.times import MAX_TIME

if TYPE_CHECKING:
    from eventdocs.resources import ResourceSpec
    from eventdocs.service import Service

__all__ = ["BulkItem", "Documents", "Limits", "Page", "WriteResult"]

_LOCK_STRIPES = 256


class Limits(msgspec.Struct, frozen=True):
    """Configurable limits; each answers :class:`LimitExceeded` when passed.

    ``query_limit`` is the largest page a query or listing may ask for
    (``?limit=``); the HTTP layer answers 400 above it.
    """

    bulk_ids: int = 1000
    pending_per_resource: int = 100_000
    query_limit: int = 1000


class WriteResult(msgspec.Struct, frozen=True):
    """What a write did: the event, and the document after it when in effect now.

    ``scheduled`` when the TOA is in the future (``document`` is then the
    preview at that TOA); ``replayed`` when an idempotency key matched.
    """

    event: Event
    document: Document | None
    scheduled: bool = False
    replayed: bool = False


class Page(msgspec.Struct, frozen=True):
    total: int
    items: list[Document]


class BulkItem(msgspec.Struct, frozen=True):
    """One id of a bulk request: its result or its error."""

    id: str
    result: WriteResult | None = None
    error: EventdocsError | None = None


class Documents:
    """Create, read, change, revert and query the documents of one resource."""

    def __init__(self, service: Service, spec: ResourceSpec) -> None:
        self.service = service
        self.spec = spec
        self.name = spec.name
        self.store = service.store
        self._locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]

    def _lock(self, doc_id: str) -> asyncio.Lock:
        # Writes to one document are checked and appended one at a time, so a
        # check (exists? If-Match?) still holds when its event is appended.
        return self._locks[zlib.crc32(doc_id.encode()) % _LOCK_STRIPES]

    # -- reads -----------------------------------------------------------------

    async def get(
        self, doc_id: str, *, as_of: int | None = None, known_at: int | None = None
    ) -> Document:
        """The document now, at valid time ``as_of``, as known at ``known_at``."""
        if known_at is not None:
            state = fold(
                await self.store.read_document(self.name, doc_id),
                as_of=self.service.clock.now() if as_of is None else as_of,
                known_at=known_at,
            ).state
            doc = (
                Document(doc_id, state.data, state.rev, state.updated or 0, state.seq)
                if state.data is not None
                else None
            )
        elif as_of is not None:
            doc = await self.store.history_at(self.name, doc_id, toa=as_of)
        else:
            doc = await self.store.get(self.name, doc_id)
        if doc is None or doc.data is None:
            when = "" if as_of is None and known_at is None else " at that time"
            raise NotFound(f"{self.name} {doc_id!r} does not exist{when}")
        return doc

    async def query(
        self, query: Query, *, as_of: int | None = None, known_at: int | None = None
    ) -> Page:
        """Documents matching ``query`` now, at ``as_of``, or as known at ``known_at``."""
        if known_at is not None:
            total, items = await self._query_known(
                query, self.service.clock.now() if as_of is None else as_of, known_at
            )
        elif as_of is not None:
            total, items = await self.store.query_history(self.name, query, toa=as_of)
        else:
            total, items = await self.store.query(self.name, query)
        return Page(total, items)

    async def _query_known(
        self, query: Query, as_of: int, known_at: int
    ) -> tuple[int, list[Document]]:
        # What was believed at ``known_at`` is not materialized: fold the log's
        # prefix recorded by then (recorded_at never decreases along the log).
        by_doc: dict[str, list[Event]] = {}
        after = 0
        while True:
            chunk = await self.store.read_log(self.name, after=after, limit=5000)
            for event in chunk:
                if event.recorded_at <= known_at:
                    by_doc.setdefault(event.id, []).append(event)
            if len(chunk) < 5000 or chunk[-1].recorded_at > known_at:
                break
            after = chunk[-1].seq
        docs: dict[str, Document] = {}
        for doc_id, events in by_doc.items():
            state = fold(events, as_of=as_of).state
            if state.data is not None and matches(doc_id, state.data, query.filters):
                docs[doc_id] = Document(
                    doc_id, state.data, state.rev, state.updated or 0, state.seq
                )
        ordered = sort_documents([(k, d.data or {}) for k, d in docs.items()], query.sort)
        page = ordered[query.offset : query.offset + query.limit]
        return len(ordered), [docs[k] for k, _ in page]

    async def revisions(self, doc_id: str) -> list[Result]:
        """Every event of the document with its outcome, in valid-time order."""
        events = await self.store.read_document(self.name, doc_id)
        if not events:
            raise NotFound(f"{self.name} {doc_id!r} has no history")
        return fold(events, as_of=self.service.clock.now()).results

    async def at_revision(self, doc_id: str, rev: int) -> Document:
        """The document as it was right after revision ``rev``."""
        for row in await self.store.read_history(self.name, doc_id):
            if row.rev == rev:
                if row.data is None:
                    raise NotFound(f"{self.name} {doc_id!r} was deleted at revision {rev}")
                return row
        raise NotFound(f"{self.name} {doc_id!r} has no revision {rev}")

    async def diff(
        self,
        doc_id: str,
        *,
        from_rev: int | None = None,
        to_rev: int | None = None,
        from_time: int | None = None,
        to_time: int | None = None,
    ) -> list[dict[str, Any]]:
        """The RFC 6902 JSON Patch from one revision or time to another.

        A side left out is "now"; a document absent on a side is ``{}`` there.
        """
        sides = []
        for rev, toa in ((from_rev, from_time), (to_rev, to_time)):
            if rev is not None:
                history = await self.store.read_history(self.name, doc_id)
                row = next((r for r in history if r.rev == rev), None)
                if row is None:
                    raise NotFound(f"{self.name} {doc_id!r} has no revision {rev}")
            elif toa is not None:
                row = await self.store.history_at(self.name, doc_id, toa=toa)
            else:
                row = await self.store.get(self.name, doc_id)
            sides.append(row.data if row is not None and row.data is not None else {})
        if not await self.store.read_document(self.name, doc_id):
            raise NotFound(f"{self.name} {doc_id!r} has no history")
        patch: list[dict[str, Any]] = jsonpatch.make_patch(sides[0], sides[1]).patch
        return patch

    async def scheduled(self, *, limit: int = 50, offset: int = 0) -> tuple[int, list[Event]]:
        """Writes recorded but not yet in effect, in the order they will apply."""
        window = await self._pending_window()
        pending = await self.store.read_due(self.name, **window, limit=offset + limit)
        return await self.store.count_due(self.name, **window), pending[offset:]

    async def _pending_window(self) -> dict[str, int]:
        return {
            "after_toa": self.service.clock.now(),
            "until_toa": MAX_TIME,
            "max_seq": await self.store.last_seq(self.name),
        }

    # -- writes ----------------------------------------------------------------

    async def create(
        self,
        body: dict[str, Any],
        *,
        toa: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """Create a document; its id is generated unless the schema declares one."""
        if idempotency_key is not None:
            first = await self.store.find_idempotent(self.name, idempotency_key)
            if first:
                _same_request(first, {"create"})
                return await self._result(first[0], replayed=True)
        body = _object(body)
        if self.spec.client_ids:
            doc_id = self.spec.validate_id(body.get("id"))
        else:
            if "id" in body:
                raise _invalid("id", "ids are generated by the server")
            doc_id = new_id()
        data = self.spec.validate({k: v for k, v in body.items() if k != "id"})
        async with self._lock(doc_id):
            # A fresh id exists nowhere: only a client-supplied id needs the read.
            if self.spec.client_ids and await self._state_at(doc_id, toa) is not None:
                raise Conflict(f"{self.name} {doc_id!r} already exists")
            draft = Draft(action="create", id=doc_id, body=data, toa=toa)
            return await self._append([draft], idempotency_key=idempotency_key)

    async def update(
        self,
        doc_id: str,
        body: dict[str, Any],
        *,
        merge: bool = False,
        toa: int | None = None,
        if_match: int | None = None,
    ) -> WriteResult:
        """Set the given fields (``merge``: apply ``body`` as an RFC 7396 merge patch)."""
        body = _object(body)
        async with self._lock(doc_id):
            current = await self._existing(doc_id, toa, if_match)
            change = self._change(current, body, merge)
            draft = Draft(action="update", id=doc_id, body=change, toa=toa, merge=merge)
            return await self._append([draft])

    async def delete(
        self, doc_id: str, *, toa: int | None = None, if_match: int | None = None
    ) -> WriteResult:
        """Delete the document (its history stays)."""
        async with self._lock(doc_id):
            await self._existing(doc_id, toa, if_match)
            return await self._append([Draft(action="delete", id=doc_id, toa=toa)])

    async def revert(
        self,
        doc_id: str,
        *,
        to_revision: int | None = None,
        as_of: int | None = None,
        toa: int | None = None,
        if_match: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """Set the document back to its state after ``to_revision`` or at ``as_of``."""
        if (to_revision is None) == (as_of is None):
            raise _invalid("body", "give exactly one of to_revision and as_of")
        if idempotency_key is not None:
            first = await self.store.find_idempotent(self.name, idempotency_key)
            if first:
                _same_request(first, {"revert"}, {doc_id})
                return await self._result(first[0], replayed=True)
        async with self._lock(doc_id):
            history = await self.store.read_history(self.name, doc_id)
            if not history:
                raise NotFound(f"{self.name} {doc_id!r} does not exist")
            if if_match is not None:
                await self._check_match(doc_id, if_match)
            if to_revision is not None:
                rows = [r for r in history if r.rev == to_revision]
                if not rows:
                    raise NotFound(f"{self.name} {doc_id!r} has no revision {to_revision}")
                target = rows[0].data
            else:
                assert as_of is not None
                row = await self.store.history_at(self.name, doc_id, toa=as_of)
                target = row.data if row is not None else None
            draft = Draft(action="revert", id=doc_id, body=target, toa=toa)
            return await self._append([draft], idempotency_key=idempotency_key)

    async def cancel(self, seq: int) -> Event:
        """Cancel scheduled event ``seq``; one already in effect must be reverted."""
        event = await self.store.read_event(self.name, seq)
        if event is None or isinstance(event, Cancel):
            raise NotFound(f"{self.name} has no scheduled write {seq}")
        async with self._lock(event.id):
            outcome = {r.event.seq: r for r in await self.revisions(event.id)}[seq]
            if outcome.outcome == "cancelled":
                raise Conflict(f"event {seq} is already cancelled")
            if event.toa <= self.service.clock.now():
                raise Conflict(f"event {seq} is already in effect: revert instead")
            result = await self._append([Draft(action="cancel", id=event.id, target=seq)])
            return result.event

    async def bulk(
        self,
        action: Literal["update", "delete"],
        ids: Sequence[str],
        body: dict[str, Any] | None = None,
        *,
        toa: int | None = None,
        merge: bool = False,
        idempotency_key: str | None = None,
    ) -> list[BulkItem]:
        """Apply one update or delete to many documents; one result per id.

        The ids that pass their checks are appended together in one atomic
        append; the others report their error and append nothing. A retry with
        the same ``idempotency_key`` appends nothing: the ids applied the first
        time get their first result, the others their error (or ``Conflict``).
        """
        if len(ids) > self.service.limits.bulk_ids:
            raise LimitExceeded(
                f"at most {self.service.limits.bulk_ids} ids per bulk request",
                "bulk_ids",
                [ErrorDetail("/ids", "too many ids")],
            )
        if action == "update" and body is None:
            raise _invalid("body", "an update needs a body")
        drafts: list[Draft] = []
        errors: dict[str, EventdocsError] = {}
        unique = list(dict.fromkeys(ids))
        for doc_id in unique:
            try:
                current = await self._existing(doc_id, toa, None)
                if action == "delete":
                    drafts.append(Draft(action="delete", id=doc_id, toa=toa))
                    continue
                assert body is not None
                change = self._change(current, body, merge)
                drafts.append(Draft(action="update", id=doc_id, body=change, toa=toa, merge=merge))
            except EventdocsError as exc:
                errors[doc_id] = exc
        results: dict[str, WriteResult] = {}
        first = None
        if idempotency_key is not None:
            first = await self.store.find_idempotent(self.name, idempotency_key)
        if first:
            _same_request(first, {action}, set(ids))
            results = {e.id: await self._result(e, replayed=True) for e in first}
            errors = {k: v for k, v in errors.items() if k not in results}
            for draft in drafts:
                if draft.id not in results:
                    errors[draft.id] = Conflict(f"{draft.id!r} was not applied the first time")
        elif drafts:
            appended = await self._append_many(drafts, idempotency_key=idempotency_key)
            results = {r.event.id: r for r in appended}
        return [BulkItem(i, results.get(i), errors.get(i)) for i in unique]

    # -- helpers ---------------------------------------------------------------

    def _change(self, current: Document, body: dict[str, Any], merge: bool) -> dict[str, Any]:
        """The validated body of an update of ``current`` (``merge``: a merge patch)."""
        if not merge:
            return self.spec.validate_update(body)
        self.spec.validate_update(body, merge=True)
        merged = self.spec.validate(merge_patch(current.data, body))
        # Values are stored as validated and normalized against the state at the
        # TOA; ``null`` keeps its meaning of "remove".
        return {k: None if v is None else merged.get(k) for k, v in body.items()}

    async def _state_at(self, doc_id: str, toa: int | None) -> Document | None:
        """The document at ``toa`` (now when ``None``), or ``None`` when absent."""
        if toa is None or toa == self.service.clock.now():
            doc = await self.store.get(self.name, doc_id)
        else:
            doc = await self.store.history_at(self.name, doc_id, toa=toa)
        return doc if doc is not None and doc.data is not None else None

    async def _existing(self, doc_id: str, toa: int | None, if_match: int | None) -> Document:
        current = await self._state_at(doc_id, toa)
        if current is None:
            when = "" if toa is None else " at that time of action"
            raise NotFound(f"{self.name} {doc_id!r} does not exist{when}")
        if if_match is not None:
            await self._check_match(doc_id, if_match)
        return current

    async def _check_match(self, doc_id: str, if_match: int) -> None:
        now = await self.store.get(self.name, doc_id)
        rev = now.rev if now is not None else 0
        if rev != if_match:
            raise PreconditionFailed(
                f"{self.name} {doc_id!r} is at revision {rev}, not {if_match}",
                [ErrorDetail("If-Match", f"current revision is {rev}")],
            )

    async def _check_pending(self, drafts: Sequence[Draft]) -> None:
        now = self.service.clock.now()
        if not any(d.toa is not None and d.toa > now for d in drafts):
            return
        limit = self.service.limits.pending_per_resource
        pending = await self.store.count_due(self.name, **await self._pending_window())
        if pending + len(drafts) > limit:
            raise LimitExceeded(
                f"{self.name} already has {limit} scheduled writes pending",
                "pending_per_resource",
            )

    async def _append(
        self, drafts: Sequence[Draft], *, idempotency_key: str | None = None
    ) -> WriteResult:
        return (await self._append_many(drafts, idempotency_key=idempotency_key))[0]

    async def _append_many(
        self, drafts: Sequence[Draft], *, idempotency_key: str | None = None
    ) -> list[WriteResult]:
        await self._check_pending(drafts)
        appended = await self.store.append(self.name, drafts, idempotency_key=idempotency_key)
        await self.service.projector.sync(self.name, appended.events[-1].seq)
        if any(e.toa > e.recorded_at for e in appended.events):
            self.service.scheduler.notify()
        return [await self._result(e, replayed=appended.replayed) for e in appended.events]

    async def _result(self, event: Event, *, replayed: bool = False) -> WriteResult:
        """The event with the document right after it (as the first response had it)."""
        row = None if replayed else self.service.projector.recent(self.name, event.seq)
        if row is None:
            row = await self.store.history_at(self.name, event.id, toa=event.toa)
        if row is not None and row.seq != event.seq:  # another write at the same TOA
            rows = await self.store.read_history(self.name, event.id)
            row = next((r for r in rows if r.seq == event.seq), None)
        doc = row if row is not None and row.seq == event.seq and row.data is not None else None
        return WriteResult(event, doc, event.toa > event.recorded_at, replayed)


def new_id() -> str:
    """A new document id: 48 bits of milliseconds, then 80 random bits, as hex.

    Like UUIDv7, ids made later sort later, so new rows land at the end of the
    id indexes instead of on random pages (twice the durable append rate of
    uuid4 on SQLite), and 80 random bits keep ids made in one millisecond apart.
    Ids need to be unique, not secret: ``random`` (reseeded after fork) costs
    no system call, where ``os.urandom`` costs one per id.
    """
    return f"{time.time_ns() // 1_000_000:012x}{random.getrandbits(80):020x}"


def _same_request(events: Sequence[Event], actions: set[str], ids: set[str] | None = None) -> None:
    """A retry with an idempotency key must be the request that first used it.

    Raises:
        ValidationFailed: the key was first used for another kind of write or
            other documents (answering with that write's result would lie).
    """
    if any(e.action not in actions or (ids is not None and e.id not in ids) for e in events):
        raise ValidationFailed(
            "this Idempotency-Key was first used for another request",
            [ErrorDetail("Idempotency-Key", "used for another request; use a new key")],
        )


def _invalid(path: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        message, [ErrorDetail(path if path.startswith("/") else f"/{path}", message)]
    )


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest(
            "the body must be a JSON object", [ErrorDetail("", "expected an object")]
        )
    return body
