"""The memory store: the contract's reference semantics, in plain dicts.

Not a mock: it is what the other backends are compared with in the contract
tests and the property tests, so it favours obviousness over speed.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from eventdocs.errors import InvalidRequest, KeyReused, LimitExceeded, NotFound, Stale
from eventdocs.events import Cancel, Draft, Event
from eventdocs.fold import cancel_failure
from eventdocs.query import Query, answer_too_large, matches, sort_documents
from eventdocs.storage.contract import (
    Appended,
    Checkpoint,
    Document,
    Guard,
    Head,
    IndexSpec,
    ProjectionBatch,
    Tip,
    believed,
)
from eventdocs.storage.loading import load_in_chunks
from eventdocs.times import Clock, SystemClock

__all__ = ["MemoryStore"]

_SEQ = operator.attrgetter("seq")


@dataclass
class _Resource:
    log: list[Event] = field(default_factory=list)
    keys: dict[str, tuple[list[int], str | None]] = field(default_factory=dict)
    taken: dict[int, int] = field(default_factory=dict)  # write seq -> the cancel that took it
    history: dict[str, list[Document]] = field(default_factory=dict)
    closed: dict[str, list[Document]] = field(default_factory=dict)
    master: dict[str, Document] = field(default_factory=dict)
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    last_recorded: int = -(2**62)


@dataclass
class _View:
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)


def _extend(res: _Resource, events: Sequence[Event]) -> None:
    """Add ``events`` to the log, recording which write each cancel took (the fold's rule)."""
    for event in events:
        if isinstance(event, Cancel):
            log = res.log
            target = log[event.target - 1] if 0 < event.target <= len(log) else None
            if not cancel_failure(event, target, cancelled=event.target in res.taken):
                res.taken[event.target] = event.seq
        res.log.append(event)


def _valid_order(event: Event) -> tuple[int, int]:
    return (event.toa, event.seq)


def _past(events: list[Event], after: tuple[int, int] | None) -> list[Event]:
    """``events`` (in valid-time order) past the ``(toa, seq)`` cursor ``after``."""
    return events if after is None else [e for e in events if (e.toa, e.seq) > after]


def _page(docs: list[Document], query: Query) -> tuple[int, list[Document]]:
    by_id = {d.id: d for d in docs}
    hits = [(d.id, d.data or {}) for d in docs if matches(d.id, d.data or {}, query.filters)]
    ordered = sort_documents(hits, query.sort)
    page = [by_id[doc_id] for doc_id, _ in ordered[query.offset : query.offset + query.limit]]
    if query.max_bytes is not None:
        size = sum(len(msgspec.json.encode(d.data)) for d in page if d.data is not None)
        if size > query.max_bytes:
            raise answer_too_large(query.max_bytes)
    return len(hits), page


class MemoryStore:
    """Everything in this process's memory; gone when it exits."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self._resources: dict[str, _Resource] = {}
        self._views: dict[str, _View] = {}
        self._lock = asyncio.Lock()
        self._pending_limits: dict[str, int | None] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _res(self, resource: str) -> _Resource:
        try:
            return self._resources[resource]
        except KeyError:
            raise NotFound(f"unknown resource {resource!r}") from None

    async def ensure_resource(self, resource: str, indexes: Sequence[IndexSpec] = ()) -> None:
        self._resources.setdefault(resource, _Resource())

    async def resources(self) -> list[str]:
        return sorted(self._resources)

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
        res = self._res(resource)
        async with self._lock:
            if idempotency_key is not None:
                first = await self.find_idempotent(
                    resource, idempotency_key, fingerprint=fingerprint
                )
                if first is not None:
                    return Appended(first, replayed=True)
            recorded = max(self.clock.now(), res.last_recorded)
            for guard in guards:
                heads = [e.seq for e in res.log if e.id == guard.id]
                if (heads[-1] if heads else 0) != guard.head or (
                    guard.before is not None and recorded >= guard.before
                ):
                    raise Stale(f"{resource} {guard.id!r} changed since the write was decided")
            limit = self._pending_limits.get(resource)
            scheduled = sum(1 for d in drafts if d.toa is not None and d.toa > recorded)
            if (
                limit is not None
                and scheduled
                and await self.count_pending(resource, now=recorded) + scheduled > limit
            ):
                raise LimitExceeded(
                    f"{resource} already has {limit} scheduled writes pending",
                    "pending_per_resource",
                )
            res.last_recorded = recorded
            start = len(res.log)
            events = [d.record(resource, start + i + 1, recorded) for i, d in enumerate(drafts)]
            _extend(res, events)
            if idempotency_key is not None:
                res.keys[idempotency_key] = ([e.seq for e in events], fingerprint)
            return Appended(events)

    async def load(self, resource: str, events: Sequence[Event]) -> None:
        res = self._res(resource)
        async with self._lock:
            expected = list(range(len(res.log) + 1, len(res.log) + len(events) + 1))
            if [e.seq for e in events] != expected:
                raise InvalidRequest(f"imported seqs must continue the log at {len(res.log) + 1}")
            _extend(res, events)
            if events:
                res.last_recorded = max(res.last_recorded, events[-1].recorded_at)

    async def load_stream(self, events: Iterable[Event]) -> dict[str, int]:
        return await load_in_chunks(self, events)

    async def find_idempotent(
        self, resource: str, key: str, *, fingerprint: str | None = None
    ) -> list[Event] | None:
        res = self._res(resource)
        if key not in res.keys:
            return None
        seqs, stored = res.keys[key]
        if fingerprint is not None and stored is not None and stored != fingerprint:
            raise KeyReused()
        return [e for e in res.log if e.seq in set(seqs)]

    async def read_head(self, resource: str, id: str, *, after_toa: int) -> Head:
        res = self._res(resource)
        events = [e for e in res.log if e.id == id]
        later = [
            e.toa
            for e in events
            if not isinstance(e, Cancel) and e.toa > after_toa and e.seq not in res.taken
        ]
        return Head(events[-1].seq if events else 0, min(later, default=None))

    async def read_log(self, resource: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        return self._res(resource).log[after : after + limit]

    async def read_log_by_document(
        self, resource: str, *, after: str = "", limit: int = 1000
    ) -> list[Event]:
        events = sorted(
            (e for e in self._res(resource).log if e.id > after), key=lambda e: (e.id, e.seq)
        )
        return events[:limit]

    async def read_event(self, resource: str, seq: int) -> Event | None:
        log = self._res(resource).log
        return log[seq - 1] if 0 < seq <= len(log) else None

    async def read_document(self, resource: str, id: str) -> list[Event]:
        return [e for e in self._res(resource).log if e.id == id]

    def _due(self, resource: str, after_toa: int, until_toa: int, max_seq: int) -> list[Event]:
        res = self._res(resource)
        due = [
            e
            for e in res.log[:max_seq]
            if not isinstance(e, Cancel)
            and after_toa < e.toa <= until_toa
            and res.taken.get(e.seq, max_seq + 1) > max_seq
        ]
        return sorted(due, key=lambda e: (e.toa, e.seq))

    async def read_due(
        self,
        resource: str,
        *,
        after_toa: int,
        until_toa: int,
        max_seq: int,
        limit: int | None = None,
    ) -> list[Event]:
        due = self._due(resource, after_toa, until_toa, max_seq)
        return due if limit is None else due[:limit]

    async def count_due(
        self, resource: str, *, after_toa: int, until_toa: int, max_seq: int
    ) -> int:
        return len(self._due(resource, after_toa, until_toa, max_seq))

    async def next_toa(self, resource: str, *, after_toa: int, max_seq: int) -> int | None:
        due = self._due(resource, after_toa, 2**62, max_seq)
        return due[0].toa if due else None

    async def read_heads(
        self, resource: str, ids: Sequence[str], *, max_seq: int
    ) -> dict[str, tuple[int, int]]:
        wanted = set(ids)
        heads: dict[str, tuple[int, int]] = {}
        for e in self._res(resource).log[:max_seq]:
            if e.id in wanted and not isinstance(e, Cancel):
                heads[e.id] = max(heads.get(e.id, (e.toa, e.seq)), (e.toa, e.seq))
        return heads

    async def last_seq(self, resource: str) -> int:
        return len(self._res(resource).log)

    async def read_checkpoint(self, resource: str) -> Checkpoint:
        return self._res(resource).checkpoint

    async def write_projection(self, resource: str, batch: ProjectionBatch) -> bool:
        res = self._res(resource)
        if not batch.fits(res.checkpoint):
            return False
        since, until = res.checkpoint.toa, batch.checkpoint.toa
        if any(since < e.recorded_at <= until for e in res.log[batch.checkpoint.seq :]):
            return False
        for write in batch.history:
            kept = [row for row in res.history.get(write.id, []) if row.rev < write.from_rev]
            res.history[write.id] = kept + list(write.rows)
            if write.replace_closed:
                res.closed[write.id] = list(write.closed)
            elif write.closed:
                res.closed.setdefault(write.id, []).extend(write.closed)
        for doc in batch.upserts:
            res.master[doc.id] = doc
        for doc_id in batch.deletes:
            res.master.pop(doc_id, None)
        for name, view_write in batch.views.items():
            view = self._views.setdefault(name, _View())
            view.rows.update(view_write.puts)
            for key in view_write.deletes:
                view.rows.pop(key, None)
            view.checkpoints.update(view_write.checkpoint)
        res.checkpoint = batch.checkpoint
        return True

    async def reset_projection(self, resource: str, *, base: Checkpoint | None = None) -> bool:
        res = self._res(resource)
        if base is not None and res.checkpoint != base:
            return False
        res.history.clear()
        res.closed.clear()
        res.master.clear()
        res.checkpoint = Checkpoint()
        return True

    async def get(self, resource: str, id: str) -> Document | None:
        return self._res(resource).master.get(id)

    async def query(self, resource: str, query: Query) -> tuple[int, list[Document]]:
        return _page(list(self._res(resource).master.values()), query)

    async def scan(self, resource: str, *, after: str = "", limit: int = 1000) -> list[Document]:
        master = self._res(resource).master
        return [master[k] for k in sorted(k for k in master if k > after)[:limit]]

    async def read_history(self, resource: str, id: str) -> list[Document]:
        return list(self._res(resource).history.get(id, []))

    async def history_tails(self, resource: str, ids: Sequence[str]) -> dict[str, Document]:
        history = self._res(resource).history
        return {i: history[i][-1] for i in ids if history.get(i)}

    async def history_at(self, resource: str, id: str, *, toa: int) -> Document | None:
        rows = [r for r in self._res(resource).history.get(id, []) if r.updated <= toa]
        return rows[-1] if rows else None

    async def query_history(
        self, resource: str, query: Query, *, toa: int
    ) -> tuple[int, list[Document]]:
        alive = []
        for doc_id in self._res(resource).history:
            row = await self.history_at(resource, doc_id, toa=toa)
            if row is not None and row.data is not None:
                alive.append(row)
        return _page(alive, query)

    async def history_known(
        self, resource: str, id: str, *, toa: int, known_at: int
    ) -> Document | None:
        res = self._res(resource)
        rows = [*res.history.get(id, []), *res.closed.get(id, [])]
        return next((r for r in rows if believed(r, toa, known_at)), None)

    async def query_known(
        self, resource: str, query: Query, *, toa: int, known_at: int
    ) -> tuple[int, list[Document]]:
        alive = []
        for doc_id in self._res(resource).history:
            row = await self.history_known(resource, doc_id, toa=toa, known_at=known_at)
            if row is not None and row.data is not None:
                alive.append(row)
        return _page(alive, query)

    async def scan_history(
        self, resource: str, *, after: str = "", limit: int = 1000
    ) -> list[Document]:
        history = self._res(resource).history
        rows: list[Document] = []
        for doc_id in sorted(k for k in history if k > after):
            if rows and len(rows) + len(history[doc_id]) > limit:
                break
            rows.extend(history[doc_id])
        return rows

    async def read_revisions(
        self,
        resource: str,
        id: str,
        *,
        limit: int,
        offset: int = 0,
        after: tuple[int, int] | None = None,
    ) -> tuple[int, list[Event]]:
        events = sorted(await self.read_document(resource, id), key=_valid_order)
        return len(events), _past(events, after)[offset : offset + limit]

    async def read_from(self, resource: str, id: str, *, toa: int, seq: int) -> list[Event]:
        events = await self.read_document(resource, id)
        return sorted((e for e in events if (e.toa, e.seq) >= (toa, seq)), key=_valid_order)

    async def read_cancels(self, resource: str, targets: Sequence[int]) -> list[Event]:
        res = self._res(resource)
        return sorted((res.log[res.taken[t] - 1] for t in set(targets) if t in res.taken), key=_SEQ)

    async def history_before(
        self, resource: str, id: str, *, toa: int, seq: int
    ) -> Document | None:
        rows = self._res(resource).history.get(id, [])
        before = [r for r in rows if (r.updated, r.seq) < (toa, seq)]
        return before[-1] if before else None

    async def history_span(self, resource: str, id: str, *, start: int, end: int) -> list[Document]:
        return [r for r in self._res(resource).history.get(id, []) if start <= r.updated <= end]

    async def history_rev(self, resource: str, id: str, rev: int) -> Document | None:
        rows = [r for r in self._res(resource).history.get(id, []) if r.rev == rev]
        return rows[0] if rows else None

    async def history_at_many(
        self, resource: str, ids: Sequence[str], *, toa: int
    ) -> dict[str, Document]:
        found = {i: await self.history_at(resource, i, toa=toa) for i in ids}
        return {i: row for i, row in found.items() if row is not None}

    async def set_pending_limit(self, resource: str, limit: int | None) -> None:
        self._res(resource)
        self._pending_limits[resource] = limit

    async def count_pending(self, resource: str, *, now: int) -> int:
        return len(self._due(resource, now, 2**62, 2**62))

    async def read_pending(
        self,
        resource: str,
        *,
        now: int,
        limit: int,
        offset: int = 0,
        after: tuple[int, int] | None = None,
    ) -> list[Event]:
        return _past(self._due(resource, now, 2**62, 2**62), after)[offset : offset + limit]

    async def ensure_view(self, view: str) -> None:
        self._views.setdefault(view, _View())

    async def read_view(self, view: str, keys: Sequence[str] | None = None) -> dict[str, Any]:
        rows = self._views.setdefault(view, _View()).rows
        if keys is None:
            return dict(rows)
        return {k: rows[k] for k in keys if k in rows}

    async def view_checkpoints(self, view: str) -> dict[str, Checkpoint]:
        return dict(self._views.setdefault(view, _View()).checkpoints)

    async def reset_view(self, view: str) -> None:
        self._views[view] = _View()
