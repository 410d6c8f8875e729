"""Append a workload in batches, then rebuild (replay) it, beside raw read+decode.

    python benchmarks/rebuild.py --documents 100000 --revisions 10 [--backend ...]

``--backend eventsourcing`` runs the same workload on the eventsourcing library.
"""

from __future__ import annotations

import asyncio

import _common

from eventdocs.bench.append import store_url
from eventdocs.bench.data import Workload
from eventdocs.bench.rebuild import workload_limits, workload_run


def main() -> None:
    p = _common.parser(__doc__ or "", ("sqlite", "memory", "eventsourcing"))
    p.add_argument("--documents", type=int, help="documents (default: by --size)")
    p.add_argument("--revisions", type=int, default=10, help="events per document")
    p.add_argument("--batch", type=int, default=100, help="events per append call")
    args = p.parse_args()
    workload = Workload(args.documents or _common.sizes(args).documents, args.revisions)
    with _common.workdir(args) as work:
        if args.backend == "eventsourcing":
            from eventdocs.bench.peer import peer_run

            peer = peer_run(work / "peer.db", workload, batch=args.batch)
            data = {
                "backend": "eventsourcing",
                "events": workload.events,
                "append_rate": peer.append_rate,
                "replay_rate": peer.replay_rate,
                "replay_seconds": peer.replay_seconds_by_method,
            }
            lines = [
                f"eventsourcing: append {peer.append_rate:,.0f} events/s,"
                f" replay {peer.replay_rate:,.0f} events/s ({peer.replay_method})"
            ]
        else:
            url = store_url(args.backend, work, "rebuild")
            run = asyncio.run(workload_run(url, workload, batch=args.batch))
            limits = (
                workload_limits(work, workload, args.batch, work / "rebuild.db")
                if args.backend == "sqlite"
                else {}
            )
            data = {
                "backend": args.backend,
                "events": workload.events,
                "append_rate": run.append_rate,
                "rebuild_rate": run.rebuild_rate,
                "limits": limits,
                "phases": run.phases,
            }
            lines = [
                f"{args.backend}: append {run.append_rate:,.0f} events/s, rebuild"
                f" {run.rebuild_rate:,.0f} events/s of {workload.events:,}"
                + (
                    f" (raw read+decode {limits['read_decode']:,.0f} events/s; SQLite writing"
                    f" the same rows and indexes alone {limits['write_floor']:,.0f} events/s)"
                    if limits
                    else ""
                ),
                *(f"  {phase}: {seconds:.2f} s" for phase, seconds in run.phases.items()),
            ]
    _common.report(args, data, lines)


if __name__ == "__main__":
    main()
