"""Cost per operation against data size, with ratios measured in one run.

python benchmarks/scaling.py [--size tiny|default] [--json] [--plot DIR]

One document with 1 -> 100,000 revisions (get, put, backdated put, revert,
cancel, a /revisions page), 0 -> 100,000 scheduled writes pending, 1,000 ->
100,000 documents (get and query now, as_of, known_at), a get's latency on
the same event loop beside the heaviest read and during a mass activation.
On SQLite; ``eventdocs bench`` runs it too. About two minutes at the default
size on a quiet machine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import _common
import msgspec

from eventdocs.bench.scaling import scaling_run, table, write_scaling_plot


def main() -> None:
    p = _common.parser(__doc__ or "", ("sqlite",))
    p.add_argument("--plot", type=Path, help="write scaling.png (log-log) into this directory")
    args = p.parse_args()
    size = "tiny" if args.size == "tiny" else "default"
    with _common.workdir(args) as work:
        run = asyncio.run(scaling_run(work, size))
    lines = [table(run)]
    if args.plot is not None:
        lines.append(str(write_scaling_plot(run, args.plot)))
    _common.report(args, msgspec.to_builtins(run), lines)


if __name__ == "__main__":
    main()
