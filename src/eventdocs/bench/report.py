"""The suite's outputs: ``results.md``, ``results.json`` and PNG plots.

The Markdown is the table ``benchmarks/README.md`` quotes; the JSON holds
every measured number (and the series behind the plots) for whoever wants
more than the table. Plots need matplotlib (the ``plots`` extra); without it
they are skipped with a message, never an error.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgspec

from eventdocs.bench.measure import Comparison, Figure, percentile

__all__ = ["Results", "write_json", "write_markdown", "write_plots"]


class Results(msgspec.Struct, kw_only=True):
    """Everything one run of the suite measured."""

    size: str
    started: str
    seconds: float = 0.0
    machine: dict[str, Any] = {}
    sizes: dict[str, Any] = {}
    figures: list[Figure] = []
    comparisons: list[Comparison] = []
    series: dict[str, Any] = {}
    skipped: dict[str, str] = {}


def number(value: float | None, unit: str = "") -> str:
    """A figure for people: thousands separated, three significant digits when small."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def versus(figure: Figure) -> str:
    """The figure against its limit: a share for rates, a factor for latencies."""
    ratio = figure.ratio
    if ratio is None:
        return "-"
    return f"{ratio:.0%}" if figure.better == "higher" else f"{ratio:.2f}x"


def _met(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "**no**")


def markdown(results: Results) -> str:
    """The results as Markdown tables."""
    m = results.machine
    lines = [
        f"Measured by `eventdocs bench{'' if results.size == 'default' else ' --' + results.size}`"
        f" on {results.started} in {results.seconds:.0f} s: {m.get('cpu')} ({m.get('cpus')} CPUs),"
        f" Python {m.get('python')}, SQLite {m.get('sqlite')}, eventsourcing"
        f" {m.get('eventsourcing')}; load average {m.get('load_average')} at the start"
        + (
            f"; {m['cpu_stolen']}% of the CPU time stolen by the hypervisor during the run."
            if m.get("cpu_stolen") is not None
            else "."
        ),
        "",
        "| benchmark | eventdocs | limit (same run) | vs limit | target | met |",
        "|---|---:|---|---:|---|:---:|",
    ]
    for f in results.figures:
        limit = f"{number(f.limit, f.unit)} ({f.limit_title})" if f.limit is not None else "-"
        lines.append(
            f"| {f.title} | {number(f.value, f.unit)} | {limit} | {versus(f)}"
            f" | {f.target or '-'} | {_met(f.met)} |"
        )
    if results.comparisons:
        lines += [
            "",
            "Peer: the same workload on the `eventsourcing` library's SQLite persistence.",
            "",
            "| workload | eventdocs | eventsourcing | ratio | target | met |",
            "|---|---:|---:|---:|---|:---:|",
        ]
        for c in results.comparisons:
            lines.append(
                f"| {c.title} | {number(c.eventdocs, c.unit)} | {number(c.peer, c.unit)}"
                f" | {c.ratio:.1f}x | ≥ {c.target_ratio:g}x | {_met(c.met)} |"
            )
    notes = [f"- {f.title}: {f.notes}" for f in results.figures if f.notes]
    notes += [f"- {c.title}: {c.notes}" for c in results.comparisons if c.notes]
    notes += [f"- skipped {name}: {why}" for name, why in results.skipped.items()]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"


def write_markdown(results: Results, out: Path) -> Path:
    path = out / "results.md"
    path.write_text(markdown(results), encoding="utf-8")
    return path


def write_json(results: Results, out: Path) -> Path:
    data = msgspec.to_builtins(results)
    for item, f in zip(data["figures"], results.figures, strict=True):
        item["ratio"] = f.ratio
    for item, c in zip(data["comparisons"], results.comparisons, strict=True):
        item["ratio"], item["met"] = c.ratio, c.met
    path = out / "results.json"
    path.write_bytes(msgspec.json.format(msgspec.json.encode(data), indent=2) + b"\n")
    return path


def write_plots(results: Results, out: Path) -> list[Path] | str:
    """The PNG plots, or why there are none."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'eventdocs[plots]'): no plots"
    written: list[Path] = []
    series = results.series

    if appends := series.get("append"):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for batch in sorted({a["batch"] for a in appends}):
            runs = sorted((a for a in appends if a["batch"] == batch), key=lambda a: a["writers"])
            xs = [a["writers"] for a in runs]
            (line,) = ax.plot(
                xs, [a["rate"] for a in runs], "o-", label=f"eventdocs, batch {batch}"
            )
            ax.plot(
                xs,
                [a["limit"] for a in runs],
                "--",
                color=line.get_color(),
                alpha=0.6,
                label=f"raw executemany, {batch}xwriters rows/fsync",
            )
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="concurrent writers",
            ylabel="events/s (durable)",
            title="Durable append throughput",
        )
        ax.set_xticks(sorted({a["writers"] for a in appends}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        written.append(_save(fig, out / "append_throughput.png"))

    if asof := series.get("asof"):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for key, label in (("asof_p50", "get as of a time"), ("master_p50", "get now (master)")):
            ax.plot(asof["depths"], asof[key], "o-", label=f"{label}, p50")
        ax.set(
            xscale="log",
            xlabel="revisions of the document",
            ylabel="latency (µs)",
            title="Read latency against history depth",
        )
        ax.set_ylim(bottom=0)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        written.append(_save(fig, out / "asof_latency.png"))

    if lags := series.get("activation_lags_ms"):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        ax.hist(lags, bins=60, color="tab:blue", alpha=0.8)
        for p, style in ((50, "-"), (99, "--")):
            value = percentile(lags, p)
            ax.axvline(value, color="k", linestyle=style, label=f"p{p} = {value:.2f} ms")
        ax.set(
            xlabel="lag after TOA (ms)",
            ylabel="scheduled writes",
            title=f"Activation lag, {len(lags):,} writes pending",
        )
        ax.legend(fontsize=8)
        written.append(_save(fig, out / "activation_lag.png"))

    if live := series.get("live"):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        seconds = range(len(live["p99_by_second"]))
        ax.plot(seconds, live["p99_by_second"], "o-", markersize=3, label="p99")
        ax.plot(seconds, live["p50_by_second"], "o-", markersize=3, label="p50")
        ax.axhline(50, color="k", linestyle="--", alpha=0.6, label="target, p99")
        ax.set(
            xlabel="second of the run",
            ylabel="lag after a write takes effect (ms)",
            title=f"Live projection lag, {live['writers']} writers",
        )
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if steal := live.get("steal_by_second"):
            stolen = ax.twinx()  # a spike of lag in a second of stolen CPU is the machine's
            stolen.bar(range(len(steal)), steal, color="tab:red", alpha=0.25, label="CPU stolen")
            stolen.set(ylabel="CPU stolen by the hypervisor (%)", ylim=(0, 100))
            more = stolen.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        ax.legend(handles, labels, fontsize=8)
        written.append(_save(fig, out / "live_lag.png"))

    if sizes := series.get("rebuild_sizes"):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        xs = [int(k) for k in sizes]
        ax.plot(xs, [sizes[k] for k in sizes], "o-", label="eventdocs rebuild")
        ax.axhline(150_000, color="k", linestyle="--", alpha=0.6, label="target")
        ax.set(
            xscale="log",
            xlabel="events in the log",
            ylabel="events/s",
            title="Rebuild throughput against log size",
        )
        ax.set_ylim(bottom=0)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        written.append(_save(fig, out / "rebuild_throughput.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
