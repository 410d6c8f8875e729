"""A few seconds of the soak (``benchmarks/soak.py``): no 5xx, no lost write."""

from __future__ import annotations

from pathlib import Path

import soak


def test_short_soak_loses_nothing(tmp_path: Path) -> None:
    settings = soak.Settings(
        seconds=4, connections=16, warmup=1, seed_documents=50, preload_documents=1000
    )
    result = soak.run(settings, workdir=tmp_path)
    assert result.problems == []
    assert result.server_errors == 0
    assert result.lost_writes == 0 and result.unacknowledged_in_log == 0
    assert result.verify_differences == 0
    assert sum(result.acknowledged_writes.values()) > 50
    # Memory growth is measured and reported here, judged only by the full run.
    assert result.rss_mb["end"] > 0
