"""The projector: keeps history, master collections and views equal to the fold.

Each resource has a checkpoint ``(seq, toa)``: the history holds the fold of
every event up to ``seq``, the master collection the state at valid time
``toa``. One projection step moves both forward in one transaction:

1. events appended since ``seq`` are folded into the history, onto the last
   history row when they come after everything the document had (the common
   case), otherwise by re-folding the document from the last history row
   before the earliest point the new events change (backdated writes, cancels);
2. the master row of every document touched by those events, or by a write
   that came due since ``toa``, becomes its history row in effect at the new
   ``toa``;
3. views of the resource get the resulting master changes.

Because the step is computed from the checkpoint and the log alone, a step
interrupted by a crash is simply done again: every event takes effect exactly
once.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections import defaultdict
from collections.abc import Callable, Sequence

import msgspec

from eventdocs.errors import StorageError
from eventdocs.events import Cancel, Event
from eventdocs.fold import order_key
from eventdocs.projections.bitemporal import Timeline, document_timeline, groups
from eventdocs.projections.views import Change, View, fold_view, rebuild_view
from eventdocs.storage.contract import (
    Checkpoint,
    Document,
    EventStore,
    HistoryWrite,
    ProjectionBatch,
    ViewWrite,
)
from eventdocs.times import MAX_TIME, Clock

__all__ = ["Projector", "ViewFailure", "in_effect"]

_RECENT_ROWS = 4096
_SEQ = operator.attrgetter("seq")
_LOOKUP_CHUNK = 2000
log = logging.getLogger("eventdocs.projector")


class ViewFailure(msgspec.Struct, frozen=True):
    """A view whose code raised: it stopped before the change of event ``seq``."""

    view: str
    resource: str
    seq: int
    error: str


def in_effect(rows: Sequence[Document], toa: int) -> Document | None:
    """The last of ``rows`` (in rev order) with ``updated <= toa``."""
    found = None
    for row in rows:
        if row.updated > toa:
            break
        found = row
    return found


def _master(row: Document | None) -> Document | None:
    if row is None or row.data is None:
        return None
    return Document(row.id, row.data, row.rev, row.updated, row.seq)


class Projector:
    """Projects every resource of one store; one step at a time per resource."""

    def __init__(
        self,
        store: EventStore,
        clock: Clock,
        views: Sequence[View] = (),
        *,
        batch_size: int = 5000,
    ) -> None:
        self.store = store
        self.clock = clock
        self.batch_size = batch_size
        self.views = list(views)
        self._views_of: dict[str, list[View]] = defaultdict(list)
        for view in self.views:
            for source in view.sources:
                self._views_of[source].append(view)
        self.failing: dict[str, ViewFailure] = {}
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._done: dict[str, Checkpoint] = {}
        self._recent: dict[str, dict[int, Document]] = defaultdict(dict)
        self._last: dict[str, tuple[int, int | None]] = {}  # the last event projected
        self._listeners: list[Callable[[str, Checkpoint], None]] = []

    def listen(self, listener: Callable[[str, Checkpoint], None]) -> Callable[[], None]:
        """Call ``listener(resource, checkpoint)`` each time this process moves a
        projection forward: a step written, or an append the store projected in its
        own transaction. It runs on the event loop and must not block (``eventdocs
        bench`` stamps projection lag with it). Returns the call that stops it.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _moved(self, resource: str, checkpoint: Checkpoint) -> None:
        for listener in self._listeners:
            listener(resource, checkpoint)

    def recent(self, resource: str, seq: int) -> Document | None:
        """The history row event ``seq`` produced, if a recent step of this
        process wrote it: a writer answers with it without reading it back."""
        return self._recent[resource].get(seq)

    def projects_appends(self, resource: str) -> bool:
        """Whether a store may project ``resource``'s immediate writes in their append's
        transaction: not when views must see the change (they fold in a step)."""
        return not self._views_of.get(resource)

    def advanced(self, resource: str, checkpoint: Checkpoint) -> None:
        """The store projected up to ``checkpoint`` in an append's transaction."""
        done = self._done.get(resource)
        if done is None or done.seq < checkpoint.seq:
            self._done[resource] = checkpoint
            self._moved(resource, checkpoint)

    async def sync(self, resource: str, seq: int) -> None:
        """Return once the events up to ``seq`` are projected (read-your-writes)."""
        done = self._done.get(resource)
        if done is not None and done.seq >= seq:
            return
        await self.project(resource, until=seq)

    async def project(self, resource: str, *, until: int | None = None) -> Checkpoint:
        """Project everything appended so far, at valid time now.

        With ``until``, return at once when the step that held the lock already
        projected up to that seq: concurrent writers share one projection.
        """
        async with self._locks[resource]:
            done = self._done.get(resource)
            if until is not None and done is not None and done.seq >= until:
                return done
            checkpoint = await self.store.read_checkpoint(resource)
            if checkpoint.seq == 0 and await self.store.last_seq(resource) > 0:
                checkpoint = await self._start_clean(resource, checkpoint)
            while True:
                events = await self.store.read_log(
                    resource, after=checkpoint.seq, limit=self.batch_size + 1
                )
                more, events = events[self.batch_size :], events[: self.batch_size]
                now = max(checkpoint.toa, self.clock.now(), *(e.recorded_at for e in events[-1:]))
                if more:  # not caught up: project no later than the first event not read
                    now = max(checkpoint.toa, min(now, more[0].recorded_at - 1))
                batch = await self._step(resource, checkpoint, events, now)
                if batch is not None:
                    if not await self.store.write_projection(resource, batch):
                        # Another process moved the checkpoint first: start from its.
                        checkpoint = await self.store.read_checkpoint(resource)
                        continue
                    checkpoint = batch.checkpoint
                    self._moved(resource, checkpoint)
                    recent = self._recent[resource]
                    # Writers read their rows right after the step that wrote them:
                    # a few thousand rows serve them; 100k held ~60 MB (the soak).
                    if len(recent) > _RECENT_ROWS:
                        recent.clear()
                    recent.update((row.seq, row) for w in batch.history for row in w.rows)
                self._done[resource] = checkpoint
                if not more:
                    return checkpoint

    async def _start_clean(self, resource: str, checkpoint: Checkpoint) -> Checkpoint:
        """Never projected, or a replay was cut short: project from an empty start.

        Conditional on the checkpoint still being zero, since another process
        may have taken its first step meanwhile. Views lose what the cleared
        rows gave them, so they are rebuilt too.
        """
        # SQLite (one owner per file) rebuilds beside the live tables, as replay does.
        fast = getattr(self.store, "rebuild_projection", None)
        rebuilt = False
        if fast is not None:
            try:
                rebuilt = await fast(resource, now=self.clock.now()) is not None
            except StorageError:  # the live tables are as they were: project step by step
                log.exception("rebuild of %s failed; projecting it step by step", resource)
        if rebuilt or await self.store.reset_projection(resource, base=checkpoint):
            for view in self._views_of.get(resource, []):
                try:
                    await rebuild_view(self.store, view)
                except Exception as exc:
                    self.view_failed(view, resource, 0, exc)
        return await self.store.read_checkpoint(resource)

    async def _step(
        self, resource: str, checkpoint: Checkpoint, events: list[Event], now: int
    ) -> ProjectionBatch | None:
        store = self.store
        due: list[Event] = []
        # Without views to tell, a store that can applies due writes to the master
        # collection itself, in the step's transaction: nothing to read or decode.
        in_store = getattr(store, "applies_due", False) and not self._views_of.get(resource)
        due_window = None
        if now > checkpoint.toa:
            if in_store:
                first = await store.next_toa(
                    resource, after_toa=checkpoint.toa, max_seq=checkpoint.seq
                )
                if first is not None and first <= now:
                    due_window = (checkpoint.toa, now, checkpoint.seq)
            else:
                due = await store.read_due(
                    resource, after_toa=checkpoint.toa, until_toa=now, max_seq=checkpoint.seq
                )
        if not events and not due and due_window is None:
            return None
        new_seq = events[-1].seq if events else checkpoint.seq
        lookup = {e.id for e in due}
        master: dict[str, Document | None] = {}
        history: list[HistoryWrite] = []

        by_doc: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            by_doc[event.id].append(event)
        ids = list(by_doc)
        heads = await store.read_heads(resource, ids, max_seq=checkpoint.seq) if ids else {}
        tails = await store.history_tails(resource, ids) if ids else {}
        split = await self._split_instant(resource, checkpoint, events)
        for doc_id, new in by_doc.items():
            new.sort(key=order_key)
            head = heads.get(doc_id)
            tail = tails.get(doc_id)
            if (head is None or order_key(new[0]) > head) and not any(
                isinstance(e, Cancel) for e in new
            ):
                # After everything the document had: its rows are appended (and the
                # open row before them ended), each believed from when it was recorded.
                timeline = Timeline([tail] if tail else [])
                for recorded, run in groups(sorted(new, key=_SEQ)):
                    timeline.record(doc_id, run, recorded)
                added = timeline.rows[1:] if tail else timeline.rows
                if not added:
                    continue
                # Closed rows too: the new events may come out of order among themselves.
                history.append(
                    HistoryWrite(doc_id, tail.rev if tail else 1, timeline.rows, timeline.closed)
                )
                current = in_effect(added, now)
                if current is not None:
                    master[doc_id] = _master(current)
                    lookup.discard(doc_id)
            else:
                shared = split if any(e.recorded_at == split for e in new) else None
                refolded = await self._refold(
                    resource, doc_id, new, checkpoint.seq, new_seq, shared=shared
                )
                if refolded is None:
                    continue
                write, start = refolded
                history.append(write)
                if start <= now:
                    master[doc_id] = _master(in_effect(write.rows, now))
                    lookup.discard(doc_id)
                else:  # nothing changed at now: the stored row in effect stays
                    lookup.add(doc_id)
        # A mass activation brings many documents here: read them in bounded chunks,
        # on a reader thread, yielding between them so requests keep being served.
        pending = list(lookup)
        for i in range(0, len(pending), _LOOKUP_CHUNK):
            chunk = pending[i : i + _LOOKUP_CHUNK]
            rows = await store.history_at_many(resource, chunk, toa=now)
            for doc_id in chunk:
                master[doc_id] = _master(rows.get(doc_id))
            await asyncio.sleep(0)

        moved = Checkpoint(new_seq, now)
        return ProjectionBatch(
            due=due_window,
            base=checkpoint,
            checkpoint=moved,
            history=history,
            upserts=[d for d in master.values() if d is not None],
            deletes=[k for k, d in master.items() if d is None],
            views=await self._view_writes(resource, master, moved),
        )

    async def _split_instant(
        self, resource: str, checkpoint: Checkpoint, events: list[Event]
    ) -> int | None:
        """The recording instant this step shares with the last one, if any.

        Two appends may share a ``recorded_at`` (the clock did not move), and a
        step may have taken in the first before the second came. The history's
        recording intervals must not depend on that (see :meth:`_refold`).
        """
        if not events or not checkpoint.seq:
            return None
        last = self._last.get(resource)
        if last is None or last[0] != checkpoint.seq:
            event = await self.store.read_event(resource, checkpoint.seq)
            last = (checkpoint.seq, event.recorded_at if event else None)
        self._last[resource] = (events[-1].seq, events[-1].recorded_at)
        return last[1] if last[1] == events[0].recorded_at else None

    async def _rewrite(self, resource: str, doc_id: str, new_seq: int) -> HistoryWrite:
        """Every history row of a document, closed ones included, from its whole log."""
        events = [e for e in await self.store.read_document(resource, doc_id) if e.seq <= new_seq]
        timeline = document_timeline(doc_id, events)
        return HistoryWrite(doc_id, 1, timeline.rows, timeline.closed, replace_closed=True)

    async def _refold(
        self,
        resource: str,
        doc_id: str,
        new: list[Event],
        old_seq: int,
        new_seq: int,
        *,
        shared: int | None = None,
    ) -> tuple[HistoryWrite, int] | None:
        """Re-fold a document from the first point a backdated write or a cancel
        changes: the history row before it stays, and only the events and rows
        from there on are read and folded (not the document's whole log).

        The new events are taken in as recorded, one instant at a time, so the
        rows they replace are closed when they stopped being believed
        (:class:`~eventdocs.projections.bitemporal.Timeline`). Returns the
        history write (from the row kept before, which it may end anew) and the
        TOA it starts at, or ``None`` when nothing changes (a cancel of no write
        of this document).

        ``shared`` is the recording instant the new events share with the last
        step's. When that step already changed this document's rows at that
        instant, the document is folded again whole instead (:meth:`_rewrite`),
        so the rows are those of the instant taken in at once.
        """
        store = self.store
        starts = [order_key(e) for e in new if not isinstance(e, Cancel)]
        for cancel in (e for e in new if isinstance(e, Cancel)):
            target = await store.read_event(resource, cancel.target)
            if target is not None and target.id == doc_id and not isinstance(target, Cancel):
                starts.append(order_key(target))
        if not starts:
            return None
        toa, seq = min(starts)
        before = await store.history_before(resource, doc_id, toa=toa, seq=seq)
        after_rev = 0 if before is None else before.rev
        rows = [
            r
            for r in await store.history_span(resource, doc_id, start=toa, end=MAX_TIME)
            if r.rev > after_rev
        ]
        if shared is not None and any(
            shared in (r.known_from, r.end_known) for r in [*([before] if before else []), *rows]
        ):
            return await self._rewrite(resource, doc_id, new_seq), toa
        writes = [
            e
            for e in await store.read_from(resource, doc_id, toa=toa, seq=seq)
            if e.seq <= old_seq and not isinstance(e, Cancel)
        ]
        targets = [e.seq for e in writes] + [e.seq for e in new if not isinstance(e, Cancel)]
        cancels = [
            c
            for c in await store.read_cancels(resource, targets)
            if c.seq <= old_seq and c.id == doc_id
        ]
        timeline = Timeline([*([before] if before else []), *rows], [*writes, *cancels])
        for recorded, run in groups(sorted((e for e in new if e.seq <= new_seq), key=_SEQ)):
            timeline.record(doc_id, run, recorded)
        write = HistoryWrite(doc_id, max(after_rev, 1), timeline.rows, timeline.closed)
        return write, toa

    async def _view_writes(
        self, resource: str, master: dict[str, Document | None], checkpoint: Checkpoint
    ) -> dict[str, ViewWrite]:
        views = [v for v in self._views_of.get(resource, ()) if v.name not in self.failing]
        if not views:
            return {}
        changes = []
        for doc_id, after in master.items():
            before = await self.store.get(resource, doc_id)
            before_data = before.data if before else None
            after_data = after.data if after else None
            if before_data != after_data:
                changes.append(Change(resource, doc_id, before_data, after_data))
        writes = {}
        for view in views:
            try:
                writes[view.name] = await fold_view(
                    self.store, view, changes, {resource: checkpoint}
                )
            except Exception as exc:  # a view's code never fails a write: it stops here
                self.view_failed(view, resource, checkpoint.seq, exc)
        return writes

    def view_failed(self, view: View, resource: str, seq: int, exc: Exception) -> None:
        """Stop ``view`` (until rebuilt) because its code raised on ``resource``'s events."""
        log.error("view %s failed at %s seq %d: %r; it stays behind", view.name, resource, seq, exc)
        self.failing[view.name] = ViewFailure(view.name, resource, seq, repr(exc))
