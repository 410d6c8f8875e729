"""The document API of one resource: the use cases the HTTP layer and CLI call.

Every write is decided by the fold's rule against the document's state at its
time of action (now, a past time for a backdated correction, a future time
for a scheduled write) and appended under a guard that the store checks in
the appending transaction (see the writes section below). An immediate write
is projected before the call returns (read-your-writes). A write the fold
rejects raises from :mod:`eventdocs.errors` and appends nothing; one that
was appended is answered, whatever fails after its commit. The reads are
:class:`~eventdocs.document_reads.DocumentReads`, which this class extends.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from eventdocs.document_reads import DocumentReads, Page
from eventdocs.errors import (
    Conflict,
    ErrorDetail,
    EventdocsError,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    PreconditionFailed,
    Stale,
    ValidationFailed,
)
from eventdocs.events import Cancel, Draft, Event
from eventdocs.fields import pointer
from eventdocs.fold import (
    ALREADY_EXISTS,
    DOES_NOT_EXIST,
    MISSING,
    PRECONDITION,
    DocState,
    cancel_failure,
    step,
)
from eventdocs.storage.contract import (
    Appended,
    Checkpoint,
    Document,
    EventStore,
    Guard,
    Head,
    Tip,
)
from eventdocs.times import Clock

if TYPE_CHECKING:
    from eventdocs.projections.projector import Projector
    from eventdocs.resources import ResourceSpec

__all__ = ["BulkItem", "BulkTarget", "Documents", "Limits", "Page", "WriteResult"]

log = logging.getLogger("eventdocs.documents")

# A write whose document keeps moving is decided again up to this many times.
_ATTEMPTS = 50
# The seq a draft is given while it is decided (any seq after the document's).
_DECIDING = 2**62
_encode_json = msgspec.json.Encoder().encode


class Limits(msgspec.Struct, frozen=True):
    """Configurable limits; each answers :class:`LimitExceeded` when passed.

    ``query_limit`` is the largest page a query or listing may ask for
    (``?limit=``); the HTTP layer answers 400 above it, and above
    ``query_filters`` filters, ``query_sort_keys`` sort keys, ``query_fields``
    fields or ``query_in_values`` values of one ``in``/``notin``.
    ``answer_bytes`` caps the stored JSON of the documents one page may hold
    (413 above), so one request's memory stays bounded.
    """

    bulk_ids: int = 1000
    pending_per_resource: int = 100_000
    query_limit: int = 1000
    query_filters: int = 32
    query_sort_keys: int = 8
    query_fields: int = 100
    query_in_values: int = 1000
    answer_bytes: int = 32 << 20


class WriteResult(msgspec.Struct, frozen=True):
    """What a write did: the event, and the document after it when in effect now.

    ``scheduled`` when the TOA is in the future (``document`` is then the
    preview at that TOA); ``replayed`` when an idempotency key matched.
    """

    event: Event
    document: Document | None
    scheduled: bool = False
    replayed: bool = False


class BulkTarget(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An id of a bulk request with its own precondition (``If-Match``)."""

    id: str
    if_match: int | None = None


class BulkItem(msgspec.Struct, frozen=True):
    """One id of a bulk request: its result or its error."""

    id: str
    result: WriteResult | None = None
    error: EventdocsError | None = None


class Documents(DocumentReads):
    """Create, read, change, revert and query the documents of one resource."""

    def __init__(
        self,
        store: EventStore,
        spec: ResourceSpec,
        *,
        clock: Clock,
        limits: Limits,
        projector: Projector,
        scheduled: Callable[[int], None],
    ) -> None:
        """``scheduled(toa)`` is called after an append that holds writes for later,
        with the earliest of their TOAs."""
        self.store = store
        self.spec = spec
        self.name = spec.name
        self.clock = clock
        self.limits = limits
        self.projector = projector
        self._scheduled = scheduled

    # -- writes ----------------------------------------------------------------
    #
    # Every write is decided by the fold's own rule (:func:`eventdocs.fold.step`)
    # against the document's state at its TOA, then appended with a guard on
    # what it was decided on: the document's latest event, and for an immediate
    # write the TOA of its next write. The store checks the guard in the
    # transaction that appends, so a write accepted here is one the fold
    # applies, whatever ran meanwhile in this process or another; when the
    # guard fails nothing was appended and the write is decided again.

    async def create(
        self,
        body: dict[str, Any],
        *,
        toa: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult:
        """Create a document; its id is generated unless the schema declares one."""
        body = _object(body)
        fingerprint = _fingerprint(idempotency_key, "create", "", body, toa)
        if replayed := await self._replayed(idempotency_key, fingerprint):
            return replayed[0]
        if self.spec.client_ids:
            doc_id = self.spec.validate_id(body.get("id"))
        else:
            if "id" in body:
                raise _invalid("id", "ids are generated by the server")
            doc_id = new_id()
        data = self.spec.validate({k: v for k, v in body.items() if k != "id"})

        async def make(state: DocState) -> Draft:
            return Draft(action="create", id=doc_id, body=data, toa=toa)

        # A fresh id exists nowhere: only a client-supplied id needs the reads.
        return await self._write(
            doc_id,
            toa,
            make,
            key=idempotency_key,
            fingerprint=fingerprint,
            fresh=not self.spec.client_ids,
        )

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

        async def make(state: DocState) -> Draft:
            if state.data is None:
                raise self._rejection(doc_id, DOES_NOT_EXIST, toa, state)
            change = self._change(state.data, body, merge)
            return Draft(
                action="update", id=doc_id, body=change, toa=toa, merge=merge, expect_rev=if_match
            )

        return await self._write(doc_id, toa, make)

    async def delete(
        self, doc_id: str, *, toa: int | None = None, if_match: int | None = None
    ) -> WriteResult:
        """Delete the document (its history stays)."""

        async def make(state: DocState) -> Draft:
            return Draft(action="delete", id=doc_id, toa=toa, expect_rev=if_match)

        return await self._write(doc_id, toa, make)

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
        target = {"to_revision": to_revision, "as_of": as_of, "if_match": if_match}
        fingerprint = _fingerprint(idempotency_key, "revert", doc_id, target, toa)
        if replayed := await self._replayed(idempotency_key, fingerprint):
            return replayed[0]

        async def make(state: DocState) -> Draft:
            if to_revision is not None:
                row = await self.store.history_rev(self.name, doc_id, to_revision)
                if row is None:
                    if (
                        state.rev == 0
                        and await self.store.history_rev(self.name, doc_id, 1) is None
                    ):
                        raise NotFound(f"{self.name} {doc_id!r} does not exist")
                    raise NotFound(f"{self.name} {doc_id!r} has no revision {to_revision}")
                body = row.data
            else:
                assert as_of is not None
                row = await self.store.history_at(self.name, doc_id, toa=as_of)
                body = row.data if row is not None else None
            return Draft(action="revert", id=doc_id, body=body, toa=toa, expect_rev=if_match)

        return await self._write(doc_id, toa, make, key=idempotency_key, fingerprint=fingerprint)

    async def cancel(self, seq: int) -> Event:
        """Cancel scheduled event ``seq``; one already in effect must be reverted.

        Decided like a write: by the fold's cancel rule (the target must not be
        in effect when the cancel is recorded, nor cancelled before), with a
        guard that the cancel is recorded before the target's TOA. So a cancel
        that answers is one whose target never takes effect.
        """
        for _ in range(_ATTEMPTS):
            event = await self.store.read_event(self.name, seq)
            if event is None or isinstance(event, Cancel):
                raise NotFound(f"{self.name} has no scheduled write {seq}")
            now = self.clock.now()
            head = await self.store.read_head(self.name, event.id, after_toa=now)
            await self.projector.sync(self.name, head.seq)
            draft = Draft(action="cancel", id=event.id, target=seq)
            taken = bool(await self.store.read_cancels(self.name, [seq]))
            recorded_now = draft.record(self.name, 0, now)  # the guard holds it to before the TOA
            assert isinstance(recorded_now, Cancel)
            if why := cancel_failure(recorded_now, event, cancelled=taken):
                raise Conflict(f"{why}: revert instead" if event.toa <= now else why)
            guard = Guard(event.id, head.seq, before=event.toa)
            try:
                appended = await self._commit([draft], guards=[guard])
            except Stale:
                continue
            return appended.events[0]
        raise Stale(f"{self.name} {seq}: its document kept changing; nothing was appended")

    async def bulk(
        self,
        action: Literal["update", "delete"],
        ids: Sequence[str | BulkTarget],
        body: dict[str, Any] | None = None,
        *,
        toa: int | None = None,
        merge: bool = False,
        idempotency_key: str | None = None,
    ) -> list[BulkItem]:
        """Apply one update or delete to many documents; one result per id.

        Each id is decided as a single write would be (an entry may be a
        :class:`BulkTarget` with its own ``if_match``); the ids accepted are
        appended together in one atomic append, the others report their error
        and append nothing. A retry with the same ``idempotency_key`` appends
        nothing: the ids applied the first time get their first result, the
        others a ``Conflict``.
        """
        if len(ids) > self.limits.bulk_ids:
            raise LimitExceeded(
                f"at most {self.limits.bulk_ids} ids per bulk request",
                "bulk_ids",
                [ErrorDetail("/ids", "too many ids")],
            )
        if action == "update" and body is None:
            raise _invalid("body", "an update needs a body")
        if body is not None:
            body = _object(body)
        targets = list(
            {t.id: t for t in (BulkTarget(i) if isinstance(i, str) else i for i in ids)}.values()
        )
        request = [action, body, merge, [[t.id, t.if_match] for t in targets]]
        fingerprint = _fingerprint(idempotency_key, "bulk", "", request, toa)
        first = await self._replayed(idempotency_key, fingerprint)
        done = {r.event.id: r for r in first}
        for _ in range(_ATTEMPTS):
            now = self.clock.now()
            at = now if toa is None else toa
            decided: dict[str, tuple[Draft, DocState]] = {}
            errors: dict[str, EventdocsError] = {}
            guards: list[Guard] = []
            for target in targets:
                if target.id in done:  # a retry: applied the first time
                    continue
                head, state = await self._state(target.id, at)

                async def make(state: DocState, target: BulkTarget = target) -> Draft:
                    if action == "delete":
                        return Draft(
                            action="delete", id=target.id, toa=toa, expect_rev=target.if_match
                        )
                    assert body is not None
                    if state.data is None:
                        raise self._rejection(target.id, DOES_NOT_EXIST, toa, state)
                    return Draft(
                        action="update",
                        id=target.id,
                        body=self._change(state.data, body, merge),
                        toa=toa,
                        merge=merge,
                        expect_rev=target.if_match,
                    )

                try:
                    draft = await make(state)
                    self._decide(state, draft, at, scheduled=at > now)
                except EventdocsError as exc:
                    errors[target.id] = exc
                    continue
                decided[target.id] = (draft, state)
                guards.append(Guard(target.id, head.seq, head.next_toa if toa is None else None))
            results: dict[str, WriteResult] = done
            if first:  # a retry appends nothing: the others answer as they would now
                for doc_id in decided:
                    errors[doc_id] = Conflict(f"{doc_id!r} was not applied the first time")
            elif decided:
                try:
                    results = await self._apply(
                        list(decided.values()), idempotency_key, fingerprint, guards
                    )
                except Stale:
                    continue
            return [BulkItem(t.id, results.get(t.id), errors.get(t.id)) for t in targets]
        raise Stale(f"{self.name}: the documents kept changing; nothing was appended")

    # -- helpers ---------------------------------------------------------------

    def _change(self, current: dict[str, Any], body: dict[str, Any], merge: bool) -> dict[str, Any]:
        """The validated body of an update of ``current`` through this version.

        Only what ``body`` sets is checked, against this version's fields, so a
        document written through another version keeps what this one does not
        declare (:mod:`eventdocs.versions`).
        """
        return self.spec.validate_change(current, body, merge=merge)

    async def _state(self, doc_id: str, at: int) -> tuple[Head, DocState]:
        """The document's head and its state at valid time ``at``: what a write decides on.

        History holds the fold of every event up to the projected seq, so once
        the projection has reached the document's latest event the history row
        in effect at ``at`` is the fold's state there.
        """
        head = await self.store.read_head(self.name, doc_id, after_toa=at)
        if head.seq == 0:
            return head, MISSING
        await self.projector.sync(self.name, head.seq)
        row = await self.store.history_at(self.name, doc_id, toa=at)
        state = MISSING if row is None else DocState(row.data, row.rev, row.updated, row.seq)
        return head, state

    def _decide(self, state: DocState, draft: Draft, at: int, *, scheduled: bool) -> DocState:
        """The state after ``draft`` at ``at`` by the fold's rule, or the error it answers.

        A scheduled write's precondition (``If-Match``) is the fold's to check
        at its TOA; now only its preview must hold.
        """
        if scheduled:
            draft = msgspec.structs.replace(draft, expect_rev=None)
        after, failure = step(state, draft.record(self.name, _DECIDING, at))
        if failure is not None:
            raise self._rejection(draft.id, failure, draft.toa, state)
        return after

    def _rejection(
        self, doc_id: str, failure: str, toa: int | None, state: DocState
    ) -> EventdocsError:
        """The error a write the fold rejects answers with."""
        if failure == ALREADY_EXISTS:
            return Conflict(f"{self.name} {doc_id!r} already exists")
        if failure.startswith(PRECONDITION):
            return PreconditionFailed(
                f"{self.name} {doc_id!r} is at revision {state.rev}, not as If-Match says",
                [ErrorDetail("If-Match", f"current revision is {state.rev}")],
            )
        when = "" if toa is None else " at that time of action"
        return NotFound(f"{self.name} {doc_id!r} does not exist{when}")

    async def _write(
        self,
        doc_id: str,
        toa: int | None,
        make: Callable[[DocState], Awaitable[Draft]],
        *,
        key: str | None = None,
        fingerprint: str | None = None,
        fresh: bool = False,
    ) -> WriteResult:
        """Decide the write ``make`` builds from the document's state, and append it."""
        for _ in range(_ATTEMPTS):
            now = self.clock.now()
            at = now if toa is None else toa
            head, state = (Head(), MISSING) if fresh else await self._state(doc_id, at)
            draft = await make(state)
            after = self._decide(state, draft, at, scheduled=at > now)
            # A fresh id (80 random bits) is in no event: it needs no guard.
            guards = (
                [] if fresh else [Guard(doc_id, head.seq, head.next_toa if toa is None else None)]
            )
            # An immediate write after everything its document had: the store may
            # project it in the append's own transaction (one commit, no step).
            tips = (
                [Tip(doc_id, after.data, after.rev, state.rev)]
                if toa is None
                and head.next_toa is None
                and self.projector.projects_appends(self.name)
                else []
            )
            try:
                results = await self._apply([(draft, state)], key, fingerprint, guards, tips)
            except Stale:
                continue
            if doc_id not in results:
                # A replay: a concurrent request with the key decided first, and a
                # create's generated id was its own.
                (first,) = results.values()
                return first
            return results[doc_id]
        raise Stale(f"{self.name} {doc_id!r} kept changing; nothing was appended")

    async def _apply(
        self,
        decided: Sequence[tuple[Draft, DocState]],
        key: str | None,
        fingerprint: str | None,
        guards: Sequence[Guard],
        tips: Sequence[Tip] = (),
    ) -> dict[str, WriteResult]:
        """Append decided drafts under their guards; each result is the state it produced.

        The answer comes from the decision, not from a read after the commit:
        the guards make the fold produce exactly that state, and nothing that
        fails after the commit can turn it into an error.
        """
        drafts = [draft for draft, _ in decided]
        appended = await self._commit(
            drafts, key=key, fingerprint=fingerprint, guards=guards, tips=tips
        )
        if appended.replayed:
            return {r.event.id: r for r in await self._results(appended.events, replayed=True)}
        out = {}
        for (_, state), event in zip(decided, appended.events, strict=True):
            # The fold's own step: for a scheduled write, the preview at its TOA.
            after, failure = step(state, event)
            doc = None
            if failure is None and after.data is not None:
                doc = Document(event.id, after.data, after.rev, event.toa, event.seq)
            out[event.id] = WriteResult(event, doc, event.toa > event.recorded_at)
        return out

    async def _commit(
        self,
        drafts: Sequence[Draft],
        *,
        key: str | None = None,
        fingerprint: str | None = None,
        guards: Sequence[Guard] = (),
        tips: Sequence[Tip] = (),
    ) -> Appended:
        """Append, then project for read-your-writes; nothing after the append raises."""
        await self._check_pending(drafts)
        version = self.spec.version  # every event says which declaration checked it
        drafts = [msgspec.structs.replace(d, meta={**d.meta, "version": version}) for d in drafts]
        appended = await self.store.append(
            self.name,
            drafts,
            idempotency_key=key,
            fingerprint=fingerprint,
            guards=guards,
            tips=tips,
        )
        if appended.projected:  # in the append's transaction
            last = appended.events[-1]
            self.projector.advanced(self.name, Checkpoint(last.seq, last.recorded_at))
        try:
            await self.projector.sync(self.name, appended.events[-1].seq)
        except Exception:  # the write is decided and durable: the scheduler projects it later
            log.exception("projection after an append failed; the scheduler retries it")
        ahead = [e.toa for e in appended.events if e.toa > e.recorded_at]
        if ahead:
            self._scheduled(min(ahead))
        return appended

    async def _replayed(self, key: str | None, fingerprint: str | None) -> list[WriteResult]:
        """The first results of a request retried with idempotency ``key`` (else empty)."""
        if key is None:
            return []
        first = await self.store.find_idempotent(self.name, key, fingerprint=fingerprint)
        return await self._results(first, replayed=True) if first else []

    async def _check_pending(self, drafts: Sequence[Draft]) -> None:
        now = self.clock.now()
        if not any(d.toa is not None and d.toa > now for d in drafts):
            return
        # A quick refusal; the store checks the limit again, exactly, in the append's
        # transaction (set_pending_limit), so concurrent writes never overshoot it.
        limit = self.limits.pending_per_resource
        if await self.store.count_pending(self.name, now=now) + len(drafts) > limit:
            raise LimitExceeded(
                f"{self.name} already has {limit} scheduled writes pending",
                "pending_per_resource",
            )

    async def _results(self, events: Sequence[Event], *, replayed: bool) -> list[WriteResult]:
        """Each event with the document right after it, read back (idempotent replays)."""
        await self.projector.sync(self.name, max(e.seq for e in events))
        return [await self._result(e, replayed=replayed) for e in events]

    async def _result(self, event: Event, *, replayed: bool = False) -> WriteResult:
        """The event with the document right after it (as the first response had it)."""
        row = await self.store.history_at(self.name, event.id, toa=event.toa)
        if row is not None and row.seq != event.seq:  # another write at the same TOA
            rows = await self.store.history_span(
                self.name, event.id, start=event.toa, end=event.toa
            )
            row = next((r for r in rows if r.seq == event.seq), None)
        doc = None
        if row is not None and row.seq == event.seq and row.data is not None:
            doc = Document(row.id, row.data, row.rev, row.updated, row.seq)  # as answered then
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


def _fingerprint(
    key: str | None, request: str, doc_id: str, body: Any, toa: int | None
) -> str | None:
    """What identifies a request for its idempotency ``key``: kind, document, body, TOA."""
    if key is None:
        return None
    data = msgspec.json.encode([request, doc_id, body, toa], order="sorted")
    return hashlib.sha256(data).hexdigest()


def _invalid(path: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        message, [ErrorDetail(path if path.startswith("/") else f"/{path}", message)]
    )


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest(
            "the body must be a JSON object", [ErrorDetail("", "expected an object")]
        )
    if (path := _nul_path(body, "")) is not None:
        raise ValidationFailed(
            "text may not contain U+0000 (NUL)", [ErrorDetail(path, "contains U+0000")]
        )
    return body


def _nul_path(value: Any, path: str) -> str | None:
    """The JSON Pointer of the first string (or key) holding U+0000, or ``None``.

    NUL is refused, not stored: SQLite's text functions stop at it, so queries
    over such text would disagree with the reference semantics. JSON escapes it
    as ``\\u0000``: a body whose encoding lacks that (nearly all) is clear after
    one pass in C, and only the others are walked for the place.
    """
    try:
        if b"\\u0000" not in _encode_json(value):
            return None
    except (TypeError, msgspec.EncodeError):  # a Python caller's own types: walk them
        pass
    return _walk_nul(value, path)


def _walk_nul(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = pointer(key) if not path else path + pointer(key)
            if "\x00" in key:
                return here
            if (found := _walk_nul(item, here)) is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if (found := _walk_nul(item, f"{path}/{i}")) is not None:
                return found
    return None
