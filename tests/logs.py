"""Random logs as a store records them, for property tests: backdated and
scheduled writes, conditional writes, reverts and cancels over a few documents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from eventdocs.events import Cancel, Create, Delete, Draft, Event, Revert, Update
from eventdocs.storage import EventStore
from eventdocs.times import ManualClock

SECOND = 1_000_000
START = 1_700_000_000_000_000
IDS = ("a", "b", "c", "d")

step = st.tuples(
    st.sampled_from(range(len(IDS))),
    st.sampled_from(["create", "update", "update", "merge", "delete", "revert", "cancel"]),
    st.integers(-5, 5),  # TOA in seconds from when it is recorded: backdated or scheduled
    st.sampled_from([None, None, 0, 1, 2, 3]),  # expect_rev (If-Match)
    st.integers(0, 40),  # which earlier event a cancel targets
    st.sampled_from(["ann", "bob", None]),
)


def log_of(steps: list[tuple[Any, ...]], same: Sequence[bool] = ()) -> list[Event]:
    """Events as a store records them: seqs from 1, recorded one second apart, or
    at the instant of the one before where ``same`` says so (a clock that did not
    move between two appends)."""
    events: list[Event] = []
    recorded = START
    for seq, (doc, action, offset, expect, pick, author) in enumerate(steps, 1):
        if not (seq - 1 < len(same) and same[seq - 1] and events):
            recorded = START + seq * SECOND
        common: dict[str, Any] = {
            "seq": seq,
            "resource": "post",
            "id": IDS[doc],
            "toa": recorded + offset * SECOND,
            "recorded_at": recorded,
        }
        body = {"title": f"t{seq}", "blog": seq % 3, "author": author or "cy"}
        if action == "create":
            events.append(Create(body=body, **common))
        elif action in ("update", "merge"):
            patch = {"title": f"u{seq}"} if author is None else {"author": author}
            events.append(Update(body=patch, merge=action == "merge", expect_rev=expect, **common))
        elif action == "delete":
            events.append(Delete(expect_rev=expect, **common))
        elif action == "revert":
            events.append(
                Revert(body=None if author is None else body, expect_rev=expect, **common)
            )
        else:
            common["toa"] = recorded
            events.append(Cancel(target=pick % seq + 1, **common))
    return events


async def cancel_in_time_and_too_late(store: EventStore, clock: ManualClock) -> int:
    """Append to ``post``: 1 create a, 2 update a at +100 µs, 3 create b, 4 a cancel of
    2 in time, 5 update b at +300 µs, 6 a cancel of 5 after its TOA (it takes nothing).
    Returns the time before them."""
    now = clock.now()
    later = Draft(action="update", id="a", body={"n": 1}, toa=now + 100)
    creates = [Draft(action="create", id=i, body={}) for i in "ab"]
    await store.append("post", [creates[0], later, creates[1]])
    await store.append("post", [Draft(action="cancel", id="a", target=2)])
    clock.advance(200)
    await store.append("post", [Draft(action="update", id="b", body={"n": 2}, toa=now + 300)])
    clock.advance(200)
    await store.append("post", [Draft(action="cancel", id="b", target=5)])
    return now
