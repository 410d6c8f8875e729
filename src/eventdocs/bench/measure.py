"""What every benchmark reports: a figure beside a limit measured in the same run.

A figure alone says little on an unknown machine; next to the rate raw
SQLite reaches on the same rows (or the latency of the same read without
time travel) it says how much eventdocs itself costs.
"""

from __future__ import annotations

import math
import os
import platform
import sqlite3
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import msgspec

__all__ = [
    "Figure",
    "Timer",
    "machine",
    "percentile",
    "rate",
    "summary",
]

Better = Literal["higher", "lower"]


class Figure(msgspec.Struct, kw_only=True):
    """One measured figure of eventdocs and the limit it is compared with.

    ``ratio`` is ``value / limit`` (for a rate: the share of the limit reached;
    for a latency: how many times slower than the limit). ``target`` states
    the goal in words; ``met`` says whether the figure reaches it.
    """

    key: str
    title: str
    value: float
    unit: str
    limit: float | None = None
    limit_title: str = ""
    target: str = ""
    met: bool | None = None
    better: Better = "higher"
    notes: str = ""
    extra: dict[str, Any] = {}

    @property
    def ratio(self) -> float | None:
        if self.limit is None or not self.limit:
            return None
        return self.value / self.limit


class Comparison(msgspec.Struct, kw_only=True):
    """The same workload on eventdocs and on the eventsourcing library."""

    key: str
    title: str
    unit: str
    eventdocs: float
    peer: float
    target_ratio: float
    notes: str = ""

    @property
    def ratio(self) -> float:
        return self.eventdocs / self.peer if self.peer else math.inf

    @property
    def met(self) -> bool:
        return self.ratio >= self.target_ratio


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    seconds: float = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def rate(count: int, seconds: float) -> float:
    """Items per second (never divides by zero)."""
    return count / max(seconds, 1e-9)


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by linear interpolation; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99, max and mean of latencies (same unit as given)."""
    return {
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
        "mean": sum(values) / len(values) if values else math.nan,
        "n": float(len(values)),
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "platform": platform.platform(),
        "cpu": _cpu(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "eventdocs": _version("eventdocs"),
        "eventsourcing": _version("eventsourcing"),
        "msgspec": _version("msgspec"),
        "load_average": _load(),
    }


_STAT = Path("/proc/stat")


def cpu_ticks() -> tuple[int, int] | None:
    """(stolen, total) CPU ticks of the machine so far, or None off Linux.

    A virtual machine's hypervisor steals CPU for other tenants: the share of
    time stolen while a figure was measured says how much of it was the machine.
    """
    try:
        fields = _STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal [guest guest_nice]: guest
    # time is counted in user time already.
    ticks = [int(x) for x in fields[1:9]]
    return ticks[7], sum(ticks)


def stolen(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The % of CPU time stolen between two :func:`cpu_ticks`."""
    if before is None or after is None or after[1] == before[1]:
        return None
    return 100 * (after[0] - before[0]) / (after[1] - before[1])


def _load() -> float | None:
    """The 1-minute load average: figures from a busy machine are pessimistic."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None
