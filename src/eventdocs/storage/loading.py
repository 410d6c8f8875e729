"""Loading an exported log: the log's own rules, checked event by event.

Every backend's ``load_stream`` applies the same three rules, so an import
can never leave a log its own appends could not have written: seqs continue
the log one by one, ``recorded_at`` never goes backwards, and a cancel names
an earlier, not-cancel event of its own document and takes effect when it is
recorded (so whether it cancels is known then: each store records it). The
declarations' rules (schemas, ids, time ranges) are checked before, by
:mod:`eventdocs.importing`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from eventdocs.errors import ErrorDetail, InvalidRequest
from eventdocs.events import Cancel, Event

if TYPE_CHECKING:
    from eventdocs.storage.contract import EventStore

__all__ = ["check_cancel", "check_next", "load_in_chunks"]

_CHUNK = 5000


def _refuse(event: Event, path: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        f"{path}: {message} ({event.resource} event {event.seq})", [ErrorDetail(path, message)]
    )


def check_next(event: Event, last_seq: int, last_recorded: int | None) -> None:
    """Refuse ``event`` unless it continues a log that ends at ``last_seq``.

    Raises:
        InvalidRequest: at ``seq`` or ``recorded_at``.
    """
    if event.seq != last_seq + 1:
        raise _refuse(event, "seq", f"{event.seq} where {last_seq + 1} continues the log")
    if last_recorded is not None and event.recorded_at < last_recorded:
        raise _refuse(event, "recorded_at", "goes backwards: before the previous event's")


def check_cancel(event: Cancel, target: tuple[str, str] | None) -> None:
    """Refuse a cancel whose target (its ``(id, action)``, or None if missing) is not one.

    Raises:
        InvalidRequest: at ``target``.
    """
    if event.toa != event.recorded_at:
        raise _refuse(event, "toa", "a cancel takes effect when it is recorded")
    if event.target >= event.seq or target is None:
        raise _refuse(event, "target", f"no earlier event {event.target} to cancel")
    if target[0] != event.id:
        raise _refuse(event, "target", f"event {event.target} is of another document")
    if target[1] == "cancel":
        raise _refuse(event, "target", f"event {event.target} is itself a cancel")


async def load_in_chunks(store: EventStore, events: Iterable[Event]) -> dict[str, int]:
    """``load_stream`` for a backend without one transaction over everything.

    Every rule is checked before an event is written, in chunks of one
    resource; a refusal leaves the chunks loaded before it.
    """
    counts: dict[str, int] = {}
    tails: dict[str, tuple[int, int | None]] = {}
    chunk: list[Event] = []

    async def flush() -> None:
        if chunk:
            await store.load(chunk[0].resource, chunk)
            chunk.clear()

    for event in events:
        r = event.resource
        if chunk and (chunk[0].resource != r or len(chunk) >= _CHUNK):
            await flush()
        if r not in tails:
            await store.ensure_resource(r)
            last = await store.last_seq(r)
            tail = await store.read_event(r, last) if last else None
            tails[r] = (last, tail.recorded_at if tail else None)
        check_next(event, *tails[r])
        if isinstance(event, Cancel):
            await flush()
            found = await store.read_event(r, event.target)
            check_cancel(event, (found.id, found.action) if found else None)
        chunk.append(event)
        tails[r] = (event.seq, event.recorded_at)
        counts[r] = counts.get(r, 0) + 1
    await flush()
    return counts
