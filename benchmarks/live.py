"""Live projection lag under 64 concurrent writers, scheduled writes coming due.

python benchmarks/live.py --seconds 60 [--writers 64] [--backend sqlite|memory]
"""

from __future__ import annotations

import asyncio

import _common
import msgspec

from eventdocs.bench.append import store_url
from eventdocs.bench.live import live_figure, live_run


def main() -> None:
    p = _common.parser(__doc__ or "", ("sqlite", "memory"))
    p.add_argument("--seconds", type=float, help="how long the writers write (default: by --size)")
    p.add_argument("--writers", type=int, default=64, help="concurrent writers")
    args = p.parse_args()
    s = _common.sizes(args)
    with _common.workdir(args) as work:
        run = asyncio.run(
            live_run(
                store_url(args.backend, work, "live"),
                writers=args.writers,
                seconds=args.seconds or s.live_seconds,
            )
        )
    figure = live_figure(run)
    data = {"backend": args.backend, **msgspec.to_builtins(run)}
    lines = [
        f"{run.writes:,} writes by {run.writers} writers in {run.seconds:g} s:"
        f" lag p50 {run.lag['p50']:.2f} ms, p99 {run.lag['p99']:.2f} ms,"
        f" max {run.lag['max']:.2f} ms; scheduled p99 {run.lag_scheduled['p99']:.2f} ms"
        f" (timer lateness p99 {run.timer['p99']:.2f} ms)",
        f"p99 by second: {', '.join(f'{x:.1f}' for x in run.p99_by_second)}",
        f"CPU stolen by second (%): {', '.join(f'{x:.0f}' for x in run.steal_by_second)}",
        figure.notes,
    ]
    _common.report(args, data, lines)


if __name__ == "__main__":
    main()
