"""Live projection lag: how long after a write takes effect it is in the master
collection, under sustained concurrent writes with scheduled ones coming due.

A real :class:`~eventdocs.service.Service` on the real
:class:`~eventdocs.times.SystemClock`, its scheduler running: ``writers``
tasks create documents through the document API (decided writes) for
``seconds``, one write in ``scheduled_every`` scheduled 0.2 to 1 s ahead. A
write takes effect when its append is answered (immediate) or at its TOA
(scheduled). It is in the master collection from the first projection that
reached it: a projector step or the append's own transaction, stamped when
the projector tells its listeners (``Projector.listen``). The lag is the
difference, 0 when the append's own transaction projected it. Lags are
reported per second of the run, so growth shows.

"Not growing" compares the median of the per-second p99 over the last third
of the seconds with the first third's: on a shared machine a second of stolen
CPU makes one spike, and a mean over twenty seconds moves with one spike
where the level of the lag has not moved. The CPU time the hypervisor stole
during each second (``/proc/stat``, Linux) is reported beside the lags, so a
spike can be told from a trend.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import statistics
import time
from collections.abc import Callable

import msgspec

from eventdocs.bench.append import open_bench_store
from eventdocs.bench.data import RESOURCE, TAGS, item_spec
from eventdocs.bench.measure import Figure, cpu_ticks, percentile, stolen, summary
from eventdocs.service import Service
from eventdocs.times import SystemClock

__all__ = ["LiveRun", "live_figure", "live_run"]


class LiveRun(msgspec.Struct, frozen=True):
    """Lags in ms of every write of a ``seconds`` run, and their p99 per second."""

    writers: int
    seconds: float
    writes: int
    scheduled: int
    lag: dict[str, float]
    lag_scheduled: dict[str, float]
    p99_by_second: list[float]
    p50_by_second: list[float]
    unprojected: int
    timer: dict[str, float]  # the event loop's own lateness under the same load (ms)
    steal: float | None = None  # % of CPU time stolen during the load (None: not Linux)
    steal_by_second: list[float] = []

    @property
    def growth(self) -> float:
        """The median per-second p99 of the last third of the run over the first third's."""
        return self._last_over_first(statistics.median)

    @property
    def growth_of_means(self) -> float:
        """The same with means, which a single spike second moves."""
        return self._last_over_first(statistics.fmean)

    def _last_over_first(self, average: Callable[[list[float]], float]) -> float:
        thirds = max(len(self.p99_by_second) // 3, 1)
        first, last = self.p99_by_second[:thirds], self.p99_by_second[-thirds:]
        if not first:
            return 1.0
        return average(last) / max(average(first), 1e-9)


def _now() -> int:
    return time.time_ns() // 1000


async def live_run(
    url: str, *, writers: int = 64, seconds: float = 20.0, scheduled_every: int = 5, seed: int = 5
) -> LiveRun:
    """Run the load for ``seconds`` and measure each write's projection lag."""
    reached: list[tuple[int, int, int]] = []  # (seq, toa, when), in the order reached
    store = await open_bench_store(url)
    service = Service(store, [item_spec()], clock=SystemClock())
    service.projector.listen(lambda _, cp: reached.append((cp.seq, cp.toa, _now())))
    writes: list[tuple[int, int, int, bool]] = []  # (seq, toa, takes effect, scheduled)
    scheduled = 0
    lateness: list[float] = []
    steal_by_second: list[float] = []
    cpu_start = cpu_end = None
    try:
        await service.start()
        documents = service.documents(RESOURCE)
        stop_at = time.monotonic() + seconds

        async def writer(w: int) -> None:
            nonlocal scheduled
            rng = random.Random(seed + w)
            i = 0
            while time.monotonic() < stop_at:
                i += 1
                toa = None
                if i % scheduled_every == 0:
                    toa = _now() + int(rng.uniform(0.2, 1.0) * 1e6)
                    scheduled += 1
                body = {"title": f"w{w}-{i}", "n": i, "tag": TAGS[i % len(TAGS)]}
                event = (await documents.create(body, toa=toa)).event
                writes.append((event.seq, event.toa, max(_now(), event.toa), toa is not None))

        async def probe() -> None:  # how late a sleeper wakes under this load
            rng = random.Random(seed)
            while time.monotonic() < stop_at:
                delay = rng.uniform(0.0005, 0.005)
                started = time.perf_counter()
                await asyncio.sleep(delay)
                lateness.append((time.perf_counter() - started - delay) * 1e3)

        async def watch_cpu() -> None:  # the CPU time stolen from this machine, by second
            last = cpu_ticks()
            while time.monotonic() < stop_at:
                await asyncio.sleep(1.0)
                now = cpu_ticks()
                if (share := stolen(last, now)) is not None:
                    steal_by_second.append(share)
                last = now

        cpu_start = cpu_ticks()
        await asyncio.gather(probe(), watch_cpu(), *(writer(w) for w in range(writers)))
        cpu_end = cpu_ticks()
        last_toa = max((w[1] for w in writes), default=0)
        for _ in range(200):  # the last scheduled writes come due, then a margin
            if _now() > last_toa + 2_000_000 or _all_reached(reached, writes):
                break
            await asyncio.sleep(0.05)
    finally:
        await service.stop()
    run = _lags(writers, seconds, writes, scheduled, reached, lateness)
    return msgspec.structs.replace(
        run, steal=stolen(cpu_start, cpu_end), steal_by_second=steal_by_second
    )


def _all_reached(
    reached: list[tuple[int, int, int]], writes: list[tuple[int, int, int, bool]]
) -> bool:
    if not reached or not writes:
        return not writes
    seq, toa = max(w[0] for w in writes), max(w[1] for w in writes)
    return max(r[0] for r in reached) >= seq and max(r[1] for r in reached) >= toa


def _lags(
    writers: int,
    seconds: float,
    writes: list[tuple[int, int, int, bool]],
    scheduled: int,
    reached: list[tuple[int, int, int]],
    lateness: list[float],
) -> LiveRun:
    """Each write's lag: the first checkpoint covering both its seq and its time."""
    reached = sorted(reached, key=lambda r: r[2])
    seqs, toas, whens = [], [], []
    top_seq = top_toa = -(2**62)
    for seq, toa, when in reached:  # checkpoints only move forward: keep the running max
        top_seq, top_toa = max(top_seq, seq), max(top_toa, toa)
        seqs.append(top_seq)
        toas.append(top_toa)
        whens.append(when)
    start = min((w[2] for w in writes), default=0)
    lags: list[float] = []
    lags_scheduled: list[float] = []
    by_second: dict[int, list[float]] = {}
    unprojected = 0
    for seq, toa, effective, is_scheduled in writes:
        at = max(bisect.bisect_left(seqs, seq), bisect.bisect_left(toas, toa))
        if at >= len(whens):
            unprojected += 1
            continue
        lag = max(0.0, (whens[at] - effective) / 1e3)
        lags.append(lag)
        if is_scheduled:
            lags_scheduled.append(lag)
        by_second.setdefault(int((effective - start) / 1e6), []).append(lag)
    # The seconds of the load only: after it, only the last scheduled writes come due.
    seconds_seen = [s for s in sorted(by_second) if s < int(seconds)] or sorted(by_second)
    return LiveRun(
        writers,
        seconds,
        len(writes),
        scheduled,
        summary(lags),
        summary(lags_scheduled),
        [percentile(by_second[s], 99) for s in seconds_seen],
        [percentile(by_second[s], 50) for s in seconds_seen],
        unprojected,
        summary(lateness),
    )


def _steal_notes(run: LiveRun) -> str:
    """Stolen CPU by third of the run, and how the per-second p99 follows it."""
    steal, p99 = run.steal_by_second, run.p99_by_second
    if len(steal) < 3:
        return ""
    thirds = len(steal) // 3
    first, last = statistics.fmean(steal[:thirds]), statistics.fmean(steal[-thirds:])
    text = f" (first third {first:.0f}%, last third {last:.0f}%"
    n = min(len(steal), len(p99))
    if n >= 3 and len(set(steal[:n])) > 1 and len(set(p99[:n])) > 1:
        r = statistics.correlation(steal[:n], p99[:n])
        text += f"; per-second p99 against it: r = {r:.2f}"
    return text + ")"


def live_figure(run: LiveRun) -> Figure:
    """The suite's figure: the p99 lag, against 50 ms and not growing over the run."""
    growth = run.growth
    notes = (
        f"{run.writes:,} writes in {run.seconds:g} s ({run.scheduled:,} scheduled 0.2 to 1 s"
        f" ahead), {run.writers} writers; p50 {run.lag['p50']:.1f} ms, max"
        f" {run.lag['max']:.1f} ms; scheduled writes p99 {run.lag_scheduled['p99']:.1f} ms;"
        f" median p99 of the last third of the seconds {growth:.2f}x the first third's"
        f" (means: {run.growth_of_means:.2f}x)"
    )
    if run.steal is not None:
        notes += f"; CPU stolen by the hypervisor {run.steal:.1f}%" + _steal_notes(run)
    if run.unprojected:
        notes += f"; {run.unprojected} never projected"
    return Figure(
        key="live_lag_p99",
        value=run.lag["p99"],
        unit="ms",
        better="lower",
        title=f"live projection lag under {run.writers} writers (p99)",
        limit=run.timer["p99"],
        limit_title="event-loop timer lateness under the same load, p99",
        target="≤ 50 ms, not growing",
        met=run.lag["p99"] <= 50 and growth <= 1.5 and not run.unprojected,
        notes=notes,
    )
