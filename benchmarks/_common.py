"""What the standalone benchmark scripts share: options, a work directory, output.

Each script measures one thing with :mod:`eventdocs.bench` (the same code and
data generator ``eventdocs bench`` uses) on the backend ``--backend`` names,
and prints a line per figure, or one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eventdocs.bench.suite import SIZES, Sizes


def parser(description: str, backends: tuple[str, ...]) -> argparse.ArgumentParser:
    """The options every script takes; add its own on the result."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--backend",
        default=backends[0],
        help=f"one of {', '.join(backends)} (or a mongodb:// URL where a store is used)",
    )
    p.add_argument("--size", choices=sorted(SIZES), default="default", help="preset sizes")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--workdir", type=Path, help="where stores go (default: a temp dir here)")
    return p


def sizes(args: argparse.Namespace) -> Sizes:
    return SIZES[args.size]


@contextlib.contextmanager
def workdir(args: argparse.Namespace) -> Iterator[Path]:
    """A scratch directory on the disk being measured (not a tmpfs /tmp), then removed."""
    base = args.workdir or Path(__file__).resolve().parent
    path = Path(tempfile.mkdtemp(prefix=".work-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def report(args: argparse.Namespace, data: dict[str, Any], lines: list[str]) -> None:
    if args.json:
        json.dump(data, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print("\n".join(lines))
