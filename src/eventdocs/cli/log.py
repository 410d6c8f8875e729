"""The commands over whole logs: replay, verify, export, import.

They rebuild the projections from the log, check them against it, and move
the log out and in as JSON Lines. Those that write (replay, import) must own
the SQLite file; ``replay --url`` asks the server that owns it instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import msgspec
from rich.table import Table

from eventdocs.cli.common import (
    _IMPORT_CHUNK,
    _declared,
    _err,
    _json_out,
    _opened,
    _print_table,
    _progress,
    _rate,
    _rebuild,
    _resource_option,
    _resources,
    _store_option,
    _target_option,
)
from eventdocs.errors import DeclarationError, InvalidRequest
from eventdocs.events import Event, encode_event
from eventdocs.importing import ImportCheck, read_checked
from eventdocs.projections.replay import Difference, verify
from eventdocs.projections.views import View, rebuild_view
from eventdocs.resources import ResourceSpec
from eventdocs.storage.sqlite.owner import StoreOwned


@click.command("replay")
@_resource_option
@_store_option
@_target_option
@click.option(
    "--view",
    "view_names",
    multiple=True,
    help="Rebuild only this view (repeatable), e.g. once its code is fixed; needs --target.",
)
@click.option(
    "--url",
    metavar="URL",
    help="Replay through the server at URL (it owns the store): POST /admin/replay.",
)
@click.option(
    "--token",
    envvar="EVENTDOCS_TOKEN",
    metavar="TOKEN",
    help="Bearer token with the admin scope, for --url [$EVENTDOCS_TOKEN].",
)
def replay_command(
    chosen: tuple[str, ...],
    store_url: str,
    target: str | None,
    view_names: tuple[str, ...],
    url: str | None,
    token: str | None,
) -> None:
    """Rebuild master collections, history and views from the log.

    Without --target views are left for the server to rebuild when it starts.
    With --view only those views are rebuilt, from the master collections.
    With --url the running server that owns the store replays (reads and
    writes go on meanwhile) and rebuilds the views it serves.
    """
    specs, views = _declared(target)
    if url is not None:
        _replay_through(url, token, chosen, store_url, specs)
        return
    if view_names:
        known = {v.name: v for v in views}
        unknown = [n for n in view_names if n not in known]
        if unknown:
            declared = ", ".join(known) or "none"
            raise InvalidRequest(
                f"no view {unknown[0]!r} in the declarations (they declare {declared})"
            )

        async def rebuild_views() -> None:
            async with _opened(store_url) as store:
                for name in view_names:
                    await store.ensure_view(name)
                    await rebuild_view(store, known[name])
            click.echo(f"rebuilt views: {', '.join(view_names)}")

        asyncio.run(rebuild_views())
        return

    async def run() -> None:
        try:
            async with _opened(store_url) as store:
                names = await _resources(store, chosen, specs)
                started = time.perf_counter()
                total, rebuilt = await _rebuild(store, names, specs, views)
                elapsed = time.perf_counter() - started
        except StoreOwned as exc:  # raised by the open only
            raise StoreOwned(
                f"{exc.detail}; or replay through that server: eventdocs replay --url URL"
            ) from None
        click.echo(f"replayed {', '.join(names)}: {_rate(total, elapsed)}")
        if rebuilt:
            click.echo(f"rebuilt views: {', '.join(v.name for v in rebuilt)}")
        elif not target:
            click.echo("views were not rebuilt (no --target); a server rebuilds them at start")

    asyncio.run(run())


def _replay_through(
    url: str, token: str | None, chosen: Sequence[str], store_url: str, specs: list[ResourceSpec]
) -> None:
    """Replay each resource through the server at ``url``."""
    from eventdocs.remote import replay_remote

    names = list(chosen)
    if not names:  # the store's resources, read beside the server

        async def known() -> list[str]:
            async with _opened(store_url, readonly=True) as store:
                return await _resources(store, (), specs)

        names = asyncio.run(known())
    for name in names:
        answer = replay_remote(url, name, token)
        done = f"replayed {name} through {url}: {_rate(answer['events'], answer['seconds'])}"
        click.echo(done)
        if answer.get("views"):
            click.echo(f"rebuilt views: {', '.join(answer['views'])}")


@click.command("verify")
@_resource_option
@_store_option
@_target_option
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def verify_command(
    chosen: tuple[str, ...], store_url: str, target: str | None, as_json: bool
) -> None:
    """Check the projections against the log; exit 1 if any differ.

    Folds each document's events and compares with its history, master row
    and views; lists every document that differs.
    """
    specs, views = _declared(target)

    async def run() -> tuple[list[str], list[Difference]]:
        async with _opened(store_url, readonly=True) as store:
            names = await _resources(store, chosen, specs)
            checked = [v for v in views if set(v.sources) <= set(names)]
            with _err.status("verifying…") if _err.is_terminal else contextlib.nullcontext():
                return names, await verify(store, names, checked)

    names, diffs = asyncio.run(run())
    _say_views(views, names, target)
    if as_json:
        _json_out([msgspec.to_builtins(d) for d in diffs])
    elif diffs:
        table = Table("collection", "name", "id", "expected", "actual", title="differences")
        for d in diffs:
            table.add_row(d.collection, d.name, d.id, _short(d.expected), _short(d.actual))
        _print_table(table)
    if diffs:
        click.echo(f"{len(diffs)} differences in {', '.join(names)}", err=True)
        sys.exit(1)
    click.echo(f"ok: {', '.join(names) or 'no resources'} match the fold of the log")


def _say_views(views: Sequence[View], names: Sequence[str], target: str | None) -> None:
    """Say which views verify checked and which it could not (on stderr: stdout may be JSON)."""
    if target is None:
        click.echo("views: not checked (they are declared in a target: give --target)", err=True)
        return
    checked = [v.name for v in views if set(v.sources) <= set(names)]
    skipped = [v.name for v in views if not set(v.sources) <= set(names)]
    click.echo(f"views checked: {', '.join(checked) or 'none declared'}", err=True)
    if skipped:
        click.echo(f"views not checked (a source is not verified): {', '.join(skipped)}", err=True)


def _short(value: Any, width: int = 60) -> str:
    text = msgspec.json.encode(msgspec.to_builtins(value)).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command("export")
@_resource_option
@click.option("--after", default=0, type=click.IntRange(min=0), help="Only events with seq > N.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Default: stdout."
)
@_store_option
def export(chosen: tuple[str, ...], after: int, output: str | None, store_url: str) -> None:
    """Write the log as JSON Lines.

    One event a line, resource by resource in seq order; ``import`` reads it.
    """

    async def run(out: Any) -> int:
        count = 0
        async with _opened(store_url, readonly=True) as store:
            for name in await _resources(store, chosen, []):
                last = await store.last_seq(name)
                with _progress(f"export {name}", max(last - after, 0)) as advance:
                    seq = after
                    while events := await store.read_log(name, after=seq, limit=_IMPORT_CHUNK):
                        out.write(b"".join(encode_event(e) + b"\n" for e in events))
                        advance(len(events))
                        count += len(events)
                        seq = events[-1].seq
        return count

    if output is None:
        count = asyncio.run(run(sys.stdout.buffer))
        sys.stdout.flush()
    else:
        with open(output, "wb") as f:
            count = asyncio.run(run(f))
    click.echo(f"exported {count:,} events", err=True)


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Import into a store that already holds events.")
@_store_option
@_target_option
def import_command(file: Path, force: bool, store_url: str, target: str | None) -> None:
    """Load a JSON Lines export and rebuild the projections.

    Events are written verbatim (same seqs and times), so the projections come
    out identical to the exporting store's. Every event is checked first:
    against the declarations with --target (schemas, ids), and always for ids
    no URL can reach, times outside years 1..9999 and a log that does not
    continue (seqs, recorded_at, cancels). It is all or nothing: on SQLite
    one transaction, so a refused, interrupted or killed import leaves the
    store as it was. A store that already holds events is refused unless
    --force (the file must then continue its logs).
    """
    specs, views = _declared(target)
    check = ImportCheck(specs)

    async def run() -> tuple[dict[str, int], float]:
        started = time.perf_counter()
        async with _opened(store_url, create=True) as store:
            held = sum([await store.last_seq(n) for n in await store.resources()])
            if held and not force:
                raise InvalidRequest(
                    f"the store already holds {held:,} events; --force imports anyway"
                    " (the file's seqs must continue its logs)"
                )
            line = [0]
            with _progress("import", None) as advance:
                try:
                    counts = await store.load_stream(
                        _counted(read_checked(file, check, line), advance)
                    )
                except (InvalidRequest, DeclarationError) as exc:
                    if exc.detail.startswith(f"{file}:"):
                        raise
                    raise InvalidRequest(f"{file}:{line[0]}: {exc.detail}") from exc
            await _rebuild(store, list(counts), specs, views)
        return counts, time.perf_counter() - started

    counts, elapsed = asyncio.run(run())
    summary = ", ".join(f"{name} {n:,}" for name, n in counts.items()) or "nothing"
    click.echo(f"imported {summary}; projections rebuilt: {_rate(sum(counts.values()), elapsed)}")


def _counted(events: Iterator[Event], advance: Callable[[int], None]) -> Iterator[Event]:
    for n, event in enumerate(events, 1):
        if n % _IMPORT_CHUNK == 0:
            advance(_IMPORT_CHUNK)
        yield event
