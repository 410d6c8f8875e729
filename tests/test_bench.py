"""``eventdocs bench --tiny`` and a standalone script run and write their outputs.

No figure is asserted: the machine decides those. What is checked is that
every benchmark ran, each figure has its limit, and the files are there.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import msgspec
from click.testing import CliRunner

from eventdocs.bench.live import LiveRun, live_figure
from eventdocs.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_bench_tiny_writes_markdown_json_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = CliRunner().invoke(
        main, ["bench", "--tiny", "--out", str(out), "--no-http"], prog_name="eventdocs"
    )
    assert result.exit_code == 0, result.output

    data = json.loads((out / "results.json").read_text())
    keys = {f["key"] for f in data["figures"]}
    assert {"append_1w_1b", "append_64w_1b", "rebuild", "asof_depth", "query_asof"} <= keys
    assert {"activation_p99", "live_lag_p99"} <= keys
    assert len(data["series"]["rebuild_sizes"]) == 2  # throughput against log size
    assert {"scaling_put", "scaling_query_known_at", "scaling_activation"} <= keys
    assert data["series"]["scaling"]["costs"]["get"]
    assert all(f["limit"] for f in data["figures"])
    (rebuild,) = (f for f in data["figures"] if f["key"] == "rebuild")
    assert rebuild["extra"]["write_floor"] > 0  # SQLite's own floor, measured in the run
    if importlib.util.find_spec("eventsourcing"):
        assert {c["key"] for c in data["comparisons"]} == {
            "peer_append",
            "peer_append_single",
            "peer_rebuild",
        }
    else:
        assert "eventsourcing is not installed" in data["skipped"]["peer"]
    assert data["machine"]["cpus"] and data["skipped"]["http"] == "--no-http"
    live = data["series"]["live"]
    if sys.platform == "linux":  # the CPU the hypervisor stole, beside the lags
        assert live["steal"] is not None and live["steal_by_second"]

    table = (out / "results.md").read_text()
    if sys.platform == "linux":
        assert "% of the CPU time stolen by the hypervisor during the run." in table
    assert "| benchmark | eventdocs | limit (same run) |" in table
    assert "| workload | eventdocs | eventsourcing | ratio |" in table or not data["comparisons"]
    if importlib.util.find_spec("matplotlib"):
        plots = ("append_throughput", "asof_latency", "activation_lag", "scaling")
        for name in (*plots, "live_lag", "rebuild_throughput"):
            assert (out / f"{name}.png").stat().st_size > 1000
    assert not [p for p in out.iterdir() if p.name.startswith(".work-")]


def test_standalone_script_prints_json(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "rebuild.py"), "--size", "tiny",
         "--backend", "memory", "--json", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    data = json.loads(done.stdout)
    assert data["backend"] == "memory" and data["events"] == 3000
    assert data["append_rate"] > 0 and data["rebuild_rate"] > 0


def _live(p99_by_second: list[float]) -> LiveRun:
    lag = {"p50": 1.0, "p99": 30.0, "max": max(p99_by_second)}  # the whole run's p99
    return LiveRun(64, 60.0, 1000, 200, lag, lag, p99_by_second, p99_by_second, 0, lag)


def test_the_live_lag_grows_with_its_level_not_with_one_spike_second() -> None:
    flat = [20.0] * 60
    assert _live(flat).growth == 1.0
    spiked = [*flat[:50], 95.0, *flat[51:]]  # one second of stolen CPU near the end
    assert _live(spiked).growth == 1.0 and _live(spiked).growth_of_means > 1.0
    assert live_figure(_live(spiked)).met
    rising = [20.0 + i / 2 for i in range(60)]  # 20 ms at the start, 49.5 ms at the end
    assert _live(rising).growth > 1.5
    assert not live_figure(_live(rising)).met


def test_the_live_figure_says_how_much_cpu_was_stolen_when() -> None:
    run = msgspec.structs.replace(
        _live([20.0] * 30 + [40.0] * 30), steal=10.0, steal_by_second=[0.0] * 30 + [20.0] * 30
    )
    notes = live_figure(run).notes
    assert "stolen by the hypervisor 10.0% (first third 0%, last third 20%" in notes
    assert "r = 1.00" in notes
