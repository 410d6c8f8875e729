"""Reads of one resource's documents: now, at a valid time, as known at a time.

:class:`DocumentReads` is the read half of :class:`~eventdocs.documents.Documents`:
a document or a query now (the master collection), at ``as_of`` (the history),
as known at ``known_at`` (the history's recording intervals: an index, see
:mod:`eventdocs.projections.bitemporal`), a document's revisions paged in the
store with their outcomes, diffs and the schedule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jsonpatch
import msgspec

from eventdocs.errors import ErrorDetail, InvalidRequest, NotFound
from eventdocs.events import Cancel, Event
from eventdocs.fold import (
    MISSING,
    DocState,
    Outcome,
    Result,
    cancelled_targets,
    step,
)
from eventdocs.query import Query
from eventdocs.storage.contract import Document, EventStore
from eventdocs.times import Clock

if TYPE_CHECKING:
    from eventdocs.documents import Limits
    from eventdocs.projections.projector import Projector
    from eventdocs.resources import ResourceSpec


__all__ = ["DocumentReads", "Page"]


class Page(msgspec.Struct, frozen=True):
    total: int
    items: list[Document]


class DocumentReads:
    """Everything that reads the documents of one resource (no write happens here)."""

    store: EventStore
    spec: ResourceSpec
    name: str
    clock: Clock
    limits: Limits
    projector: Projector

    async def get(
        self, doc_id: str, *, as_of: int | None = None, known_at: int | None = None
    ) -> Document:
        """The document now, at valid time ``as_of``, as known at ``known_at``."""
        if known_at is not None:
            doc = await self.store.history_known(
                self.name,
                doc_id,
                toa=self.clock.now() if as_of is None else as_of,
                known_at=known_at,
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
            at = self.clock.now() if as_of is None else as_of
            total, items = await self.store.query_known(self.name, query, toa=at, known_at=known_at)
        elif as_of is not None:
            total, items = await self.store.query_history(self.name, query, toa=as_of)
        else:
            total, items = await self.store.query(self.name, query)
        return Page(total, items)

    async def revisions(self, doc_id: str) -> list[Result]:
        """Every event of the document with its outcome, in valid-time order."""
        return (await self.revisions_page(doc_id))[1]

    async def revisions_page(
        self, doc_id: str, *, limit: int | None = None, offset: int = 0, after: int | None = None
    ) -> tuple[int, list[Result]]:
        """How many events the document has, and a page of them with their
        outcomes, in valid-time order: what the fold says of each, computed
        from the page alone (see :meth:`_outcomes`). ``after`` is a cursor: the
        seq of one of the document's events; the page starts past it."""
        now = self.clock.now()
        head = await self.store.read_head(self.name, doc_id, after_toa=now)
        if head.seq == 0:
            raise NotFound(f"{self.name} {doc_id!r} has no history")
        total, events = await self.store.read_revisions(
            self.name,
            doc_id,
            limit=2**62 if limit is None else limit,
            offset=offset,
            after=await self._cursor(after, doc_id),
        )
        if events:
            await self.projector.sync(self.name, max(e.seq for e in events))
        return total, await self._outcomes(doc_id, events, now)

    async def _outcomes(self, doc_id: str, events: list[Event], now: int) -> list[Result]:
        """The fold's result of each of ``events`` (consecutive in valid-time order).

        The history holds the fold's applied events, so an event is applied
        exactly when a history row has its seq; the state before a failed one
        is the last row before it, whose ``step`` gives the failure's reason.
        Cancels need only the cancels of the page's writes and the targets of
        its cancels. The cost is the page's, not the document's.
        """
        if not events:
            return []
        pool = {e.seq: e for e in events}
        for e in events:
            if isinstance(e, Cancel) and e.target not in pool:
                target = await self.store.read_event(self.name, e.target)
                if target is not None:
                    pool[target.seq] = target
        writes = [seq for seq, e in pool.items() if not isinstance(e, Cancel)]
        pool.update((c.seq, c) for c in await self.store.read_cancels(self.name, writes))
        cancelled, failed_cancels = cancelled_targets(e for e in pool.values() if e.id == doc_id)
        first, last = events[0], events[-1]
        before = await self.store.history_before(self.name, doc_id, toa=first.toa, seq=first.seq)
        span = await self.store.history_span(self.name, doc_id, start=first.toa, end=last.toa)
        applied = {row.seq: row for row in span}
        state = MISSING if before is None else DocState(before.data, before.rev, before.updated)
        results = []
        for event in events:
            if event.toa > now:
                outcome: Outcome = "cancelled" if event.seq in cancelled else "pending"
                results.append(Result(event, outcome))
            elif event.seq in cancelled:
                results.append(
                    Result(event, "cancelled", f"cancelled by event {cancelled[event.seq]}")
                )
            elif isinstance(event, Cancel):
                why = failed_cancels.get(event.seq)
                results.append(Result(event, "failed" if why else "applied", why))
            elif (row := applied.get(event.seq)) is not None:
                state = DocState(row.data, row.rev, row.updated, row.seq)
                results.append(Result(event, "applied", None, row.rev, row.data))
            else:
                results.append(Result(event, "failed", step(state, event)[1]))
        return results

    async def at_revision(self, doc_id: str, rev: int) -> Document:
        """The document as it was right after revision ``rev``."""
        row = await self.store.history_rev(self.name, doc_id, rev)
        if row is None:
            raise NotFound(f"{self.name} {doc_id!r} has no revision {rev}")
        if row.data is None:
            raise NotFound(f"{self.name} {doc_id!r} was deleted at revision {rev}")
        return row

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
                row = await self.store.history_rev(self.name, doc_id, rev)
                if row is None:
                    raise NotFound(f"{self.name} {doc_id!r} has no revision {rev}")
            elif toa is not None:
                row = await self.store.history_at(self.name, doc_id, toa=toa)
            else:
                row = await self.store.get(self.name, doc_id)
            sides.append(row.data if row is not None and row.data is not None else {})
        if (await self.store.read_head(self.name, doc_id, after_toa=0)).seq == 0:
            raise NotFound(f"{self.name} {doc_id!r} has no history")
        patch: list[dict[str, Any]] = jsonpatch.make_patch(sides[0], sides[1]).patch
        return patch

    async def scheduled(
        self, *, limit: int = 50, offset: int = 0, after: int | None = None
    ) -> tuple[int, list[Event]]:
        """Writes recorded but not yet in effect, in the order they will apply;
        with ``after`` (an event's seq) those that apply after that event."""
        now = self.clock.now()
        cursor = await self._cursor(after)
        total = await self.store.count_pending(self.name, now=now)
        page = await self.store.read_pending(
            self.name, now=now, limit=limit, offset=offset, after=cursor
        )
        return total, page

    async def _cursor(self, seq: int | None, doc_id: str | None = None) -> tuple[int, int] | None:
        """The ``(toa, seq)`` place of event ``seq`` (of ``doc_id``, if given): a
        keyset cursor, stable while events are appended, unlike an offset."""
        if seq is None:
            return None
        event = await self.store.read_event(self.name, seq)
        if event is None or (doc_id is not None and event.id != doc_id):
            whose = f"{self.name} {doc_id!r}" if doc_id is not None else self.name
            message = f"{whose} has no event {seq}"
            raise InvalidRequest(f"?after: {message}", [ErrorDetail("?after", message)])
        return (event.toa, event.seq)
