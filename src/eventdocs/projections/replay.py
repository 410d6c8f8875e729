"""Replay and verify: projections rebuilt from, and checked against, the log.

Both stream the log document by document (bounded memory: one chunk of
events and one document's history at a time) and fold each document once
with :func:`eventdocs.fold.step` as the projector does, one recording instant
at a time (:func:`eventdocs.projections.bitemporal.document_timeline`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import msgspec

from eventdocs.events import Event
from eventdocs.projections.bitemporal import document_timeline
from eventdocs.projections.projector import in_effect
from eventdocs.projections.views import Change, View, rebuild_view
from eventdocs.storage.contract import (
    Checkpoint,
    Document,
    EventStore,
    HistoryWrite,
    ProjectionBatch,
)

__all__ = ["Difference", "documents_of", "replay", "replay_generic", "verify"]

Progress = Callable[[int], None]


class Difference(msgspec.Struct, frozen=True):
    """A projection row that is not what the fold of the log says."""

    collection: str  # "master", "history" or "view"
    name: str  # resource or view name
    id: str
    expected: Any
    actual: Any


async def documents_of(
    store: EventStore, resource: str, *, max_seq: int, chunk: int = 5000
) -> AsyncIterator[tuple[str, list[Event]]]:
    """Each document's events with ``seq <= max_seq``, one document at a time, by id."""
    after = ""
    while True:
        events = await store.read_log_by_document(resource, after=after, limit=chunk)
        if not events:
            return
        if len(events) == chunk:
            last = events[-1].id
            complete = [e for e in events if e.id != last]
            if not complete:  # one document longer than a chunk
                complete = await store.read_document(resource, last)
            events = complete
        group: list[Event] = []
        for event in events:
            if group and event.id != group[0].id:
                yield group[0].id, group
                group = []
            if event.seq <= max_seq:
                group.append(event)
        if group:
            yield group[0].id, group
        after = events[-1].id


def expected_rows(doc_id: str, events: Sequence[Event]) -> list[Document]:
    """The history rows the fold of ``events`` gives, with their recording intervals."""
    return document_timeline(doc_id, events).rows


def _master(rows: Sequence[Document], toa: int) -> Document | None:
    row = in_effect(rows, toa)
    if row is None or row.data is None:
        return None
    return Document(row.id, row.data, row.rev, row.updated, row.seq)


async def replay(
    store: EventStore,
    resource: str,
    *,
    now: int,
    progress: Progress | None = None,
    chunk: int = 5000,
    views: Sequence[View] = (),
) -> int:
    """Rebuild the history and master collection of ``resource`` from its log, and ``views``.

    A store with a fast path of its own (``rebuild_projection``: SQLite builds
    fresh tables beside the live ones and swaps them in, views included, in
    one transaction) uses it; the others get :func:`replay_generic`, then
    :func:`~eventdocs.projections.views.rebuild_view`. Returns the number of
    events folded.
    """
    fast = getattr(store, "rebuild_projection", None)
    if fast is not None:
        done: int | None = await fast(resource, now=now, progress=progress, views=views)
        if done is not None:
            return done
    total = await replay_generic(store, resource, now=now, progress=progress, chunk=chunk)
    for view in views:
        await store.ensure_view(view.name)
        await rebuild_view(store, view)
    return total


async def replay_generic(
    store: EventStore,
    resource: str,
    *,
    now: int,
    progress: Progress | None = None,
    chunk: int = 5000,
) -> int:
    """Rebuild the history and master collection of ``resource`` through the contract.

    Returns the number of events folded; ``progress`` gets each chunk's count.
    Folding a chunk overlaps with writing the one before (the store writes on
    its own thread), and the checkpoint is written last: a replay cut short
    leaves the zero checkpoint, so the projector starts over cleanly.
    """
    max_seq = await store.last_seq(resource)
    await store.reset_projection(resource)
    history: list[HistoryWrite] = []
    upserts: list[Document] = []
    pending = 0
    total = 0
    writing: asyncio.Task[bool] | None = None

    async def flush(batch: ProjectionBatch, count: int) -> None:
        nonlocal writing, total
        if writing is not None:
            await writing
        writing = asyncio.create_task(store.write_projection(resource, batch))
        if progress is not None and count:
            progress(count)
        total += count

    async for doc_id, events in documents_of(store, resource, max_seq=max_seq, chunk=chunk):
        timeline = document_timeline(doc_id, events)
        rows = timeline.rows
        if rows:
            history.append(HistoryWrite(doc_id, 1, rows, timeline.closed))
            master = _master(rows, now)
            if master is not None:
                upserts.append(master)
        pending += len(events)
        if pending >= chunk:
            await flush(ProjectionBatch(Checkpoint(), history, upserts), pending)
            history, upserts, pending = [], [], 0
    await flush(ProjectionBatch(Checkpoint(max_seq, now), history, upserts), pending)
    assert writing is not None
    await writing
    return total


async def verify(
    store: EventStore, resources: Sequence[str], views: Sequence[View] = ()
) -> list[Difference]:
    """Every history, master and view row that differs from the fold of the log.

    Compares at each resource's checkpoint, so a projector that is merely
    behind is not reported. Views are checked against the fold of the log
    too (not against the stored master rows), for the sources in
    ``resources``.
    """
    diffs: list[Difference] = []
    expected_masters: dict[str, dict[str, Document]] = {}
    for resource in resources:
        checkpoint = await store.read_checkpoint(resource)
        expected_master = expected_masters.setdefault(resource, {})
        async for doc_id, events in documents_of(store, resource, max_seq=checkpoint.seq):
            rows = expected_rows(doc_id, events)
            actual = await store.read_history(resource, doc_id)
            if rows != actual:
                diffs.append(Difference("history", resource, doc_id, rows, actual))
            master = _master(rows, checkpoint.toa)
            if master is not None:
                expected_master[doc_id] = master
        after = ""
        seen: set[str] = set()
        while docs := await store.scan(resource, after=after, limit=1000):
            for doc in docs:
                seen.add(doc.id)
                want = expected_master.get(doc.id)
                if want != doc:
                    diffs.append(Difference("master", resource, doc.id, want, doc))
            after = docs[-1].id
        for doc_id in expected_master.keys() - seen:
            diffs.append(Difference("master", resource, doc_id, expected_master[doc_id], None))
    for view in views:
        expected: dict[str, Any] = {}
        for resource in view.sources:
            if resource not in expected_masters:
                continue
            docs = sorted(expected_masters[resource].values(), key=lambda d: d.id)
            changes = [Change(resource, d.id, None, d.data) for d in docs]
            touched: dict[str, Any] = {k: expected.get(k) for c in changes for k in view.keys(c)}
            for change in changes:
                view.apply(touched, change)
            expected.update(touched)
        want_rows = {k: v for k, v in expected.items() if v is not None}
        actual_rows = await store.read_view(view.name)
        for key in sorted(want_rows.keys() | actual_rows.keys()):
            if want_rows.get(key) != actual_rows.get(key):
                diffs.append(
                    Difference("view", view.name, key, want_rows.get(key), actual_rows.get(key))
                )
    return diffs
