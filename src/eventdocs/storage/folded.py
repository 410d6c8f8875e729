"""Reads as known at a time by folding the log's prefix, for a store without the index.

MongoDB keeps no closed history rows, so what was believed at ``known_at``
is computed: the document's events recorded by then (one document), or the
log's prefix recorded by then (a query), folded with :func:`eventdocs.fold.fold`
at the valid time asked; the fold of a query runs in a worker thread so the
event loop keeps serving. O(events) where the SQLite and memory stores seek.
"""

from __future__ import annotations

import asyncio

import msgspec

from eventdocs.events import Event
from eventdocs.fold import fold
from eventdocs.query import Query, answer_too_large, matches, sort_documents
from eventdocs.storage.contract import Document, EventStore

__all__ = ["history_known", "query_known"]

_CHUNK = 5000


async def history_known(
    store: EventStore, resource: str, id: str, *, toa: int, known_at: int
) -> Document | None:
    """Document ``id`` at valid time ``toa`` as known at ``known_at``, from its events."""
    state = fold(await store.read_document(resource, id), as_of=toa, known_at=known_at).state
    if state.data is None:
        return None
    return Document(id, state.data, state.rev, state.updated or 0, state.seq)


async def query_known(
    store: EventStore, resource: str, query: Query, *, toa: int, known_at: int
) -> tuple[int, list[Document]]:
    """``query`` over the fold at ``toa`` of the log recorded by ``known_at``."""
    by_doc: dict[str, list[Event]] = {}
    after = 0
    while True:  # recorded_at never decreases along the log
        chunk = await store.read_log(resource, after=after, limit=_CHUNK)
        for event in chunk:
            if event.recorded_at <= known_at:
                by_doc.setdefault(event.id, []).append(event)
        if len(chunk) < _CHUNK or chunk[-1].recorded_at > known_at:
            break
        after = chunk[-1].seq
    return await asyncio.to_thread(_fold_query, by_doc, query, toa)


def _fold_query(
    by_doc: dict[str, list[Event]], query: Query, as_of: int
) -> tuple[int, list[Document]]:
    """``query`` over the fold at ``as_of`` of each document's ``by_doc`` events."""
    docs: dict[str, Document] = {}
    for doc_id, events in by_doc.items():
        state = fold(events, as_of=as_of).state
        if state.data is not None and matches(doc_id, state.data, query.filters):
            docs[doc_id] = Document(doc_id, state.data, state.rev, state.updated or 0, state.seq)
    ordered = sort_documents([(k, d.data or {}) for k, d in docs.items()], query.sort)
    page = [docs[k] for k, _ in ordered[query.offset : query.offset + query.limit]]
    if query.max_bytes is not None:
        size = sum(len(msgspec.json.encode(d.data)) for d in page)
        if size > query.max_bytes:
            raise answer_too_large(query.max_bytes)
    return len(ordered), page
