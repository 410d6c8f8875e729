"""The writes a resource has pending, as the store that decides appends keeps them.

The SQLite writer keeps one per resource in its thread and checks
``--max-pending`` in the append's transaction; a MongoDB process keeps one
per resource, caught up from the log before each allocation it checks
(:mod:`eventdocs.storage.mongodb.schedule`).
"""

from __future__ import annotations

import heapq
import threading

from eventdocs.events import Event

__all__ = ["Pending"]


class Pending:
    """A resource's scheduled writes not yet due and not cancelled: counted in
    O(1) amortized, so a limit on them is checked where the append is decided.

    Built once from the log (one range scan), then kept by every event added:
    a scheduled write is added, the write a cancel took leaves, and writes
    whose TOA has passed leave through a heap ordered by TOA. ``count`` moves
    the clock forward only: it is asked at non-decreasing times.
    """

    def __init__(self, rows: list[tuple[int, int, str]]) -> None:
        self.live: dict[int, tuple[int, str]] = {seq: (toa, id) for toa, seq, id in rows}
        self.heap = [(toa, seq) for toa, seq, _ in rows]
        heapq.heapify(self.heap)
        self.lock = threading.Lock()

    def count(self, now: int) -> int:
        with self.lock:
            while self.heap and self.heap[0][0] <= now:
                _, seq = heapq.heappop(self.heap)
                self.live.pop(seq, None)
            return len(self.live)

    def add(self, event: Event, took: int | None = None) -> None:
        """Count ``event`` in: a scheduled write is added, the write a cancel took leaves."""
        with self.lock:
            if took is not None:
                self.live.pop(took, None)
            elif event.toa > event.recorded_at:
                self.live[event.seq] = (event.toa, event.id)
                heapq.heappush(self.heap, (event.toa, event.seq))
