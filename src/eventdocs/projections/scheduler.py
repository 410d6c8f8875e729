"""The scheduler: runs the projector when a scheduled write comes due.

It sleeps exactly until the earliest pending TOA of any resource and is woken
early by :meth:`Scheduler.notify` (called after an append that scheduled a
write before that TOA), so a write
takes effect within milliseconds of its TOA without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from eventdocs.projections.lease import Lease
from eventdocs.projections.projector import Projector
from eventdocs.times import MAX_TIME

__all__ = ["Scheduler"]

log = logging.getLogger("eventdocs.scheduler")


class Scheduler:
    """The background task that keeps every resource projected at "now"."""

    def __init__(
        self,
        projector: Projector,
        resources: Sequence[str],
        *,
        lease: Lease | None = None,
        poll: float = 1.0,
    ) -> None:
        self.projector = projector
        self.lease = lease
        self.poll = poll
        self.resources = list(resources)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.next_toa: int | None = None
        self._sleeping_until: int | None = None  # set only while it sleeps
        self.retry_delay = 0.5
        self._watcher: asyncio.Task[None] | None = None

    def notify(self, toa: int | None = None) -> None:
        """Something was appended (a write scheduled at ``toa``): look again at what
        is due and when.

        While the scheduler sleeps until no later than ``toa`` there is nothing
        to look at: it wakes in time and reads the store then. Under many
        scheduled appends this spares a projection step and a read of the next
        TOA per append, which would hold up the steps of writes coming due.
        """
        if toa is not None and self._sleeping_until is not None and toa >= self._sleeping_until:
            return
        self._wake.set()

    async def start(self) -> None:
        """Catch up every resource, then keep them current in the background."""
        if self.lease is not None:
            await self.lease.start()
        # A store that can tell of other processes' appends (MongoDB's change
        # streams) wakes the leader at once; otherwise the leader polls.
        watch = getattr(self.projector.store, "watch_appends", None)
        if watch is not None and self.lease is not None:
            self._watcher = await watch(self._appended)
        await self.run_once()
        self._task = asyncio.create_task(self._run(), name="eventdocs-scheduler")

    def _appended(self) -> None:
        """Some process appended: the leader looks at what is due."""
        if self.lease is not None and self.lease.leading:
            self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.lease is not None:
            await self.lease.stop()

    async def run_once(self) -> int | None:
        """Project every resource at now; return the next TOA to wake at."""
        store = self.projector.store
        wake_at: int | None = None
        for resource in self.resources:
            checkpoint = await self.projector.project(resource)
            nxt = await store.next_toa(resource, after_toa=checkpoint.toa, max_seq=checkpoint.seq)
            if nxt is not None and (wake_at is None or nxt < wake_at):
                wake_at = nxt
        self.next_toa = wake_at
        return wake_at

    async def _run(self) -> None:
        clock = self.projector.clock
        while not self._stopping:
            self._wake.clear()
            try:
                wake_at = await self.run_once()
            except Exception:
                # A failing store must not kill the scheduler: log and retry soon.
                log.exception("projection failed; retrying")
                wake_at = clock.now() + int(self.retry_delay * 1e6)
            if self.lease is not None and self.lease.leading:
                # Other processes' appends do not notify this one: look again soon
                # (rarely when a change stream tells of them, in case it missed one).
                poll = self.poll if self._watcher is None else 10 * self.poll
                poll_at = clock.now() + int(poll * 1e6)
                wake_at = poll_at if wake_at is None else min(wake_at, poll_at)
            self._sleeping_until = MAX_TIME if wake_at is None else wake_at
            try:
                await clock.sleep_until(self._sleeping_until, self._wake)
            finally:
                self._sleeping_until = None
