"""Durable append throughput with 1..64 concurrent writers, beside raw executemany.

python benchmarks/append.py --writers 1,64 --batch 1 [--backend sqlite|memory|eventsourcing]
"""

from __future__ import annotations

import asyncio

import _common

from eventdocs.bench.append import append_limits, append_run, store_url
from eventdocs.bench.data import Workload


def main() -> None:
    p = _common.parser(__doc__ or "", ("sqlite", "memory", "eventsourcing"))
    p.add_argument("--writers", default="1,4,16,64", help="comma-separated writer counts")
    p.add_argument("--batch", type=int, default=1, help="events per append call")
    p.add_argument("--rounds", type=int, help="append calls per writer (default: by --size)")
    args = p.parse_args()
    rounds = args.rounds or _common.sizes(args).rounds.get(args.batch, 20)
    runs, lines = [], []
    with _common.workdir(args) as work:
        for writers in (int(w) for w in args.writers.split(",")):
            if args.backend == "eventsourcing":
                from eventdocs.bench.peer import peer_run

                if writers != 1:
                    raise SystemExit("the eventsourcing backend appends with one writer")
                workload = Workload(args.batch * rounds, 1)
                peer = peer_run(work / "peer.db", workload, batch=args.batch, both=False)
                runs.append(
                    {
                        "writers": 1,
                        "batch": args.batch,
                        "events": peer.events,
                        "rate": peer.append_rate,
                    }
                )
                lines.append(
                    f"eventsourcing, 1 writer, batch {args.batch}: {peer.append_rate:,.0f} events/s"
                )
                continue
            url = store_url(args.backend, work, f"append_{writers}")
            run = asyncio.run(append_run(url, writers=writers, batch=args.batch, rounds=rounds))
            limits = append_limits(work, run)
            runs.append(
                {
                    "writers": writers,
                    "batch": args.batch,
                    "events": run.events,
                    "rate": run.rate,
                    "per_commit": run.per_commit,
                    "limits": limits,
                }
            )
            lines.append(
                f"{args.backend}, {writers} writers, batch {args.batch}: {run.rate:,.0f} events/s"
                f" (raw executemany {limits['grouped']:,.0f} at {writers * args.batch} rows/fsync,"
                f" {limits['bulk']:,.0f} in one transaction)"
            )
    _common.report(args, {"backend": args.backend, "append": runs}, lines)


if __name__ == "__main__":
    main()
