"""Time travel reads: get as of a time against history depth, and a query as of a time.

python benchmarks/asof.py --depths 10,10000 --query-documents 100000 [--backend ...]
"""

from __future__ import annotations

import asyncio

import _common

from eventdocs.bench.append import store_url
from eventdocs.bench.reads import asof_run, query_run


def main() -> None:
    p = _common.parser(__doc__ or "", ("sqlite", "memory"))
    p.add_argument("--depths", help="comma-separated revision counts (default: by --size)")
    p.add_argument("--query-documents", type=int, help="documents queried (0: skip the query)")
    args = p.parse_args()
    s = _common.sizes(args)
    depths = [int(d) for d in args.depths.split(",")] if args.depths else list(s.depths)
    documents = s.query_documents if args.query_documents is None else args.query_documents
    with _common.workdir(args) as work:
        run = asyncio.run(
            asof_run(store_url(args.backend, work, "asof"), depths, samples=s.samples)
        )
        data: dict[str, object] = {
            "backend": args.backend,
            "asof": run.asof,
            "master": run.master,
            "depth_ratio": run.ratio,
        }
        lines = [
            f"{d:>6} revisions: as of p50 {run.asof[d]['p50']:.1f} µs, p99"
            f" {run.asof[d]['p99']:.1f} µs; now p50 {run.master[d]['p50']:.1f} µs"
            for d in depths
        ]
        lines.append(f"as of, {max(depths)} vs {min(depths)} revisions: {run.ratio:.2f}x")
        if documents:
            query = asyncio.run(
                query_run(
                    store_url(args.backend, work, "query"),
                    documents,
                    s.query_revisions,
                    samples=s.query_samples,
                )
            )
            data["query"] = {"master": query.master, "asof": query.asof, "ratio": query.ratio}
            lines.append(
                f"query over {documents:,} documents: as of p50 {query.asof['p50'] / 1e3:.2f} ms,"
                f" master p50 {query.master['p50'] / 1e3:.2f} ms ({query.ratio:.2f}x)"
            )
    _common.report(args, data, lines)


if __name__ == "__main__":
    main()
