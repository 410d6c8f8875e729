"""Every rule of the fold (SPEC section 2), one test each, plus the codec."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from eventdocs.events import Draft, Event, decode_event, encode_event
from eventdocs.fold import fold, merge_patch

_seq = 0


def ev(action: str, toa: int, body: Any = None, *, rec: int | None = None, **kw: Any) -> Event:
    global _seq
    _seq += 1
    draft = Draft(action=action, id="d", body=body, toa=toa, **kw)  # type: ignore[arg-type]
    return draft.record("post", _seq, toa if rec is None else rec)


def test_create_then_update_sets_fields() -> None:
    events = [ev("create", 1, {"a": 1, "b": 2}), ev("update", 2, {"b": None, "c": 3})]
    state = fold(events).state
    assert state.data == {"a": 1, "b": None, "c": 3}
    assert (state.rev, state.updated) == (2, 2)


def test_merge_patch_removes_nulls_and_merges_nested() -> None:
    events = [
        ev("create", 1, {"a": 1, "n": {"x": 1, "y": 2}}),
        ev("update", 2, {"a": None, "n": {"y": None, "z": 3}}, merge=True),
    ]
    assert fold(events).state.data == {"n": {"x": 1, "z": 3}}


def test_rfc7396_examples() -> None:
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": ["b"]}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch([1, 2], {"a": "b", "c": None}) == {"a": "b"}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


def test_create_on_existing_fails_and_changes_nothing() -> None:
    result = fold([ev("create", 1, {"a": 1}), ev("create", 2, {"a": 2})])
    assert result.state.data == {"a": 1}
    assert result.state.rev == 1
    assert [r.outcome for r in result.results] == ["applied", "failed"]
    assert result.results[1].reason == "document already exists"


def test_update_and_delete_on_missing_fail() -> None:
    result = fold([ev("update", 1, {"a": 1}), ev("delete", 2)])
    assert result.state.data is None
    assert [r.outcome for r in result.results] == ["failed", "failed"]


def test_delete_counts_as_revision_and_create_after_delete_works() -> None:
    result = fold([ev("create", 1, {"a": 1}), ev("delete", 2), ev("create", 3, {"a": 2})])
    assert result.state.data == {"a": 2}
    assert result.state.rev == 3


def test_order_is_toa_then_seq_not_append_order() -> None:
    # Appended as update then create; in valid time the create comes first.
    update = ev("update", 5, {"a": 2})
    create = ev("create", 1, {"a": 1})
    assert fold([update, create]).state.data == {"a": 2}
    same_toa = [ev("create", 1, {"a": 1}), ev("update", 9, {"a": 2}), ev("update", 9, {"a": 3})]
    assert fold(same_toa).state.data == {"a": 3}


def test_as_of_leaves_later_events_pending() -> None:
    events = [ev("create", 1, {"a": 1}), ev("update", 10, {"a": 2})]
    result = fold(events, as_of=5)
    assert result.state.data == {"a": 1}
    assert [r.outcome for r in result.results] == ["applied", "pending"]
    assert fold(events, as_of=0).state.data is None


def test_known_at_uses_recorded_time() -> None:
    create = ev("create", 1, {"a": 1}, rec=1)
    backdated = ev("update", 2, {"a": 2}, rec=100)  # recorded later, effective at 2
    assert fold([create, backdated], as_of=50).state.data == {"a": 2}
    assert fold([create, backdated], as_of=50, known_at=50).state.data == {"a": 1}
    assert len(fold([create, backdated], known_at=50).results) == 1


def test_revert_sets_full_state_even_deleted() -> None:
    events = [ev("create", 1, {"a": 1}), ev("revert", 2, {"b": 2})]
    assert fold(events).state.data == {"b": 2}
    events.append(ev("revert", 3, None))
    assert fold(events).state.data is None
    assert fold(events).state.rev == 3
    assert fold([ev("revert", 1, {"x": 1})]).state.data == {"x": 1}


def test_cancel_skips_its_target_and_changes_no_revision() -> None:
    create = ev("create", 1, {"a": 1})
    scheduled = ev("update", 10, {"a": 2}, rec=2)
    cancel = ev("cancel", 3, target=scheduled.seq)
    result = fold([create, scheduled, cancel])
    assert result.state.data == {"a": 1}
    assert result.state.rev == 1
    outcomes = {r.event.seq: r.outcome for r in result.results}
    assert outcomes == {create.seq: "applied", scheduled.seq: "cancelled", cancel.seq: "applied"}


def test_cancel_of_event_already_in_effect_fails() -> None:
    create = ev("create", 1, {"a": 1})
    update = ev("update", 2, {"a": 2})
    late = ev("cancel", 5, target=update.seq)
    twice = ev("cancel", 6, target=create.seq + 100)
    result = fold([create, update, late, twice])
    assert result.state.data == {"a": 2}
    reasons = {r.event.seq: (r.outcome, r.reason) for r in result.results}
    assert reasons[late.seq] == ("failed", f"event {update.seq} was already in effect")
    assert reasons[twice.seq][0] == "failed"


def test_second_cancel_of_same_event_fails() -> None:
    create = ev("create", 1, {"a": 1})
    scheduled = ev("delete", 10)
    first = ev("cancel", 2, target=scheduled.seq)
    second = ev("cancel", 3, target=scheduled.seq)
    result = fold([create, scheduled, first, second])
    assert result.state.data == {"a": 1}
    assert [r.outcome for r in result.results if r.event.seq == second.seq] == ["failed"]


def test_cancel_unknown_at_known_at_does_not_apply() -> None:
    create = ev("create", 1, {"a": 1}, rec=1)
    scheduled = ev("update", 10, {"a": 2}, rec=2)
    cancel = ev("cancel", 5, target=scheduled.seq)
    assert fold([create, scheduled, cancel], known_at=4).state.data == {"a": 2}
    assert fold([create, scheduled, cancel], known_at=5).state.data == {"a": 1}


def test_failed_events_are_derived_so_a_backdated_create_revives_them() -> None:
    update = ev("update", 10, {"a": 2}, rec=10)
    assert fold([update]).results[0].outcome == "failed"
    create = ev("create", 5, {"a": 1}, rec=20)
    assert fold([update, create]).state.data == {"a": 2}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    action=st.sampled_from(["create", "update", "delete", "revert", "cancel"]),
    body=st.dictionaries(st.text(max_size=5), json_values, max_size=4),
    toa=st.integers(-(2**50), 2**50),
    seq=st.integers(1, 2**40),
    merge=st.booleans(),
)
def test_every_event_type_round_trips_through_the_codec(
    action: str, body: dict[str, Any], toa: int, seq: int, merge: bool
) -> None:
    draft = Draft(action=action, id="x/y", body=body, toa=toa, merge=merge, target=seq)  # type: ignore[arg-type]
    event = draft.record("post", seq, toa - 1)
    assert decode_event(encode_event(event)) == event
