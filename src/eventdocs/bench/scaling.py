"""Cost per operation against data size: what grows with the data, and what does not.

Each operation is timed at several sizes of the data it could depend on, on
a SQLite file, through the document API (:class:`eventdocs.documents.Documents`)
as the HTTP layer calls it; the figure that matters is the ratio of its cost
at the largest size to its cost at the smallest, measured in the same run:

* one document with 1 → 100,000 revisions: get, put, a backdated put just
  before its last revision, a revert, a cancel, a page of ``/revisions``;
* 0 → 100,000 scheduled writes pending: one more scheduled write, the
  ``_scheduled`` page in the middle, the pending count ``/healthz`` shows;
* 1,000 → 100,000 documents: get and query now (the master collection), as
  of a past time, and as known at a past time, each as a ratio to master;
* a get's p99 on the same event loop while another task runs the heaviest
  read (a query as known at a past time over every document), and while
  100,000 writes due at one instant are applied, with that activation's rate.

The clock is a manual one, so nothing waits for time to pass.
"""

# Each lambda in a loop below is awaited before the loop moves on:
# ruff: noqa: B023

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from eventdocs.bench.data import RESOURCE, TAGS, Workload, item_spec
from eventdocs.bench.measure import summary
from eventdocs.documents import Documents, Limits
from eventdocs.events import Draft
from eventdocs.query import Filter, Query, SortKey
from eventdocs.service import Service
from eventdocs.storage import open_store
from eventdocs.times import ManualClock

__all__ = ["SCALING_SIZES", "ScalingRun", "scaling_run", "table", "write_scaling_plot"]

_SECOND = 1_000_000
_T0 = 1_700_000_000_000_000

SCALING_SIZES: dict[str, dict[str, tuple[int, ...]]] = {
    "tiny": {"revisions": (1, 100, 1000), "pending": (0, 100, 1000), "documents": (100, 1000)},
    "default": {
        "revisions": (1, 1000, 10_000, 100_000),
        "pending": (0, 1000, 10_000, 100_000),
        "documents": (1000, 10_000, 100_000),
    },
}


class ScalingRun(msgspec.Struct):
    """Per operation, its p50 in µs at each size; and the loop's latency figures."""

    sizes: dict[str, list[int]]
    costs: dict[str, dict[int, float]] = {}
    loop: dict[str, dict[str, float]] = {}
    activation: dict[str, float] = {}

    def ratio(self, op: str) -> float:
        """Cost at the largest size over cost at the smallest."""
        by_size = self.costs[op]
        return by_size[max(by_size)] / by_size[min(by_size)]


async def _p50(
    call: Callable[[], Awaitable[Any]], samples: int, clock: ManualClock | None = None
) -> float:
    """The median cost of ``call`` in µs; with ``clock``, a millisecond passes before
    each, as between two requests to a server (no two writes share an instant)."""
    took = []
    for _ in range(samples):
        if clock is not None:
            clock.advance(1000)
        start = time.perf_counter()
        await call()
        took.append((time.perf_counter() - start) * 1e6)
    return summary(took)["p50"]


def _service(path: Path, clock: ManualClock) -> Service:
    store = open_store(str(path), clock=clock)
    limits = Limits(pending_per_resource=10**9)  # the sizes go past the default limit
    return Service(store, [item_spec()], clock=clock, limits=limits, background=False)


async def _load(service: Service, drafts: Sequence[Draft], clock: ManualClock) -> None:
    """Append ``drafts`` as recorded events (fast, like an import; one microsecond
    apart, so an immediate one's TOA is its own), then project them."""
    store = service.store
    seq = await store.last_seq(RESOURCE)
    for i in range(0, len(drafts), 20_000):
        chunk = drafts[i : i + 20_000]
        now = clock.now()
        events = [d.record(RESOURCE, seq + k + 1, now + k) for k, d in enumerate(chunk)]
        seq += len(events)
        await store.load(RESOURCE, events)
        clock.set(now + len(chunk) + 1)
    await service.projector.project(RESOURCE)


async def _deep_document(work: Path, sizes: Sequence[int], run: ScalingRun) -> None:
    clock = ManualClock(_T0)
    service = _service(work / "deep.db", clock)
    await service.start()
    docs = service.documents(RESOURCE)
    have = 0
    try:
        for n in sizes:
            body = {"n": 1, "price": 1.0}
            drafts = [Draft(action="create", id="deep", body={"title": "deep", "n": 0})][have:]
            drafts += [Draft(action="update", id="deep", body=body) for _ in range(max(have, 1), n)]
            await _load(service, drafts, clock)
            have = n
            last = clock.now() - 2  # the TOA of the document's latest loaded revision
            costs = run.costs
            costs.setdefault("get", {})[n] = await _p50(lambda: docs.get("deep"), 200)
            # As believed when revision n/2 was written, about now: every revision since
            # was recorded after that time.
            then = (await docs.at_revision("deep", max(1, n // 2))).known_from
            costs.setdefault("get as known at revision n/2", {})[n] = await _p50(
                lambda: docs.get("deep", known_at=then), 200
            )
            costs.setdefault("put", {})[n] = await _p50(
                lambda: docs.update("deep", {"n": 2}), 30, clock
            )
            costs.setdefault("backdated put", {})[n] = await _p50(
                lambda: docs.update("deep", {"n": 3}, toa=last), 10, clock
            )
            costs.setdefault("revert to revision 1", {})[n] = await _p50(
                lambda: docs.revert("deep", to_revision=1), 10, clock
            )

            async def cancel(docs: Documents = docs) -> None:
                result = await docs.update("deep", {"n": 4}, toa=clock.now() + 60 * _SECOND)
                clock.advance(1000)  # the cancel is another request
                await docs.cancel(result.event.seq)

            costs.setdefault("scheduled put + cancel", {})[n] = await _p50(cancel, 10, clock)
            costs.setdefault("/revisions page at offset n/2", {})[n] = await _p50(
                lambda: docs.revisions_page("deep", limit=50, offset=max(0, n // 2)), 20
            )
            mid = (await docs.revisions_page("deep", limit=1, offset=max(0, n // 2 - 1)))[1]
            costs.setdefault("/revisions page after n/2", {})[n] = await _p50(
                lambda: docs.revisions_page("deep", limit=50, after=mid[0].event.seq), 20
            )
    finally:
        await service.stop()


async def _pending(work: Path, sizes: Sequence[int], run: ScalingRun) -> None:
    clock = ManualClock(_T0)
    service = _service(work / "pending.db", clock)
    await service.start()
    docs = service.documents(RESOURCE)
    have = 0
    later = _T0 + 86_400 * _SECOND
    try:
        for n in sizes:
            drafts = [
                Draft(action="create", id=f"p{k:09d}", body={"title": "p"}, toa=later + k)
                for k in range(have, n)
            ]
            await _load(service, drafts, clock)
            have = n
            costs = run.costs
            costs.setdefault("scheduled write", {})[n] = await _p50(
                lambda: docs.create({"title": "s"}, toa=later + 10**9), 30
            )
            costs.setdefault("/_scheduled page at offset n/2", {})[n] = await _p50(
                lambda: docs.scheduled(limit=50, offset=n // 2), 10
            )
            mid = (await docs.scheduled(limit=1, offset=max(0, n // 2 - 1)))[1]
            after = mid[0].seq if mid else None
            costs.setdefault("/_scheduled page after n/2", {})[n] = await _p50(
                lambda: docs.scheduled(limit=50, after=after), 10
            )
            costs.setdefault("pending count (/healthz)", {})[n] = await _p50(
                lambda: service.store.count_pending(RESOURCE, now=clock.now()), 50
            )
    finally:
        await service.stop()


_QUERY = Query(
    filters=(Filter("tag", "equal", TAGS[3], "text"),),
    sort=(SortKey("n", True, "integer"),),
    limit=50,
)


async def _documents(work: Path, sizes: Sequence[int], run: ScalingRun) -> None:
    clock = ManualClock(_T0)
    service = _service(work / "documents.db", clock)
    await service.start()
    docs = service.documents(RESOURCE)
    have = 0
    try:
        for n in sizes:
            workload = Workload(documents=n, revisions=2)
            first = [d for d in workload.drafts() if d.action == "create"][have:]
            again = [d for d in workload.drafts() if d.action == "update"][have:]
            await _load(service, first, clock)
            clock.advance(10 * _SECOND)
            past = clock.now()
            clock.advance(10 * _SECOND)
            await _load(service, again, clock)
            clock.advance(10 * _SECOND)
            have = n
            target = workload.ids()[n // 2]
            costs = run.costs
            costs.setdefault("get now", {})[n] = await _p50(lambda: docs.get(target), 200)
            costs.setdefault("get as_of", {})[n] = await _p50(
                lambda: docs.get(target, as_of=past), 200
            )
            costs.setdefault("get known_at", {})[n] = await _p50(
                lambda: docs.get(target, known_at=past), 200
            )
            samples = 5 if n >= 50_000 else 20
            costs.setdefault("query now", {})[n] = await _p50(lambda: docs.query(_QUERY), samples)
            costs.setdefault("query as_of", {})[n] = await _p50(
                lambda: docs.query(_QUERY, as_of=past), samples
            )
            costs.setdefault("query known_at", {})[n] = await _p50(
                lambda: docs.query(_QUERY, known_at=past), samples
            )
        heaviest = lambda: docs.query(_QUERY, known_at=past)  # noqa: E731
        target = Workload(documents=have).ids()[have // 2]
        run.loop["get alone"] = await _loop_latency(lambda: docs.get(target), None)
        run.loop["get beside a query as known at"] = await _loop_latency(
            lambda: docs.get(target), heaviest
        )
        run.loop["get beside a query as of"] = await _loop_latency(
            lambda: docs.get(target), lambda: docs.query(_QUERY, as_of=past)
        )
    finally:
        await service.stop()


async def _loop_latency(
    point: Callable[[], Awaitable[Any]],
    heavy: Callable[[], Awaitable[Any]] | None,
    *,
    seconds: float = 3.0,
) -> dict[str, float]:
    """A point read every millisecond for ``seconds`` while ``heavy`` runs in a loop
    on the same event loop, as two clients of one server would; its latency in ms."""
    stop = asyncio.Event()
    heavy_runs = 0

    async def hammer() -> None:
        nonlocal heavy_runs
        while heavy is not None and not stop.is_set():
            await heavy()
            heavy_runs += 1

    task = asyncio.create_task(hammer())
    took = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        await asyncio.sleep(0.001)  # the request's arrival: waits for the loop too
        await point()
        took.append((time.perf_counter() - start) * 1e3 - 1.0)
    stop.set()
    await task
    return summary(took) | {"heavy_runs": float(heavy_runs)}


async def _activation(work: Path, due: int, run: ScalingRun) -> None:
    clock = ManualClock(_T0)
    service = _service(work / "activation.db", clock)
    await service.start()
    docs = service.documents(RESOURCE)
    at = _T0 + 3600 * _SECOND
    try:
        await docs.create({"title": "reader"})
        target = (await docs.query(Query(limit=1))).items[0].id
        drafts = [
            Draft(action="create", id=f"a{k:09d}", body={"title": "a", "n": k}, toa=at)
            for k in range(due)
        ]
        await _load(service, drafts, clock)
        clock.set(at + 1)
        start = time.perf_counter()
        projecting = asyncio.create_task(service.projector.project(RESOURCE))
        took = []
        while not projecting.done():
            begin = time.perf_counter()
            await asyncio.sleep(0.001)
            await docs.get(target)
            took.append((time.perf_counter() - begin) * 1e3 - 1.0)
        await projecting
        seconds = time.perf_counter() - start
        applied = (await docs.query(Query(limit=1))).total - 1
        run.activation = {
            "due": float(due),
            "applied": float(applied),
            "seconds": seconds,
            "rate": applied / seconds,
        }
        run.loop["get during a mass activation"] = summary(took)
    finally:
        await service.stop()


async def scaling_run(work: Path, size: str = "default") -> ScalingRun:
    """Every measurement of this module at ``size`` (``tiny`` or ``default``)."""
    sizes = SCALING_SIZES[size]
    run = ScalingRun(sizes={k: list(v) for k, v in sizes.items()})
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    await _deep_document(work, sizes["revisions"], run)
    await _pending(work, sizes["pending"], run)
    await _documents(work, sizes["documents"], run)
    await _activation(work, max(sizes["pending"]), run)
    return run


def table(run: ScalingRun) -> str:
    """The results as a markdown table: p50 per size and the ratio largest/smallest."""
    lines = []
    groups = (
        ("revisions of the document", ("get", "get as known at revision n/2", "put",
                                       "backdated put", "revert to revision 1",
                                       "scheduled put + cancel", "/revisions page at offset n/2",
                                       "/revisions page after n/2")),
        ("writes pending", ("scheduled write", "/_scheduled page at offset n/2",
                            "/_scheduled page after n/2", "pending count (/healthz)")),
        ("documents", ("get now", "get as_of", "get known_at", "query now", "query as_of",
                       "query known_at")),
    )  # fmt: skip
    for what, ops in groups:
        sizes = sorted({n for op in ops for n in run.costs.get(op, {})})
        lines.append(f"| operation \\ {what} | " + " | ".join(f"{n:,}" for n in sizes)
                     + " | largest / smallest |")  # fmt: skip
        lines.append("|---" * (len(sizes) + 2) + "|")
        for op in ops:
            cells = [_us(run.costs[op].get(n)) for n in sizes]
            lines.append(f"| {op} | " + " | ".join(cells) + f" | {run.ratio(op):.2f}x |")
        lines.append("")
    biggest = max(run.costs["get now"])
    lines.append(f"| at {biggest:,} documents | p50 | ratio to master |")
    lines.append("|---|---|---|")
    for op, master in (("get as_of", "get now"), ("get known_at", "get now"),
                       ("query as_of", "query now"), ("query known_at", "query now")):  # fmt: skip
        value = run.costs[op][biggest]
        lines.append(f"| {op} | {_us(value)} | {value / run.costs[master][biggest]:.2f}x |")
    lines.append("")
    lines.append("| a get on the same event loop | p50 | p99 | max |")
    lines.append("|---|---|---|---|")
    for name, s in run.loop.items():
        lines.append(f"| {name} | {s['p50']:.2f} ms | {s['p99']:.2f} ms | {s['max']:.1f} ms |")
    a = run.activation
    if a:
        lines.append("")
        lines.append(
            f"Mass activation: {a['applied']:,.0f} of {a['due']:,.0f} writes due at one instant"
            f" applied in {a['seconds']:.2f} s ({a['rate']:,.0f} events/s)."
        )
    return "\n".join(lines) + "\n"


def _us(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e3:.2f} ms" if value >= 1000 else f"{value:.0f} µs"


def write_scaling_plot(run: ScalingRun, out: Path) -> Path | str:
    """A log-log plot of cost against size per operation, or why there is none."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no scaling plot"
    fig, ax = plt.subplots(figsize=(8, 5))
    styles = ["-", "--", ":", "-."]
    for i, (op, by_size) in enumerate(run.costs.items()):
        sizes = sorted(n for n in by_size if n > 0)
        if len(sizes) > 1:
            ax.plot(
                sizes,
                [by_size[n] for n in sizes],
                marker="o",
                linestyle=styles[i // 10 % len(styles)],
                label=op,
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("data size (revisions, pending writes or documents)")
    ax.set_ylabel("p50 per operation (µs)")
    ax.set_title("eventdocs: cost per operation against data size")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = out / "scaling.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
