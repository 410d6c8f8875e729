"""The store contract: what every backend promises, in one place.

A store keeps, per resource, three things in one database:

* the **log** ``<resource>_revisions``: events in ``seq`` order, never changed;
* the **history**: one row per applied event of each document (its state after
  that event; ``data is None`` means deleted), the fold of every known event,
  which makes reads at any valid time an index lookup;
* the **master collection** ``<resource>``: the state at valid time "now",
  with a checkpoint saying how far it is projected.

plus **views** (keyed collections of JSON objects with a checkpoint each).

A store never decides state: the projector computes history, master and view
rows with the fold and hands them over in a :class:`ProjectionBatch`, which the
store writes atomically with its checkpoint. All times are integer
microseconds (:mod:`eventdocs.times`). Methods raise
:class:`~eventdocs.errors.StorageError` (or ``StoreUnavailable``) for driver
failures and never leave part of a call written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import msgspec

from eventdocs.events import Draft, Event
from eventdocs.query import Kind, Query

__all__ = [
    "Appended",
    "Checkpoint",
    "Document",
    "EventStore",
    "Guard",
    "Head",
    "HistoryWrite",
    "IndexSpec",
    "ProjectionBatch",
    "Tip",
    "ViewWrite",
    "believed",
]


class Document(msgspec.Struct, frozen=True):
    """A document at some time: a master row, or a history row.

    ``updated`` and ``seq`` are the TOA and seq of the event that produced it.
    In history rows ``data is None`` means deleted and ``valid_to`` is the TOA
    of the next revision (``None`` while it is the last).

    History rows also carry their recording interval (the bitemporal index of
    :mod:`eventdocs.projections.bitemporal`): the row was believed from
    ``known_from`` (the ``recorded_at`` that made it so) until ``known_to``
    (``None``: still believed), and its ``valid_to`` was known from
    ``end_known`` on (before that it was open).
    """

    id: str
    data: dict[str, Any] | None
    rev: int
    updated: int
    seq: int
    valid_to: int | None = None
    known_from: int = 0
    end_known: int | None = None
    known_to: int | None = None


def believed(row: Document, toa: int, known_at: int) -> bool:
    """Whether ``row`` was the one in effect at ``toa`` as believed at ``known_at``."""
    if row.known_from > known_at or (row.known_to is not None and row.known_to <= known_at):
        return False
    if row.updated > toa:
        return False
    ended = row.valid_to is not None and (row.end_known is None or row.end_known <= known_at)
    return not ended or toa < row.valid_to  # type: ignore[operator]


class Appended(msgspec.Struct, frozen=True):
    """The events an append recorded; ``replayed`` when an idempotency key matched;
    ``projected`` when the store projected them in the append's transaction."""

    events: list[Event]
    replayed: bool = False
    projected: bool = False


class Tip(msgspec.Struct, frozen=True):
    """What an immediate write decided: the document's state after it (``data``
    ``None``: deleted) at revision ``rev``, on top of its last history row
    ``prior_rev`` (0: none). The write comes after every event of the document,
    so a store may project it in the append's transaction: one commit for the
    log, history, master row and checkpoint, no projector step after it."""

    id: str
    data: dict[str, Any] | None
    rev: int
    prior_rev: int


class Guard(msgspec.Struct, frozen=True):
    """What a write was decided on: append only while it still holds.

    Document ``id``'s latest event (cancels included) must still be ``head``
    (0: it has none), and the ``recorded_at`` the store gives the append must
    be earlier than ``before`` (``None``: any), the TOA of the document's next
    write, so that no write of it comes due between decision and append.
    """

    id: str
    head: int
    before: int | None = None


class Head(msgspec.Struct, frozen=True):
    """A document's latest event ``seq`` (0: none) and the TOA of its first write
    after some time (``None``: none): what a :class:`Guard` is made of."""

    seq: int = 0
    next_toa: int | None = None


class Checkpoint(msgspec.Struct, frozen=True):
    """How far a resource is projected.

    History holds the fold of every event with ``seq <= seq``; the master
    collection holds the state at valid time ``toa`` of those events.
    """

    seq: int = 0
    toa: int = -(2**62)


class HistoryWrite(msgspec.Struct, frozen=True):
    """Replace document ``id``'s history rows with ``rev >= from_rev`` by ``rows``.

    The rows are written as given: the projector links each ``valid_to`` to the
    next row's ``updated`` (:mod:`eventdocs.projections.bitemporal`), and a write
    that ends the row before it starts from that row (``from_rev`` is its rev),
    so the store keeps every row below ``from_rev`` untouched. ``closed`` are
    rows no longer believed (``known_to`` set), kept for reads as known at a
    past time; with ``replace_closed`` they replace every closed row the
    document had.
    """

    id: str
    from_rev: int
    rows: list[Document]
    closed: list[Document] = []
    replace_closed: bool = False


class ViewWrite(msgspec.Struct, frozen=True):
    """Rows to put (key -> object) and keys to delete in one view."""

    puts: dict[str, dict[str, Any]] = {}
    deletes: list[str] = []
    checkpoint: dict[str, Checkpoint] = {}


class ProjectionBatch(msgspec.Struct, frozen=True):
    """Everything one projector step writes for one resource, with its checkpoint.

    ``base`` is the checkpoint the batch was computed from. Processes sharing a
    store race to project the same events; only a batch whose base is still
    the stored checkpoint may be written, or a change would be applied twice.
    Without a base (rebuilds that reset first, tests) the checkpoint only has
    to be no older than the stored one.
    """

    checkpoint: Checkpoint
    history: list[HistoryWrite] = []
    upserts: list[Document] = []
    deletes: list[str] = []
    views: dict[str, ViewWrite] = {}
    base: Checkpoint | None = None
    # Only for a store whose ``applies_due`` is true: ``(after_toa, until_toa,
    # max_seq)`` of writes that came due, whose documents the store sets in the
    # master collection to their history row in effect at ``until_toa`` (after
    # ``history``, before ``upserts`` and ``deletes``, which win).
    due: tuple[int, int, int] | None = None

    def fits(self, stored: Checkpoint) -> bool:
        """Whether this batch may be written over the ``stored`` checkpoint."""
        if self.base is not None:
            return stored == self.base
        return (stored.seq, stored.toa) <= (self.checkpoint.seq, self.checkpoint.toa)


class IndexSpec(msgspec.Struct, frozen=True):
    """A field of the master collection that queries filter or sort on."""

    field: str
    kind: Kind = "other"


class EventStore(Protocol):
    """An event log with its projections, for any number of resources."""

    async def open(self) -> None:
        """Connect and create what is missing; safe to call on an existing store."""
        ...

    async def close(self) -> None:
        """Finish pending appends and release the database."""
        ...

    async def ensure_resource(self, resource: str, indexes: Sequence[IndexSpec] = ()) -> None:
        """Create the log, history and master collection of ``resource`` if missing,
        and an index for each of ``indexes`` on the master collection."""
        ...

    async def resources(self) -> list[str]:
        """The names of every resource that has a log in this store, sorted."""
        ...

    # -- the log -------------------------------------------------------------

    async def append(
        self,
        resource: str,
        drafts: Sequence[Draft],
        *,
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
        guards: Sequence[Guard] = (),
        tips: Sequence[Tip] = (),
    ) -> Appended:
        """Append ``drafts`` atomically and durably; return them as recorded events.

        Each gets the next ``seq`` and a ``recorded_at`` from the store's clock,
        read when the append is written, that never goes backwards within the
        log. When the call returns the events survive a crash. Concurrent calls
        may share one transaction (group commit) but each call is all or
        nothing.

        Decided writes: every one of ``guards`` must hold in the transaction
        that appends, else nothing is appended and
        :class:`~eventdocs.errors.Stale` is raised (the caller decides again).

        Cancels: the store records, as it appends or loads one, which write it
        took, by :func:`eventdocs.fold.cancel_failure` (a cancel's outcome is
        known when it is recorded and never changes). Every read of due, next
        or pending writes, and :meth:`read_cancels`, select by that record and
        restate no rule.

        With an ``idempotency_key`` already used on this resource nothing is
        appended: the events of the first call come back with
        ``replayed=True`` when the stored fingerprint is ``fingerprint`` (or
        either is ``None``), else :class:`~eventdocs.errors.KeyReused` is
        raised. A new key is stored with its fingerprint in the append's
        transaction, so concurrent first uses are resolved by the store.

        ``tips`` (one per draft, all immediate writes) let a store that can
        project them in the same transaction when the projection is caught up
        and nothing came due meanwhile; it says so with ``projected``. Others
        ignore them: the projector projects the events as always.
        """
        ...

    async def load(self, resource: str, events: Sequence[Event]) -> None:
        """Write already-recorded events verbatim (import), atomically and durably.

        Their seqs must continue the log (the first is ``last_seq + 1``, then
        consecutive), else nothing is written and ``InvalidRequest`` is raised.
        """
        ...

    async def load_stream(self, events: Iterable[Event]) -> dict[str, int]:
        """Write an exported log verbatim (import); the count loaded per resource.

        Creates missing resources. Each event must continue its resource's log
        (:mod:`eventdocs.storage.loading`: seqs, ``recorded_at``, cancels); the
        first that does not raises ``InvalidRequest``. ``events`` is consumed
        once, as it comes. SQLite writes all of it in one transaction: all or
        nothing, even if the process dies. Memory and MongoDB write chunks as
        they go, so a refusal leaves the chunks before it.
        """
        ...

    async def find_idempotent(
        self, resource: str, key: str, *, fingerprint: str | None = None
    ) -> list[Event] | None:
        """The events appended with idempotency ``key``, or ``None`` if it is unused.

        Raises :class:`~eventdocs.errors.KeyReused` when ``fingerprint`` and the
        stored one are both given and differ.
        """
        ...

    async def read_head(self, resource: str, id: str, *, after_toa: int) -> Head:
        """Document ``id``'s latest seq and the smallest TOA ``> after_toa`` of its
        writes no cancel took: index seeks,
        whatever the history's length."""
        ...

    async def read_log(self, resource: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        """Up to ``limit`` events with ``seq > after``, in seq order."""
        ...

    async def read_log_by_document(
        self, resource: str, *, after: str = "", limit: int = 1000
    ) -> list[Event]:
        """Up to ``limit`` events of documents with ``id > after``, in ``(id, seq)``
        order (the last document may be cut short: ask again after the one before).

        Replay streams the log this way so each document is folded once."""
        ...

    async def read_event(self, resource: str, seq: int) -> Event | None:
        """The event ``seq``, or ``None``."""
        ...

    async def read_document(self, resource: str, id: str) -> list[Event]:
        """Every event of document ``id`` (cancels included), in seq order."""
        ...

    async def read_due(
        self,
        resource: str,
        *,
        after_toa: int,
        until_toa: int,
        max_seq: int,
        limit: int | None = None,
    ) -> list[Event]:
        """Writes with ``after_toa < toa <= until_toa`` and ``seq <= max_seq`` that no
        cancel with ``seq <= max_seq`` took, in ``(toa, seq)`` order.

        Cancels themselves are never returned. This is the scheduler's range scan.
        """
        ...

    async def count_due(
        self, resource: str, *, after_toa: int, until_toa: int, max_seq: int
    ) -> int:
        """How many writes :meth:`read_due` would return without a limit."""
        ...

    async def next_toa(self, resource: str, *, after_toa: int, max_seq: int) -> int | None:
        """The smallest TOA ``> after_toa`` of a write :meth:`read_due` would return."""
        ...

    async def read_heads(
        self, resource: str, ids: Sequence[str], *, max_seq: int
    ) -> dict[str, tuple[int, int]]:
        """For each of ``ids`` with writes of ``seq <= max_seq``, the largest
        ``(toa, seq)`` among them (cancels left out): the projector folds a new
        event onto the history tail only when it comes after this key."""
        ...

    async def last_seq(self, resource: str) -> int:
        """The highest seq in the log (0 when empty)."""
        ...

    # -- projections ---------------------------------------------------------

    async def read_checkpoint(self, resource: str) -> Checkpoint:
        """How far ``resource`` is projected (the zero checkpoint when never)."""
        ...

    async def write_projection(self, resource: str, batch: ProjectionBatch) -> bool:
        """Write history, master rows, view rows and the checkpoint in one transaction.

        Returns ``False``, writing nothing, unless ``batch.fits`` the stored
        checkpoint (another step, maybe another process's, came first), or when
        an event after ``batch.checkpoint.seq`` was recorded after the stored
        checkpoint's toa and at or before ``batch.checkpoint.toa``: the step
        did not see a write it projects past (a cancel among them would let
        its target be seen in effect).
        """
        ...

    async def reset_projection(self, resource: str, *, base: Checkpoint | None = None) -> bool:
        """Empty the history and master collection and zero the checkpoint.

        With ``base``, only while the stored checkpoint is still ``base``;
        returns whether it reset.
        """
        ...

    async def get(self, resource: str, id: str) -> Document | None:
        """The master row of ``id``, or ``None`` when it does not exist now."""
        ...

    async def query(self, resource: str, query: Query) -> tuple[int, list[Document]]:
        """The total of master rows matching ``query`` and the requested page."""
        ...

    async def scan(self, resource: str, *, after: str = "", limit: int = 1000) -> list[Document]:
        """Up to ``limit`` master rows with ``id > after``, in id order (for verify)."""
        ...

    async def read_history(self, resource: str, id: str) -> list[Document]:
        """Every history row of ``id`` in rev order."""
        ...

    async def history_tails(self, resource: str, ids: Sequence[str]) -> dict[str, Document]:
        """The last history row of each of ``ids`` that has one."""
        ...

    async def history_at(self, resource: str, id: str, *, toa: int) -> Document | None:
        """The history row in effect at valid time ``toa`` (deleted rows included)."""
        ...

    async def query_history(
        self, resource: str, query: Query, *, toa: int
    ) -> tuple[int, list[Document]]:
        """Like :meth:`query`, over the documents that exist at valid time ``toa``."""
        ...

    async def history_known(
        self, resource: str, id: str, *, toa: int, known_at: int
    ) -> Document | None:
        """The history row in effect at valid time ``toa`` as believed at ``known_at``:
        the row with ``known_from <= known_at < known_to`` whose valid interval, as
        known then, holds ``toa`` (deleted rows included)."""
        ...

    async def query_known(
        self, resource: str, query: Query, *, toa: int, known_at: int
    ) -> tuple[int, list[Document]]:
        """Like :meth:`query_history`, over the rows believed at ``known_at``."""
        ...

    async def scan_history(
        self, resource: str, *, after: str = "", limit: int = 1000
    ) -> list[Document]:
        """History rows of documents with ``id > after``, in (id, rev) order, up to
        ``limit`` rows and never stopping within a document."""
        ...

    # -- reads bounded by the answer -------------------------------------------

    async def read_revisions(
        self,
        resource: str,
        id: str,
        *,
        limit: int,
        offset: int = 0,
        after: tuple[int, int] | None = None,
    ) -> tuple[int, list[Event]]:
        """How many events document ``id`` has, and ``limit`` of them from ``offset``
        in valid-time ``(toa, seq)`` order (cancels included): an index range.
        With ``after`` (a ``(toa, seq)`` cursor) the range starts past it: a seek."""
        ...

    async def read_from(self, resource: str, id: str, *, toa: int, seq: int) -> list[Event]:
        """Document ``id``'s events with ``(toa, seq) >= (toa, seq)``, in that order:
        what a backdated write or a cancel re-folds."""
        ...

    async def read_cancels(self, resource: str, targets: Sequence[int]) -> list[Event]:
        """The cancels that took one of ``targets`` (see :meth:`append`), in seq order."""
        ...

    async def history_before(
        self, resource: str, id: str, *, toa: int, seq: int
    ) -> Document | None:
        """The last history row of ``id`` with ``(updated, seq) < (toa, seq)``."""
        ...

    async def history_span(self, resource: str, id: str, *, start: int, end: int) -> list[Document]:
        """The history rows of ``id`` with ``start <= updated <= end``, in rev order."""
        ...

    async def history_rev(self, resource: str, id: str, rev: int) -> Document | None:
        """The history row of ``id`` at revision ``rev`` (a primary-key seek)."""
        ...

    async def history_at_many(
        self, resource: str, ids: Sequence[str], *, toa: int
    ) -> dict[str, Document]:
        """:meth:`history_at` for each of ``ids`` that has a row at ``toa``."""
        ...

    # -- scheduled writes ---------------------------------------------------

    async def set_pending_limit(self, resource: str, limit: int | None) -> None:
        """From now on, an append that would take ``resource`` past ``limit``
        scheduled writes pending raises ``LimitExceeded`` and appends nothing,
        checked in the append's transaction where the store can (SQLite,
        memory), so concurrent scheduled writes never overshoot it."""
        ...

    async def count_pending(self, resource: str, *, now: int) -> int:
        """How many writes have a TOA after ``now`` and were not cancelled."""
        ...

    async def read_pending(
        self,
        resource: str,
        *,
        now: int,
        limit: int,
        offset: int = 0,
        after: tuple[int, int] | None = None,
    ) -> list[Event]:
        """``limit`` of the writes :meth:`count_pending` counts, from ``offset``,
        in ``(toa, seq)`` order; with ``after`` (a ``(toa, seq)`` cursor), past it."""
        ...

    # -- views ---------------------------------------------------------------

    async def ensure_view(self, view: str) -> None:
        """Create the collection of ``view`` if missing."""
        ...

    async def read_view(self, view: str, keys: Sequence[str] | None = None) -> dict[str, Any]:
        """The rows of ``view`` (only ``keys`` when given) as ``{key: object}``."""
        ...

    async def view_checkpoints(self, view: str) -> dict[str, Checkpoint]:
        """Per source resource, how far ``view`` is projected (empty when never)."""
        ...

    async def reset_view(self, view: str) -> None:
        """Empty ``view`` and forget its checkpoints."""
        ...
