"""Reads as known at a time, through each store's index, equal the fold.

Random logs (backdated and scheduled writes, conditional writes, reverts,
cancels) are loaded event by event or in a few parts, the real projector
projecting after each, as a server does between writes; then every document at every
(known_at, as_of) pair of interest, and a query over all of them, must be
what :func:`eventdocs.fold.fold` gives for the events recorded by then.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from eventdocs.events import Event
from eventdocs.fold import fold
from eventdocs.projections.projector import Projector
from eventdocs.projections.replay import verify
from eventdocs.query import Query, SortKey
from logs import IDS, SECOND, START, log_of, step
from stores import BACKENDS, Clock, dispose, make_store

_ALL = Query(sort=(SortKey("id", False, None),), limit=100)


def _times(events: list[Event]) -> tuple[list[int], list[int]]:
    known = sorted({START} | {e.recorded_at for e in events} | {e.recorded_at - 1 for e in events})
    valid = sorted({START, START + 90 * SECOND} | {e.toa for e in events})
    return known, valid


async def _check(
    backend: str, steps: list[tuple[Any, ...]], cuts: list[int], each: bool, same: list[bool]
) -> None:
    log = log_of(steps, same)
    clock = Clock(START)
    store = await make_store(backend, Path(tempfile.mkdtemp()), clock)
    try:
        await store.ensure_resource("post")
        projector = Projector(store, clock)
        parts = range(len(log)) if each else cuts  # after each event, as a server does
        bounds = sorted({c for c in parts if 0 < c < len(log)} | {0, len(log)})
        for lo, hi in itertools.pairwise(bounds):
            await store.load("post", log[lo:hi])
            clock.set(log[hi - 1].recorded_at)
            await projector.project("post")
        # However the steps fell (instants shared by two appends included), the
        # recording intervals are those of the log taken in at once.
        assert await verify(store, ["post"]) == []
        known, valid = _times(log)
        for known_at in known:
            recorded = [e for e in log if e.recorded_at <= known_at]
            for as_of in valid:
                want: dict[str, Any] = {}
                for doc_id in IDS:
                    state = fold([e for e in recorded if e.id == doc_id], as_of=as_of).state
                    row = await store.history_known("post", doc_id, toa=as_of, known_at=known_at)
                    got = None if row is None or row.data is None else (row.data, row.rev)
                    assert got == (None if state.data is None else (state.data, state.rev)), (
                        doc_id,
                        known_at,
                        as_of,
                    )
                    if state.data is not None:
                        want[doc_id] = state.data
                total, rows = await store.query_known("post", _ALL, toa=as_of, known_at=known_at)
                assert (total, {r.id: r.data for r in rows}) == (len(want), want)
    finally:
        await dispose(store)


@pytest.mark.parametrize("backend", BACKENDS)
def test_known_at_reads_through_the_store_are_the_fold(backend: str) -> None:
    @settings(
        max_examples=4 if backend == "mongodb" else 150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        st.lists(step, min_size=1, max_size=25),
        st.lists(st.integers(1, 24), max_size=3),
        st.booleans(),
        st.lists(st.booleans(), max_size=25),
    )
    # A delete scheduled, then cancelled at the same instant, projected between them.
    @example(
        steps=[(0, "create", 0, None, 0, "ann"), (0, "delete", 1, None, 0, None),
               (0, "cancel", 0, None, 1, None)],
        cuts=[], each=True, same=[False, False, True],
    )  # fmt: skip
    # A correction backdated between two writes closes the row believed before it.
    @example(
        steps=[(0, "create", -5, None, 0, "ann"), (0, "update", 0, None, 0, None),
               (0, "update", -2, None, 0, "bob")],
        cuts=[], each=True, same=[],
    )  # fmt: skip
    # A write scheduled ahead of when it was recorded.
    @example(
        steps=[(0, "create", 0, None, 0, "ann"), (0, "update", 5, None, 0, None)],
        cuts=[], each=False, same=[],
    )  # fmt: skip
    def run(steps: list[tuple[Any, ...]], cuts: list[int], each: bool, same: list[bool]) -> None:
        asyncio.run(_check(backend, steps, cuts, each, same))

    run()
