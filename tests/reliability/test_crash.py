"""kill -9 under load, twice: nothing acknowledged is lost (``benchmarks/crash.py``)."""

from __future__ import annotations

from pathlib import Path

import crash


def test_two_crash_rounds_lose_nothing(tmp_path: Path) -> None:
    settings = crash.Settings(concurrency=16, kill_after=(0.5, 1.5), ahead=(0.1, 1.0), seed=7)
    report = crash.run(2, settings=settings, workdir=tmp_path)
    problems = [p for r in report.rounds for p in r.problems]
    assert problems == []
    summary = report.summary()
    assert summary["rounds_passed"] == 2
    assert summary["lost_acknowledged_writes"] == 0
    assert summary["verify_differences"] == 0
    assert summary["acknowledged_total"] > 0
