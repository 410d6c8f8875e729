"""The suite ``eventdocs bench`` runs: every benchmark, its limit, the peer, the outputs.

Three sizes: ``tiny`` (seconds, for the test suite), ``default`` (about a
minute) and ``full`` (the issue's sizes: 1,000,000 events rebuilt, 100,000
documents queried, 10,000 writes pending). Stores live in a temporary
directory inside ``--out`` by default, so that fsync costs what it costs on
the disk the results describe (a tmpfs ``/tmp`` would flatter durable append).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console

from eventdocs.bench.activation import activation_run
from eventdocs.bench.append import append_limits, append_run
from eventdocs.bench.data import Workload
from eventdocs.bench.live import live_figure, live_run
from eventdocs.bench.measure import Comparison, Figure, cpu_ticks, machine, stolen
from eventdocs.bench.reads import asof_run, query_run
from eventdocs.bench.rebuild import rebuild_only, workload_limits, workload_run
from eventdocs.bench.report import Results, write_json, write_markdown, write_plots
from eventdocs.bench.scaling import scaling_run, write_scaling_plot

__all__ = ["BENCHMARKS", "SIZES", "Options", "Sizes", "run_suite"]

BENCHMARKS = ("append", "workload", "asof", "query", "activation", "live", "scaling", "http")


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark does."""

    writers: tuple[int, ...]
    rounds: dict[int, int]  # batch size -> calls per writer
    documents: int  # the append-then-rebuild workload (and its peer run)
    revisions: int
    batch: int
    peer_single: int  # events the batch-of-1 peer comparison appends
    depths: tuple[int, ...]
    samples: int
    query_documents: int
    query_revisions: int
    query_samples: int
    pending: int
    window: float
    live_seconds: float  # the live projection run, under 64 writers


SIZES = {
    "tiny": Sizes(
        writers=(1, 64),
        rounds={1: 3, 100: 1},
        documents=300,
        revisions=10,
        batch=100,
        peer_single=30,
        depths=(10, 100, 1000),
        samples=100,
        query_documents=1000,
        query_revisions=5,
        query_samples=5,
        pending=200,
        window=0.5,
        live_seconds=2.0,
    ),
    "default": Sizes(
        writers=(1, 4, 16, 64),
        rounds={1: 100, 100: 10},
        documents=10_000,
        revisions=10,
        batch=100,
        peer_single=200,
        depths=(10, 100, 1000, 10_000),
        samples=1000,
        query_documents=10_000,
        query_revisions=5,
        query_samples=30,
        pending=2000,
        window=3.0,
        live_seconds=10.0,
    ),
    "full": Sizes(
        writers=(1, 4, 16, 64),
        rounds={1: 300, 100: 30},
        documents=100_000,
        revisions=10,
        batch=100,
        peer_single=500,
        depths=(10, 100, 1000, 10_000),
        samples=2000,
        query_documents=100_000,
        query_revisions=5,
        query_samples=30,
        pending=10_000,
        window=10.0,
        live_seconds=60.0,
    ),
}


@dataclass
class Options:
    """What ``eventdocs bench`` was asked for."""

    size: str = "default"
    out: Path = Path("benchmarks/results")
    workdir: Path | None = None
    only: tuple[str, ...] = ()
    peer: bool = True
    http: bool = True

    def wants(self, name: str) -> bool:
        return not self.only or name in self.only


def run_suite(options: Options, *, console: Console | None = None) -> Results:
    """Run the benchmarks ``options`` select and write results.md, results.json, plots."""
    console = console or Console()
    if options.size not in SIZES:
        raise ValueError(f"unknown size {options.size!r}: {', '.join(SIZES)}")
    unknown = set(options.only) - set(BENCHMARKS)
    if unknown:
        raise ValueError(f"unknown benchmarks {sorted(unknown)}: {', '.join(BENCHMARKS)}")
    sizes = SIZES[options.size]
    options.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = Results(
        size=options.size,
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine(),
        sizes={k: v for k, v in vars(sizes).items() if k != "rounds"}
        | {"rounds": {str(k): v for k, v in sizes.rounds.items()}},
    )
    load, cpus = results.machine.get("load_average"), results.machine.get("cpus") or 1
    if load is not None and load > cpus / 2:
        console.print(f"[yellow]load average {load} on {cpus} CPUs: figures will be low[/]")
    work = Path(tempfile.mkdtemp(prefix=".work-", dir=options.workdir or options.out))
    ticks = cpu_ticks()
    try:
        for name in BENCHMARKS:
            if options.wants(name):
                console.print(f"[bold]▶ {name}[/bold]")
                _RUNNERS[name](options, sizes, work, results, console)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results.seconds = time.perf_counter() - started
    if (share := stolen(ticks, cpu_ticks())) is not None:
        results.machine["cpu_stolen"] = round(share, 1)
    written = [write_markdown(results, options.out), write_json(results, options.out)]
    plots = write_plots(results, options.out)
    if isinstance(plots, str):
        console.print(f"[yellow]{plots}[/yellow]")
    else:
        written += plots
    console.print(f"wrote {', '.join(str(p) for p in written)}")
    return results


def _say(console: Console, figure: Figure) -> None:
    from eventdocs.bench.report import number, versus

    limit = (
        f"  limit {number(figure.limit, figure.unit)} ({versus(figure)})" if figure.limit else ""
    )
    met = (
        ""
        if figure.met is None
        else ("  [green]target met[/]" if figure.met else "  [red]target missed[/]")
    )
    console.print(f"  {figure.title}: [bold]{number(figure.value, figure.unit)}[/]{limit}{met}")


def _rows(n: int) -> str:
    return f"{n:,} row{'s' * (n != 1)}"


def _add(results: Results, console: Console, figure: Figure) -> None:
    results.figures.append(figure)
    _say(console, figure)


def _append(options: Options, sizes: Sizes, work: Path, results: Results, console: Console) -> None:
    series = results.series.setdefault("append", [])
    for batch, rounds in sorted(sizes.rounds.items()):
        for writers in sizes.writers:
            url = str(work / f"append_{writers}_{batch}.db")
            run = asyncio.run(append_run(url, writers=writers, batch=batch, rounds=rounds))
            limits = append_limits(work, run)
            series.append(
                {
                    "writers": writers,
                    "batch": batch,
                    "rate": run.rate,
                    "limit": limits["grouped"],
                    "bulk": limits["bulk"],
                    "events": run.events,
                    "per_commit": run.per_commit,
                }
            )
            if writers not in (1, max(sizes.writers)):
                console.print(f"  {writers} writers, batch {batch}: {run.rate:,.0f} events/s")
                continue
            headline = writers == 64 and batch == 1
            _add(
                results,
                console,
                Figure(
                    key=f"append_{writers}w_{batch}b",
                    title=f"durable append, {writers} writer{'s' * (writers > 1)}, {batch} event"
                    f"{'s' * (batch > 1)} per call",
                    value=run.rate,
                    unit="events/s",
                    limit=limits["grouped"],
                    limit_title=f"raw executemany, {_rows(writers * batch)} per fsync",
                    target="≥ 50,000 events/s" if headline else "",
                    met=run.rate >= 50_000 if headline else None,
                    notes=f"{run.events:,} events, {run.per_commit or 0:.1f} per commit"
                    f" (raw, one transaction: {limits['bulk']:,.0f} events/s)",
                ),
            )


def _workload(
    options: Options, sizes: Sizes, work: Path, results: Results, console: Console
) -> None:
    workload = Workload(sizes.documents, sizes.revisions)
    db = work / "workload.db"
    run = asyncio.run(workload_run(str(db), workload, batch=sizes.batch, again=True))
    limits = workload_limits(work, workload, sizes.batch, db)
    full = workload.events >= 1_000_000
    _add(
        results,
        console,
        Figure(
            key="workload_append",
            value=run.append_rate,
            unit="events/s",
            title=f"append {workload.events:,} events, {sizes.batch} per call, 1 writer",
            limit=limits["insert"],
            limit_title=f"raw executemany, {_rows(sizes.batch)} per fsync",
        ),
    )
    load = results.machine.get("load_average")
    _add(
        results,
        console,
        Figure(
            key="rebuild",
            value=run.rebuild_rate,
            unit="events/s",
            title=f"rebuild {workload.events:,} events ({workload.documents:,} documents)"
            " into history + master, every index",
            limit=limits["read_decode"],
            limit_title="raw read + decode of the same rows",
            target="≥ 150,000 events/s" + ("" if full else " (at 1,000,000)"),
            met=run.rebuild_rate >= 150_000,
            notes="SQLite alone writing the same rows and indexes (its floor):"
            f" {limits['write_floor']:,.0f} events/s; again over the existing projection:"
            f" {workload.events / (run.rebuild_again_seconds or 1):,.0f} events/s;"
            f" {_phases(run.phases)}; load average {load}",
            extra={"phases": run.phases, "write_floor": limits["write_floor"]},
        ),
    )
    # Throughput against log size (a flat line is the goal): 1/100 and 1/10 of the run.
    rates = {workload.events: run.rebuild_rate}
    for part in (100, 10) if full else (10,):
        smaller = Workload(max(sizes.documents // part, 1), sizes.revisions)
        db_path = str(work / f"rebuild_{smaller.events}.db")
        rates[smaller.events] = asyncio.run(rebuild_only(db_path, smaller)).rebuild_rate
    results.series["rebuild_sizes"] = {str(k): rates[k] for k in sorted(rates)}
    if full:  # linear: the cost per event at 1,000,000 against 100,000 events
        small = Workload(sizes.documents // 10, sizes.revisions)
        base = asyncio.run(rebuild_only(str(work / "rebuild_small.db"), small))
        ratio = base.rebuild_rate / run.rebuild_rate
        _add(
            results,
            console,
            Figure(
                key="rebuild_linear",
                value=ratio,
                unit="x",
                better="lower",
                title=f"rebuild cost per event, {workload.events:,} vs {small.events:,} events",
                target="≤ 1.2x",
                met=ratio <= 1.2,
                notes=f"{small.events:,} events: {base.rebuild_rate:,.0f} events/s;"
                f" {_phases(base.phases)}",
                extra={"phases": base.phases},
            ),
        )
    if not options.peer:
        results.skipped["peer"] = "--no-peer"
        return
    try:
        from eventdocs.bench.peer import peer_run
    except ImportError as exc:
        results.skipped["peer"] = f"eventsourcing is not installed ({exc})"
        console.print(f"  [yellow]peer skipped: {exc}[/]")
        return
    peer = peer_run(work / "peer.db", workload, batch=sizes.batch)
    results.series["peer"] = {
        "append_seconds": peer.append_seconds,
        "replay_seconds": peer.replay_seconds_by_method,
        "synchronous": peer.synchronous,
    }
    single = Workload(sizes.peer_single, 1)
    mine = asyncio.run(workload_run(str(work / "single.db"), single, batch=1))
    theirs = peer_run(work / "peer_single.db", single, batch=1, both=False)
    sync = "FULL" if peer.synchronous == 2 else f"synchronous={peer.synchronous}"
    for comparison in (
        Comparison(
            key="peer_append",
            title=f"append {workload.events:,} events, {sizes.batch} per call/save, 1 writer",
            unit="events/s",
            eventdocs=run.append_rate,
            peer=peer.append_rate,
            target_ratio=4,
            notes=f"both WAL, {sync}; eventsourcing saves the aggregates a batch touched",
        ),
        Comparison(
            key="peer_append_single",
            title=f"append {single.events:,} events, 1 per call/save, 1 writer",
            unit="events/s",
            eventdocs=mine.append_rate,
            peer=theirs.append_rate,
            target_ratio=4,
        ),
        Comparison(
            key="peer_rebuild",
            title=f"rebuild / replay {workload.events:,} events",
            unit="events/s",
            eventdocs=run.rebuild_rate,
            peer=peer.replay_rate,
            target_ratio=3,
            notes=f"eventsourcing's faster replay ({peer.replay_method}; it only folds"
            " in memory, eventdocs also writes history and master rows)",
        ),
    ):
        results.comparisons.append(comparison)
        console.print(
            f"  vs eventsourcing, {comparison.title}: {comparison.ratio:.1f}x"
            f" ({comparison.eventdocs:,.0f} vs {comparison.peer:,.0f} events/s)"
        )


def _phases(phases: dict[str, float]) -> str:
    """Where a rebuild's time went, in words (the SQLite rebuild's timings)."""
    if not phases:
        return "no phases (generic replay)"
    names = {
        "read_fold": "read+decode+fold (reader thread CPU)",
        "insert": "inserts",
        "build": "build",
        "indexes": "indexes",
        "swap": "swap",
    }
    return ", ".join(f"{names[k]} {phases[k]:.2f} s" for k in names if k in phases)


def _asof(options: Options, sizes: Sizes, work: Path, results: Results, console: Console) -> None:
    run = asyncio.run(asof_run(str(work / "asof.db"), sizes.depths, samples=sizes.samples))
    deep, shallow = max(run.depths), min(run.depths)
    results.series["asof"] = {
        "depths": run.depths,
        "asof_p50": [run.asof[d]["p50"] for d in run.depths],
        "master_p50": [run.master[d]["p50"] for d in run.depths],
        "asof": {str(d): s for d, s in run.asof.items()},
        "master": {str(d): s for d, s in run.master.items()},
    }
    _add(
        results,
        console,
        Figure(
            key="asof_depth",
            value=run.asof[deep]["p50"],
            unit="µs",
            better="lower",
            title=f"get as of a time, {deep:,} revisions (p50)",
            limit=run.asof[shallow]["p50"],
            limit_title=f"same with {shallow} revisions",
            target=f"≤ 2x of {shallow} revisions",
            met=run.ratio <= 2,
            notes=f"p99 {run.asof[deep]['p99']:.0f} µs vs {run.asof[shallow]['p99']:.0f} µs;"
            f" get now: {run.master[deep]['p50']:.0f} µs",
        ),
    )


def _query(options: Options, sizes: Sizes, work: Path, results: Results, console: Console) -> None:
    run = asyncio.run(
        query_run(
            str(work / "query.db"),
            sizes.query_documents,
            sizes.query_revisions,
            samples=sizes.query_samples,
        )
    )
    results.series["query"] = {
        "master": run.master,
        "asof": run.asof,
        "totals": [run.total_master, run.total_asof],
    }
    _add(
        results,
        console,
        Figure(
            key="query_asof",
            value=run.asof["p50"] / 1e3,
            unit="ms",
            better="lower",
            title=f"query as of a time over {run.documents:,} documents (p50)",
            limit=run.master["p50"] / 1e3,
            limit_title="same query on the master collection",
            target="≤ 2x of master",
            met=run.ratio <= 2,
            notes=f"{run.query}; {run.history_rows:,} history rows",
        ),
    )


def _activation(
    options: Options, sizes: Sizes, work: Path, results: Results, console: Console
) -> None:
    run = asyncio.run(
        activation_run(str(work / "activation.db"), pending=sizes.pending, window=sizes.window)
    )
    results.series["activation_lags_ms"] = run.lags_ms
    results.series["activation"] = {"lag": run.lag, "timer": run.timer, "missed": run.missed}
    notes = f"p50 {run.lag['p50']:.2f} ms, max {run.lag['max']:.1f} ms"
    notes += f"; {run.pending:,} TOAs over {run.window:g} s"
    if run.missed:
        notes += f"; {run.missed} never activated"
    if not run.appended_before_first_toa:
        notes += "; appending overlapped the first TOAs"
    _add(
        results,
        console,
        Figure(
            key="activation_p99",
            value=run.lag["p99"],
            unit="ms",
            better="lower",
            title=f"activation lag after TOA, {run.pending:,} pending (p99)",
            limit=run.timer["p99"],
            limit_title="event-loop timer lateness, p99",
            target="≤ 10 ms",
            met=run.lag["p99"] <= 10 and not run.missed,
            notes=notes,
        ),
    )


def _live(options: Options, sizes: Sizes, work: Path, results: Results, console: Console) -> None:
    run = asyncio.run(live_run(str(work / "live.db"), writers=64, seconds=sizes.live_seconds))
    results.series["live"] = msgspec.to_builtins(run)
    _add(results, console, live_figure(run))


def _scaling(
    options: Options, sizes: Sizes, work: Path, results: Results, console: Console
) -> None:
    run = asyncio.run(
        scaling_run(work / "scaling", "tiny" if options.size == "tiny" else "default")
    )
    results.series["scaling"] = msgspec.to_builtins(run)
    plot = write_scaling_plot(run, options.out)
    if isinstance(plot, str):
        console.print(f"[yellow]{plot}[/yellow]")

    def grows(key: str, op: str, what: str) -> None:
        by_size = run.costs[op]
        big, small = max(by_size), min(by_size)
        _add(
            results,
            console,
            Figure(
                key=key,
                value=by_size[big] / 1e3,
                unit="ms",
                better="lower",
                title=f"{op} at {big:,} {what} (p50)",
                limit=by_size[small] / 1e3,
                limit_title=f"the same at {small:,}",
                target="≤ 2x",
                met=by_size[big] <= 2 * by_size[small],
            ),
        )

    grows("scaling_put", "put", "revisions")
    grows("scaling_get_known_at", "get as known at revision n/2", "revisions")
    grows("scaling_backdated", "backdated put", "revisions")
    grows("scaling_revisions_page", "/revisions page after n/2", "revisions")
    grows("scaling_scheduled_page", "/_scheduled page after n/2", "pending writes")
    grows("scaling_scheduled", "scheduled write", "pending writes")
    biggest = max(run.costs["query now"])
    for op in ("query as_of", "query known_at"):
        _add(
            results,
            console,
            Figure(
                key=f"scaling_{op.replace(' ', '_')}",
                value=run.costs[op][biggest] / 1e3,
                unit="ms",
                better="lower",
                title=f"{op} over {biggest:,} documents (p50)",
                limit=run.costs["query now"][biggest] / 1e3,
                limit_title="the same query now (master)",
                target="≤ 2x of master",
                met=run.costs[op][biggest] <= 2 * run.costs["query now"][biggest],
            ),
        )
    heavy = run.loop["get beside a query as known at"]
    _add(
        results,
        console,
        Figure(
            key="scaling_get_beside_heavy",
            value=heavy["p99"],
            unit="ms",
            better="lower",
            title="a get's p99 beside a query as known at a past time",
            limit=run.loop["get alone"]["p99"],
            limit_title="the get's p99 alone",
            target="≤ 50 ms",
            met=heavy["p99"] <= 50,
        ),
    )
    activation = run.loop["get during a mass activation"]
    _add(
        results,
        console,
        Figure(
            key="scaling_activation",
            value=run.activation["rate"],
            unit="events/s",
            title=f"{run.activation['due']:,.0f} writes due at one instant applied",
            limit=50_000,
            limit_title="the issue's target",
            target="≥ 50,000 events/s, a get's p99 ≤ 50 ms meanwhile",
            met=run.activation["rate"] >= 50_000 and activation["p99"] <= 50,
            notes=f"a get's p99 meanwhile: {activation['p99']:.1f} ms",
        ),
    )


def _http_script() -> Path | None:
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        path = root / "benchmarks" / "http_bench.py"
        if path.is_file():
            return path
    return None


def _http(options: Options, sizes: Sizes, work: Path, results: Results, console: Console) -> None:
    script = _http_script()
    why = (
        "--no-http"
        if not options.http
        else "no benchmarks/http_bench.py"
        if script is None
        else "not in --tiny"
        if options.size == "tiny"
        else ""
    )
    if why or script is None:
        results.skipped["http"] = why
        console.print(f"  skipped: {why}")
        return
    args = [sys.executable, str(script), "--json"]
    if options.size != "full":
        args += ["--duration", "3", "--warmup", "1"]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=900, check=True)
        data = json.loads(done.stdout)
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or "").strip().splitlines()[-1:] or [f"exit status {exc.returncode}"]
        results.skipped["http"] = f"{script.name} failed: {last[0]}"
        console.print(f"  [yellow]{results.skipped['http']}[/]")
        return
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as exc:
        results.skipped["http"] = f"{script.name} failed: {exc}"
        console.print(f"  [yellow]{results.skipped['http']}[/]")
        return
    results.series["http"] = data
    for figure in _http_figures(data):
        _add(results, console, figure)


def _http_figures(data: Any) -> list[Figure]:
    """eventdocs' req/s beside the bare falcon app's, per kind of request."""
    try:
        figures = []
        for kind, ratio in data["ratios"].items():
            mine, bare = data["results"]["eventdocs"][kind], data["results"]["bare"][kind]
            target = data["targets"][kind]
            what = "POST create (durable)" if kind == "post" else "GET by id"
            figures.append(
                Figure(
                    key=f"http_{kind}",
                    title=f"HTTP {what}, {data['connections']} connections",
                    value=float(mine["rps"]),
                    unit="req/s",
                    limit=float(bare["rps"]),
                    limit_title="bare falcon app, same server",
                    target=f"≥ {target:.0%} of bare",
                    met=ratio >= target,
                    notes=f"p99 {mine['p99_ms']:.1f} ms vs {bare['p99_ms']:.1f} ms;"
                    f" load by {data['load']}, {data['duration_s']:g} s",
                )
            )
        return figures
    except (KeyError, TypeError, ValueError, AttributeError):
        return []


_RUNNERS = {
    "append": _append,
    "workload": _workload,
    "asof": _asof,
    "query": _query,
    "activation": _activation,
    "live": _live,
    "scaling": _scaling,
    "http": _http,
}
