"""What the ``eventdocs`` commands share: the store options, opening a store, output.

``--store``, ``--target`` and ``--resource`` mean the same in every command;
a store is opened the same way (a missing SQLite file is an error, not a new
empty store); progress bars go to stderr, tables and JSON to stdout.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress
from rich.table import Table

from eventdocs.errors import NotFound
from eventdocs.projections.replay import replay
from eventdocs.projections.views import View
from eventdocs.resources import ResourceSpec, load_declarations, load_target, load_views
from eventdocs.storage import EventStore, open_store
from eventdocs.times import SystemClock, parse_time

_DEFAULT_STORE = "./eventdocs.db"
_IMPORT_CHUNK = 5000
_err = Console(stderr=True, highlight=False, soft_wrap=True)


_store_option = click.option(
    "--store",
    "store_url",
    default=_DEFAULT_STORE,
    envvar="EVENTDOCS_STORE",
    show_default=True,
    metavar="PATH|URI",
    help="A SQLite file, sqlite:///path, mongodb://... or memory:.",
)
_target_option = click.option(
    "--target",
    envvar="EVENTDOCS_TARGET",
    metavar="TARGET",
    help="Resource declarations (file.py, package.module:attr or .json) for schemas and views.",
)
_resource_option = click.option(
    "--resource", "chosen", multiple=True, metavar="R", help="Only these (repeatable)."
)


def _declared(target: str | None) -> tuple[list[ResourceSpec], list[View]]:
    if target is None:
        return [], []
    return load_target(target), load_views(target)


def _must_exist(url: str) -> None:
    # Opening a missing file would create an empty store and report "no resources".
    path = url.removeprefix("sqlite://")
    if "://" not in path and path != "memory:" and not Path(path).exists():
        raise NotFound(f"no store at {url} (give --store PATH|URI)")


@contextlib.asynccontextmanager
async def _opened(
    url: str, *, create: bool = False, readonly: bool = False
) -> AsyncIterator[EventStore]:
    """The opened store at ``url``; a missing SQLite file is an error unless ``create``.

    ``readonly`` reads a SQLite file beside its owner (a running server) and
    never writes to it; otherwise this process must own the file.
    """
    if not create:
        _must_exist(url)
    store = open_store(url, clock=SystemClock(), readonly=readonly)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def _resources(
    store: EventStore, chosen: Sequence[str], specs: list[ResourceSpec]
) -> list[str]:
    known = await store.resources()
    names = list(chosen) or sorted({s.name for s in specs} & set(known)) or known
    for name in names:
        if name not in known:
            raise NotFound(
                f"the store has no resource {name!r} (it has {', '.join(known) or 'none'})"
            )
    return names


async def _rebuild(
    store: EventStore, names: Sequence[str], specs: list[ResourceSpec], views: list[View]
) -> tuple[int, list[View]]:
    """Replay ``names`` (a progress bar each), then rebuild the views that read them."""
    total = 0
    for name in names:
        await store.ensure_resource(name, _spec(name, specs).indexes())
        # A view is rebuilt with the last of its sources replayed here.
        last = [v for v in views if name in v.sources and name == _last(v, names)]
        with _progress(f"replay {name}", await store.last_seq(name)) as advance:
            now = SystemClock().now()
            total += await replay(store, name, now=now, progress=advance, views=last)
    return total, [v for v in views if set(v.sources) & set(names)]


def _last(view: View, names: Sequence[str]) -> str:
    return [n for n in names if n in view.sources][-1]


def _spec(name: str, specs: list[ResourceSpec]) -> ResourceSpec:
    """The declared spec of ``name``, or a bare one: reading the log needs no schema."""
    declared = [s for s in specs if s.name == name]
    if declared:
        return max(declared, key=lambda s: s.version)
    return load_declarations({"resources": [{"name": name}]})[0]


def _time(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    if value.strip().lower() == "now":
        return SystemClock().now()
    return parse_time(value, path=option)


@contextlib.contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (silent when stderr is not a terminal)."""
    with Progress(
        *Progress.get_default_columns(),
        MofNCompleteColumn(),
        console=_err,
        disable=not _err.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _rate(count: int, seconds: float) -> str:
    return f"{count:,} events in {seconds:.2f} s ({count / max(seconds, 1e-9):,.0f} events/s)"


def _print_table(table: Table) -> None:
    """Print on stdout; piped output is not cut to 80 columns (ids stay whole)."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=240)
    console.print(table)


def _json_out(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
