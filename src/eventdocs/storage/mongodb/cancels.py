"""Which write a cancel took: the fold's rule, applied once, when the cancel is written.

A cancel takes its TOA when it is recorded, so whether it cancels its target
(:func:`eventdocs.fold.cancel_failure`) is known then and never changes. A
cancel's log document records it in ``took`` (the write's seq; absent when it
took none), and the reads of due and next writes only select by it. Appends,
loads and the upgrade of a log written before ``took`` existed all decide here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventdocs.events import Cancel, Event
from eventdocs.fold import cancel_failure
from eventdocs.storage.mongodb.codec import event_of

__all__ = ["decide_cancels", "taken"]

_DECIDED = "cancels_decided"  # set on a resource's counter once its cancels carry ``took``


async def taken(log: Any, events: Sequence[Event], *, stored: bool = True) -> dict[int, int]:
    """``{cancel seq: write seq}`` for the cancels of ``events`` (in seq order: one batch,
    or every cancel of a log) that take their target. The outcomes of the cancels
    before them count: those among ``events``, and with ``stored`` those in the log."""
    cancels = [e for e in events if isinstance(e, Cancel)]
    if not cancels:
        return {}
    batch = {e.seq: e for e in events}
    wanted = sorted({c.target for c in cancels})
    targets = log.find({"_id": {"$in": [t for t in wanted if t not in batch]}})
    found = {e.seq: e async for e in _events(targets)}
    took: set[int] = set()
    if stored:
        takers = log.find({"took": {"$in": wanted}}, {"took": 1})
        took = {int(d["took"]) async for d in takers}
    out: dict[int, int] = {}
    for cancel in cancels:
        target = batch.get(cancel.target) or found.get(cancel.target)
        if cancel_failure(cancel, target, cancelled=cancel.target in took) is None:
            took.add(cancel.target)
            out[cancel.seq] = cancel.target
    return out


async def _events(cursor: Any) -> Any:
    async for doc in cursor:
        if "void" not in doc:
            yield event_of(doc)


async def decide_cancels(log: Any, counters: Any, r: str) -> None:
    """Record every cancel's outcome in a log written before ``took`` existed, once."""
    if await counters.find_one({"_id": r, _DECIDED: True}, {"_id": 1}) is not None:
        return
    cursor = log.find({"action": "cancel"}).sort([("_id", 1)])
    cancels = [e async for e in _events(cursor)]
    decided = await taken(log, cancels, stored=False)  # a killed run's marks are redone
    for cancel in cancels:
        target = decided.get(cancel.seq)
        change = {"$unset": {"took": ""}} if target is None else {"$set": {"took": target}}
        await log.update_one({"_id": cancel.seq}, change)
    await counters.update_one({"_id": r}, {"$set": {_DECIDED: True}}, upsert=True)
