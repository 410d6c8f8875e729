"""Activation lag: how long after its TOA a scheduled write is in the master collection.

A real :class:`~eventdocs.service.Service` on the real
:class:`~eventdocs.times.SystemClock` with its background scheduler. ``pending``
scheduled creates are appended with TOAs spread over ``window`` seconds;
the lag of each is the time its master row was committed (stamped right
after the store's ``write_projection`` returns) minus its TOA. The limit is
how late the event loop's own timer wakes a sleeper in the same process:
no scheduler that sleeps on it can do better.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import random
import time
from typing import Any, cast

import msgspec

from eventdocs.bench.append import open_bench_store
from eventdocs.bench.data import RESOURCE, TAGS, batches, item_spec
from eventdocs.bench.measure import summary
from eventdocs.events import Draft
from eventdocs.service import Service
from eventdocs.storage import EventStore, ProjectionBatch
from eventdocs.times import SystemClock

__all__ = ["ActivationRun", "activation_run", "timer_lateness"]


class ActivationRun(msgspec.Struct, frozen=True):
    """Lags in ms of ``pending`` scheduled writes, and the timer's own lateness in ms."""

    pending: int
    window: float
    lags_ms: list[float]
    lag: dict[str, float]
    timer: dict[str, float]
    missed: int
    appended_before_first_toa: bool


def _now() -> int:
    return time.time_ns() // 1000


class _Stamping:
    """The store, noting when each document's master row was first committed."""

    def __init__(self, inner: EventStore, stamps: dict[str, int]) -> None:
        self._inner = inner
        self._stamps = stamps
        self.waiting: set[str] = set()
        self.all_done = asyncio.Event()
        self.by_toa: list[tuple[int, str]] = []  # for batches that apply due writes in SQL

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def write_projection(self, resource: str, batch: ProjectionBatch) -> None:
        await self._inner.write_projection(resource, batch)
        now = _now()
        ids = [doc.id for doc in batch.upserts]
        if batch.due is not None:  # the store applied the writes due in this window
            after, until, _ = batch.due
            start = bisect.bisect_right(self.by_toa, (after, "\uffff"))
            end = bisect.bisect_right(self.by_toa, (until, "\uffff"))
            ids += [doc_id for _, doc_id in self.by_toa[start:end]]
        for doc_id in ids:
            self._stamps.setdefault(doc_id, now)
            self.waiting.discard(doc_id)
        if not self.waiting:
            self.all_done.set()


async def timer_lateness(samples: int = 200, seed: int = 11) -> list[float]:
    """How late (ms) ``wait_for(event.wait(), timeout)`` returns, for short timeouts."""
    rng = random.Random(seed)
    wake = asyncio.Event()
    late = []
    for _ in range(samples):
        delay = rng.uniform(0.0005, 0.005)
        start = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=delay)
        late.append((time.perf_counter() - start - delay) * 1e3)
    return late


async def activation_run(url: str, *, pending: int, window: float, seed: int = 13) -> ActivationRun:
    """Schedule ``pending`` creates over ``window`` seconds and measure each one's lag."""
    rng = random.Random(seed)
    stamps: dict[str, int] = {}
    store = await open_bench_store(url)
    stamping = _Stamping(store, stamps)
    service = Service(cast(EventStore, stamping), [item_spec()], clock=SystemClock())
    try:
        await service.start()
        timer = await timer_lateness()
        lead = 1.0 + pending * 50e-6  # time to append them all before the first is due
        first = _now() + int(lead * 1e6)
        toas = {f"due{i:07d}": first + int(rng.uniform(0, window) * 1e6) for i in range(pending)}
        drafts = (
            Draft(
                action="create",
                id=doc_id,
                body={"title": doc_id, "n": i, "tag": TAGS[i % len(TAGS)]},
                toa=toa,
            )
            for i, (doc_id, toa) in enumerate(toas.items())
        )
        for call in batches(drafts, 1000):
            await store.append(RESOURCE, call)
        in_time = _now() < min(toas.values())
        stamping.waiting = set(toas)
        stamping.by_toa = sorted((toa, doc_id) for doc_id, toa in toas.items())
        stamping.all_done.clear()
        service.scheduler.notify()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stamping.all_done.wait(), timeout=lead + window + 30)
    finally:
        await service.stop()
    lags = [(stamps[k] - toa) / 1e3 for k, toa in toas.items() if k in stamps]
    return ActivationRun(
        pending,
        window,
        lags,
        summary(lags),
        summary(timer),
        pending - len(lags),
        in_time,
    )
