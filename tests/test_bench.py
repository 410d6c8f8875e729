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

from click.testing import CliRunner

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

    table = (out / "results.md").read_text()
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
