"""Times: integer microseconds since the Unix epoch, UTC, everywhere inside.

Integers compare and index cheaply in every backend and never lose
precision; text appears only at the edges (RFC 3339 with ``Z`` out, RFC 3339
with an offset or epoch seconds in). RFC 3339 parsing is msgspec's strict
decoder, so no separate date library is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

import msgspec

from eventdocs.errors import ErrorDetail, InvalidRequest

__all__ = [
    "Clock",
    "ManualClock",
    "SystemClock",
    "format_time",
    "from_datetime",
    "parse_time",
    "to_datetime",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_SECONDS = re.compile(r"-?\d{1,12}(\.\d+)?")  # digits past micros are cut
_DATETIME = msgspec.json.Decoder(datetime)
# Far enough for any schedule, near enough that datetime can represent it.
MIN_TIME = -62135596800_000000
MAX_TIME = 253402300799_999999


def from_datetime(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def to_datetime(micros: int) -> datetime:
    """The aware UTC datetime of ``micros``."""
    return _EPOCH + timedelta(microseconds=micros)


def format_time(micros: int) -> str:
    """RFC 3339 in UTC with ``Z`` and six fraction digits (so text sorts as time)."""
    # gmtime beats datetime + strftime on this hot path, and pads years below 1000.
    seconds, fraction = divmod(micros, 1_000_000)
    t = time.gmtime(seconds)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{fraction:06d}Z"
    )


def parse_time(text: str, *, path: str = "time") -> int:
    """Parse RFC 3339 with an offset, or Unix epoch seconds (integer or decimal).

    Raises:
        InvalidRequest: with ``path`` naming the header or parameter.
    """
    text = text.strip()
    if _EPOCH_SECONDS.fullmatch(text):
        whole, _, frac = text.partition(".")
        sign = -1 if whole.startswith("-") else 1
        micros = int(whole) * 1_000_000 + sign * int((frac + "000000")[:6])
    else:
        try:
            value = _DATETIME.decode(msgspec.json.encode(text))
        except msgspec.ValidationError:
            value = None
        if value is None or value.tzinfo is None:
            raise InvalidRequest(
                f"{path} is not a time",
                [ErrorDetail(path, "expected RFC 3339 with an offset or Unix epoch seconds")],
            )
        micros = from_datetime(value)
    if not MIN_TIME <= micros <= MAX_TIME:
        raise InvalidRequest(f"{path} is out of range", [ErrorDetail(path, "time out of range")])
    return micros


class Clock(Protocol):
    """Where eventdocs reads "now" and waits for a time; injectable for tests."""

    def now(self) -> int:
        """The current time in microseconds since the epoch."""
        ...

    async def sleep_until(self, micros: int, wake: asyncio.Event) -> None:
        """Return at ``micros`` or as soon as ``wake`` is set, whichever is first."""
        ...


class SystemClock:
    """The wall clock; sleeps with the event loop's timer, not by polling."""

    def now(self) -> int:
        return time.time_ns() // 1000

    async def sleep_until(self, micros: int, wake: asyncio.Event) -> None:
        delay = min((micros - self.now()) / 1e6, 3600.0)
        if delay <= 0 or wake.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=delay)


class ManualClock:
    """A clock that moves only when told; sleepers wake when it passes their time."""

    def __init__(self, start: int = 1_700_000_000_000_000) -> None:
        self._now = start
        self._tick = asyncio.Event()

    def now(self) -> int:
        return self._now

    def advance(self, micros: int) -> None:
        """Move the clock forward by ``micros`` and wake every sleeper."""
        self.set(self._now + micros)

    def set(self, micros: int) -> None:
        """Move the clock to ``micros`` (never backwards) and wake every sleeper."""
        self._now = max(self._now, micros)
        self._tick.set()
        self._tick = asyncio.Event()

    async def sleep_until(self, micros: int, wake: asyncio.Event) -> None:
        while self._now < micros and not wake.is_set():
            tick, woken = (
                asyncio.ensure_future(self._tick.wait()),
                asyncio.ensure_future(wake.wait()),
            )
            try:
                await asyncio.wait({tick, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                tick.cancel()
                woken.cancel()
