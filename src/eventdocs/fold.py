"""The fold: the one definition of a document's state.

A document's state at valid time T, as known at K, is the fold in ``(toa,
seq)`` order of its events with ``toa <= T`` and ``recorded_at <= K``,
skipping cancelled events. :func:`step` applies one event; :func:`fold`
applies a document's whole log and says what became of every event. Both are
pure: no I/O, no clock. The projector, replay, verify, the history behind
time travel and every read at a past or future time go through them, so an
event's outcome is the same on every replay.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import msgspec

from eventdocs.events import Cancel, Create, Delete, Event, Revert, Update

__all__ = [
    "ALREADY_EXISTS",
    "DOES_NOT_EXIST",
    "MISSING",
    "PRECONDITION",
    "DocState",
    "Folded",
    "Outcome",
    "Result",
    "cancel_failure",
    "cancelled_targets",
    "fold",
    "merge_patch",
    "order_key",
    "precondition_failure",
    "step",
]

Outcome = Literal["applied", "failed", "cancelled", "pending"]


class DocState(msgspec.Struct, frozen=True):
    """A document after some events: ``data`` is ``None`` while it does not exist.

    ``rev`` counts the events applied so far (a delete counts, a failed event or a
    cancel does not); ``updated`` is the TOA and ``seq`` the seq of the last one.
    """

    data: dict[str, Any] | None = None
    rev: int = 0
    updated: int | None = None
    seq: int = 0

    @property
    def exists(self) -> bool:
        return self.data is not None


MISSING = DocState()


class Result(msgspec.Struct, frozen=True):
    """What became of one event: ``rev`` and ``state`` are set when it applied."""

    event: Event
    outcome: Outcome
    reason: str | None = None
    rev: int | None = None
    state: dict[str, Any] | None = None


class Folded(msgspec.Struct, frozen=True):
    """A document's state at the fold's time and every event's outcome, in fold order."""

    state: DocState
    results: list[Result]


def order_key(event: Event) -> tuple[int, int]:
    """Valid-time order: by time of action, then append order."""
    return (event.toa, event.seq)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge recursively, ``null`` removes."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


ALREADY_EXISTS = "document already exists"
DOES_NOT_EXIST = "document does not exist"
PRECONDITION = "precondition failed"


def precondition_failure(state: DocState, expect_rev: int | None) -> str | None:
    """Why ``expect_rev`` (an ``If-Match``) does not hold on ``state``, or ``None``."""
    if expect_rev is None or state.rev == expect_rev:
        return None
    return f"{PRECONDITION}: the document is at revision {state.rev}, not {expect_rev}"


def step(state: DocState, event: Event) -> tuple[DocState, str | None]:
    """Apply one event that is in effect and not cancelled.

    Returns the new state and ``None``, or the unchanged state and why the
    event failed: a create of an existing document, an update or delete of a
    missing one (a revert sets any state, "deleted" included), or a precondition
    (``expect_rev``) that does not hold. A cancel changes no state here:
    :func:`fold` honours it. Writers decide every write with this same
    function, so an accepted write is one the fold applies.
    """
    match event:
        case Create(body=body):
            if state.exists:
                return state, ALREADY_EXISTS
            data: dict[str, Any] | None = dict(body)
        case Update(body=body, merge=merge, expect_rev=expect):
            if state.data is None:
                return state, DOES_NOT_EXIST
            if failure := precondition_failure(state, expect):
                return state, failure
            data = merge_patch(state.data, body) if merge else {**state.data, **body}
        case Delete(expect_rev=expect):
            if not state.exists:
                return state, DOES_NOT_EXIST
            if failure := precondition_failure(state, expect):
                return state, failure
            data = None
        case Revert(body=body, expect_rev=expect):
            if failure := precondition_failure(state, expect):
                return state, failure
            data = None if body is None else dict(body)
        case Cancel():
            return state, None
    return DocState(data, state.rev + 1, event.toa, event.seq), None


def cancel_failure(cancel: Cancel, target: Event | None, *, cancelled: bool) -> str | None:
    """Why ``cancel`` cancels nothing, or ``None`` when it cancels ``target``: the one rule.

    ``target`` is the event it names among its document's (``None``: none),
    ``cancelled`` whether an earlier cancel already took it. A cancel takes its
    TOA when recorded, so the outcome is known when it is appended and never
    changes: stores apply this rule then and record it, and select by it.
    """
    if target is None or isinstance(target, Cancel) or target.id != cancel.id:
        return f"event {cancel.target} is not a write of this document"
    if target.toa <= cancel.toa:
        return f"event {cancel.target} was already in effect"
    if cancelled:
        return f"event {cancel.target} was already cancelled"
    return None


def cancelled_targets(events: Iterable[Event]) -> tuple[dict[int, int], dict[int, str]]:
    """Which events the cancels among ``events`` cancel, and why the others fail.

    Returns ``{target seq: cancel seq}`` and ``{cancel seq: reason}`` for the
    cancels that fail (:func:`cancel_failure`, cancels taken in valid-time order).
    """
    by_seq = {e.seq: e for e in events}
    cancelled: dict[int, int] = {}
    failed: dict[int, str] = {}
    for cancel in sorted((e for e in by_seq.values() if isinstance(e, Cancel)), key=order_key):
        target = by_seq.get(cancel.target)
        why = cancel_failure(cancel, target, cancelled=cancel.target in cancelled)
        if why is None:
            cancelled[cancel.target] = cancel.seq
        else:
            failed[cancel.seq] = why
    return cancelled, failed


def fold(
    events: Iterable[Event],
    *,
    as_of: int | None = None,
    known_at: int | None = None,
) -> Folded:
    """Fold one document's events into its state at ``as_of`` as known at ``known_at``.

    ``None`` for either means "every event". Events may come in any order;
    events recorded after ``known_at`` are left out of the results entirely,
    events with a TOA after ``as_of`` are ``pending``.
    """
    known = [e for e in events if known_at is None or e.recorded_at <= known_at]
    known.sort(key=order_key)
    if any(isinstance(e, Cancel) for e in known):
        cancelled, failed_cancels = cancelled_targets(known)
    else:  # the common case, on the replay's hot path
        cancelled, failed_cancels = {}, {}
    state = MISSING
    results: list[Result] = []
    for event in known:
        if as_of is not None and event.toa > as_of:
            outcome: Outcome = "cancelled" if event.seq in cancelled else "pending"
            results.append(Result(event, outcome))
        elif event.seq in cancelled:
            by = f"cancelled by event {cancelled[event.seq]}"
            results.append(Result(event, "cancelled", by))
        elif isinstance(event, Cancel):
            why = failed_cancels.get(event.seq)
            results.append(Result(event, "failed" if why else "applied", why))
        else:
            state, failure = step(state, event)
            if failure is None:
                results.append(Result(event, "applied", None, state.rev, state.data))
            else:
                results.append(Result(event, "failed", failure))
    return Folded(state, results)
