"""The bitemporal index equals the fold: at every (known_at, as_of) exactly the
row the fold of the events recorded by then gives, or none when it gives none."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from eventdocs.events import Event
from eventdocs.fold import fold
from eventdocs.projections.bitemporal import document_timeline
from eventdocs.storage.contract import Document, believed
from logs import IDS, SECOND, START, log_of, step


def grid(events: list[Event]) -> list[tuple[int, int]]:
    """Every recording instant and TOA, and the instants just before them."""
    times = {START}
    for e in events:
        times |= {e.recorded_at, e.recorded_at - 1, e.toa, e.toa - 1}
    return [(k, v) for k in sorted(times) for v in sorted(times | {START + 100 * SECOND})]


def answer(rows: list[Document], toa: int, known_at: int) -> tuple[Any, ...] | None:
    found = [r for r in rows if believed(r, toa, known_at)]
    assert len(found) <= 1, (toa, known_at, found)
    if not found or found[0].data is None:
        return None
    row = found[0]
    return (row.data, row.rev, row.updated, row.seq)


@given(st.lists(step, max_size=30))
def test_the_rows_believed_at_any_time_are_the_fold_of_what_was_recorded(
    steps: list[tuple[Any, ...]],
) -> None:
    log = log_of(steps)
    for doc_id in IDS:
        events = [e for e in log if e.id == doc_id]
        timeline = document_timeline(doc_id, events)
        rows = timeline.rows + timeline.closed
        for known_at, toa in grid(events):
            state = fold(events, as_of=toa, known_at=known_at).state
            want = None if state.data is None else (state.data, state.rev, state.updated, state.seq)
            assert answer(rows, toa, known_at) == want, (known_at, toa)
