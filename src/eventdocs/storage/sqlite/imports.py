"""An exported log loaded into SQLite (``eventdocs import``), checked as it goes.

One call in the writer's transaction, so one transaction however long the
file: a refusal, an interrupt or a kill -9 part way leaves the store as it
was. SQLite spills the transaction's pages to the WAL, so memory stays
bounded. Each event must continue its resource's log
(:mod:`eventdocs.storage.loading`); resources it names are created.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Container, Iterable
from typing import Any

from eventdocs.errors import DeclarationError, InvalidRequest
from eventdocs.events import Cancel, Event, encode_event
from eventdocs.storage.loading import check_cancel, check_next
from eventdocs.storage.sqlite.cancels import taken
from eventdocs.storage.sqlite.ordinals import Ordinals
from eventdocs.storage.sqlite.schema import (
    _RESERVED,
    _RESOURCE_SCHEMA,
    _name,
    _run_script,
    _Sql,
)
from eventdocs.storage.sqlite.writer import _Writer

__all__ = ["load_log"]


def load_log(
    c: sqlite3.Connection,
    writer: _Writer,
    events: Iterable[Event],
    *,
    known: Container[str],
    created: set[str],
    stop: threading.Event,
) -> dict[str, int]:
    """Insert ``events`` (checked) in the open transaction; the count per resource.

    Resources not in ``known`` are created and added to ``created``; ``stop``
    set (the caller was cancelled) refuses the rest, so the writer rolls back.
    """
    counts: dict[str, int] = {}
    tails: dict[str, tuple[int, int | None]] = {}
    pending: dict[str, list[tuple[Any, ...]]] = {}
    sql: dict[str, _Sql] = {}
    ordinals: dict[str, Ordinals] = {}

    def flush(r: str) -> None:
        if pending.get(r):
            c.executemany(sql[r].insert_event, pending.pop(r))

    for e in events:
        if stop.is_set():
            raise InvalidRequest("the import was interrupted; nothing was written")
        r = e.resource
        if r not in tails:
            if r not in known:
                if _RESERVED.search(_name(r, "resource")):
                    raise DeclarationError(f"resource name {r!r} is reserved")
                _run_script(_RESOURCE_SCHEMA.format(r=r).split(";"), c)
                created.add(r)
            sql[r] = _Sql(r)
            ordinals[r] = Ordinals(c, sql[r])
            writer.forget(r)  # appends after this must see these events
            last, recorded = writer.tail(c, r)
            tails[r] = (last, recorded if last else None)
        check_next(e, *tails[r])
        target = None
        if isinstance(e, Cancel):
            flush(r)
            found = c.execute(sql[r].read_event.replace("data", "id, action"), (e.target,))
            check_cancel(e, found.fetchone())
            target = taken(c, sql[r], e)
        rows = pending.setdefault(r, [])
        rows.append((e.seq, e.id, e.action, e.toa, e.recorded_at, target,
                     encode_event(e).decode(), ordinals[r].add(e.id, e.seq)))  # fmt: skip
        if len(rows) >= 5000:
            flush(r)
        tails[r] = (e.seq, e.recorded_at)
        counts[r] = counts.get(r, 0) + 1
    for r in list(pending):
        flush(r)
    return counts
