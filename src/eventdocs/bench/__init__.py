"""The benchmark suite ``eventdocs bench`` runs, and the scripts in ``benchmarks/`` share.

Every figure is printed beside a limit measured in the same run (raw SQLite
on the same rows, or the same read without time travel), and the
append-then-rebuild workload also runs on the ``eventsourcing`` library as a
peer. See :mod:`eventdocs.bench.suite` for the sizes and outputs.
"""

from eventdocs.bench.data import Workload
from eventdocs.bench.measure import Comparison, Figure
from eventdocs.bench.suite import SIZES, Options, run_suite

__all__ = ["SIZES", "Comparison", "Figure", "Options", "Workload", "run_suite"]
