"""The recording interval of history rows: what was believed, when (``known_at``).

The history is the fold of every event recorded so far, one row per applied
event, each valid from its TOA until the next row's. Each time an event is
recorded the belief changes from some valid time on: an event appended after
everything only adds a row (and ends the open row before it); a backdated
write, a cancel or a write before a scheduled one changes the rows from its
point on. So that "what did we believe at *K* about valid time *T*" is an
index seek and not a fold of the log's prefix, every history row carries:

* ``known_from``: the ``recorded_at`` since which it is believed;
* ``end_known``: since when its ``valid_to`` is known (an open row that a later
  row ended keeps its place; before ``end_known`` it counts as open);
* ``known_to`` (closed rows only): when a later event replaced it.

A row is the answer at ``(known_at K, valid time T)`` when
``known_from <= K < known_to``, ``updated <= T`` and either ``T < valid_to``
or ``K < end_known`` (:func:`believed`). Exactly one row matches, or none
(the document did not exist then, as believed then).

The rows come from :func:`eventdocs.fold.step` applied per recording time:
:func:`record` takes the events recorded at one instant and revises the rows
from the first point they change, closing the rows it replaces.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

import msgspec

from eventdocs.events import Cancel, Event
from eventdocs.fold import MISSING, DocState, cancelled_targets, order_key, step
from eventdocs.storage.contract import Document

__all__ = ["Timeline", "document_timeline", "groups"]

_replace = msgspec.structs.replace


def _fold_from(doc_id: str, base: Document | None, events: Sequence[Event]) -> list[Document]:
    """The rows after ``base``: ``events`` (writes in valid-time order, cancels)
    folded onto its state, each row valid until the next one's TOA."""
    writes = sorted((e for e in events if not isinstance(e, Cancel)), key=order_key)
    cancels = [e for e in events if isinstance(e, Cancel)]
    cancelled = cancelled_targets([*writes, *cancels])[0] if cancels else {}
    state = MISSING if base is None else DocState(base.data, base.rev, base.updated, base.seq)
    rows: list[Document] = []
    for event in writes:
        if event.seq in cancelled:
            continue
        state, failure = step(state, event)
        if failure is None:
            if rows:
                rows[-1] = _replace(rows[-1], valid_to=event.toa)
            rows.append(Document(doc_id, state.data, state.rev, event.toa, event.seq))
    return rows


def _opened(row: Document, recorded: int) -> Document:
    return _replace(
        row,
        known_from=recorded,
        end_known=None if row.valid_to is None else recorded,
        known_to=None,
    )


class Timeline:
    """One document's believed rows from some point on, revised as events are recorded.

    ``rows`` are the rows believed now, in valid-time (rev) order; ``closed``
    collects the rows replaced on the way, with their ``known_to``.
    """

    def __init__(self, rows: Iterable[Document] = (), events: Iterable[Event] = ()) -> None:
        self.rows = list(rows)
        self.closed: list[Document] = []
        self._keys = [(r.updated, r.seq) for r in self.rows]
        self._writes = sorted((e for e in events if not isinstance(e, Cancel)), key=order_key)
        self._cancels = [e for e in events if isinstance(e, Cancel)]
        self._by_seq = {e.seq: e for e in self._writes}

    def record(self, doc_id: str, events: Sequence[Event], recorded: int) -> None:
        """Take in ``events``, all recorded at ``recorded``, after every event so far."""
        starts = []
        for event in events:
            if isinstance(event, Cancel):
                self._cancels.append(event)
                target = self._by_seq.get(event.target)
                if target is not None:
                    starts.append(order_key(target))
            else:
                bisect.insort(self._writes, event, key=order_key)
                self._by_seq[event.seq] = event
                starts.append(order_key(event))
        if not starts:
            return
        start = min(starts)
        at = bisect.bisect_left(self._keys, start)
        base = self.rows[at - 1] if at else None
        old = self.rows[at:]
        later = self._writes[bisect.bisect_left(self._writes, start, key=order_key) :]
        fresh = _fold_from(doc_id, base, [*later, *self._cancels] if self._cancels else later)
        rows = self._revise(base, old, fresh, recorded)
        cut = at - 1 if at else 0  # in place: an append at the end costs O(its rows)
        del self.rows[cut:], self._keys[cut:]
        self.rows.extend(rows)
        self._keys.extend((r.updated, r.seq) for r in rows)

    def _revise(
        self, base: Document | None, old: list[Document], fresh: list[Document], recorded: int
    ) -> list[Document]:
        """``fresh`` rows annotated against the ``old`` ones they replace, ``base`` first."""
        prior = {(r.updated, r.seq, r.rev): r for r in old}
        out: list[Document] = []
        for row in fresh:
            was = prior.pop((row.updated, row.seq, row.rev), None)
            if was is not None and was.data == row.data:
                out.append(self._reend(was, row.valid_to, recorded))
            else:
                if was is not None:
                    self._close(was, recorded)
                out.append(_opened(row, recorded))
        for was in prior.values():
            self._close(was, recorded)
        if base is not None:
            out.insert(0, self._reend(base, fresh[0].updated if fresh else None, recorded))
        return out

    def _reend(self, row: Document, valid_to: int | None, recorded: int) -> Document:
        """``row`` valid until ``valid_to`` from ``recorded`` on."""
        if row.valid_to == valid_to:
            return row
        if row.valid_to is None:  # an open row ended: the same row, its end known from now
            return _replace(row, valid_to=valid_to, end_known=recorded)
        self._close(row, recorded)
        return _opened(_replace(row, valid_to=valid_to), recorded)

    def _close(self, row: Document, recorded: int) -> None:
        if row.known_from < recorded:  # a row replaced at the instant it came is no belief
            self.closed.append(_replace(row, known_to=recorded))


def groups(events: Sequence[Event]) -> Iterable[tuple[int, list[Event]]]:
    """``events`` (in seq order) in runs recorded at one instant."""
    run: list[Event] = []
    for event in events:
        if run and event.recorded_at != run[0].recorded_at:
            yield run[0].recorded_at, run
            run = []
        run.append(event)
    if run:
        yield run[0].recorded_at, run


def document_timeline(doc_id: str, events: Iterable[Event]) -> Timeline:
    """The believed and closed rows of one document, from its whole log."""
    timeline = Timeline()
    for recorded, run in groups(sorted(events, key=lambda e: e.seq)):
        timeline.record(doc_id, run, recorded)
    return timeline
