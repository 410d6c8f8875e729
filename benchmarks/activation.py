"""Activation lag of scheduled writes on the real clock and scheduler.

python benchmarks/activation.py --pending 10000 --window 10 [--backend sqlite|memory]
"""

from __future__ import annotations

import asyncio

import _common

from eventdocs.bench.activation import activation_run
from eventdocs.bench.append import store_url


def main() -> None:
    p = _common.parser(__doc__ or "", ("sqlite", "memory"))
    p.add_argument("--pending", type=int, help="scheduled writes (default: by --size)")
    p.add_argument("--window", type=float, help="seconds their TOAs spread over")
    args = p.parse_args()
    s = _common.sizes(args)
    with _common.workdir(args) as work:
        run = asyncio.run(
            activation_run(
                store_url(args.backend, work, "activation"),
                pending=args.pending or s.pending,
                window=args.window or s.window,
            )
        )
    data = {
        "backend": args.backend,
        "pending": run.pending,
        "lag_ms": run.lag,
        "timer_ms": run.timer,
        "missed": run.missed,
    }
    lines = [
        f"{run.pending:,} pending over {run.window:g} s: lag p50 {run.lag['p50']:.2f} ms,"
        f" p99 {run.lag['p99']:.2f} ms, max {run.lag['max']:.2f} ms"
        f" (timer lateness p99 {run.timer['p99']:.2f} ms); missed {run.missed}"
    ]
    _common.report(args, data, lines)


if __name__ == "__main__":
    main()
