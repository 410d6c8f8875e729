"""Leases: which of the processes sharing one store leads scheduling.

Every process projects on its own after its own writes (read-your-writes);
the store makes concurrent projection safe (each step is applied once). But
only a process's own appends wake its scheduler, so with several processes
one of them must also look for writes the others scheduled: the leader.

A lease is a row in the store with a holder and an expiry. The leader renews
it every ``ttl / 3`` seconds; when it dies the row expires and another
process takes it over within ``ttl`` seconds (plus one renewal period).
Expiry uses each host's wall clock, so hosts must keep their clocks within a
fraction of ``ttl`` (NTP does). A leader that cannot renew in time steps down
before its lease can expire elsewhere, so two leaders overlap only when
clocks are skewed; even then nothing is applied twice (the store guards each
projection step), the only cost is duplicate work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["Lease", "LeaseBackend", "lease_for"]

log = logging.getLogger("eventdocs.lease")


@runtime_checkable
class LeaseBackend(Protocol):
    """A store that can hold leases (the MongoDB store); single-process stores need none."""

    async def claim_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Hold ``name`` for ``ttl`` seconds if it is free, expired or already ours."""
        ...

    async def release_lease(self, name: str, holder: str) -> None:
        """Give ``name`` up at once if ``holder`` holds it."""
        ...


class Lease:
    """Leadership of ``name``, kept by a background task; :attr:`held` says if we lead."""

    def __init__(
        self,
        backend: LeaseBackend,
        name: str = "scheduler",
        *,
        ttl: float = 5.0,
        holder: str | None = None,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.backend = backend
        self.name = name
        self.ttl = ttl
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.on_change = on_change
        self.held = False
        self._valid_until = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def leading(self) -> bool:
        """Held, and renewed recently enough that no one else can have taken it."""
        return self.held and time.monotonic() < self._valid_until

    async def renew(self) -> bool:
        """Claim or renew once; return whether we lead."""
        started = time.monotonic()
        try:
            held = await self.backend.claim_lease(self.name, self.holder, self.ttl)
        except Exception:
            log.warning("lease %s: renewal failed", self.name, exc_info=True)
            held = self.held and time.monotonic() < self._valid_until
        else:
            if held:
                # Counted from before the call: the store may have stamped it later.
                self._valid_until = started + self.ttl * 0.8
        self._set(held)
        return held

    def _set(self, held: bool) -> None:
        if held != self.held:
            self.held = held
            log.info("lease %s: %s by %s", self.name, "taken" if held else "lost", self.holder)
            if self.on_change is not None:
                self.on_change(held)

    async def start(self) -> None:
        """Try to lead now, then keep trying (or renewing) in the background."""
        await self.renew()
        self._task = asyncio.create_task(self._run(), name=f"eventdocs-lease-{self.name}")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            await self.renew()

    async def stop(self) -> None:
        """Stop renewing and hand the lease over at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.held:
            with contextlib.suppress(Exception):
                await self.backend.release_lease(self.name, self.holder)
            self._set(False)


def lease_for(
    store: object,
    name: str = "scheduler",
    *,
    ttl: float = 5.0,
    on_change: Callable[[bool], None] | None = None,
) -> Lease | None:
    """A lease on ``store`` if several processes may share it, else ``None``."""
    if isinstance(store, LeaseBackend):
        return Lease(store, name, ttl=ttl, on_change=on_change)
    return None
