"""The commands on one document or one view: history, diff, revert, view.

They read through the same :class:`~eventdocs.service.Service` as the HTTP
API, so a CLI answer is the API's answer. ``history``, ``diff`` and
``revert --dry-run`` open the store read-only, beside a running server;
``revert`` appends one event.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click
from rich.table import Table

from eventdocs.cli.common import (
    _declared,
    _json_out,
    _opened,
    _print_table,
    _spec,
    _store_option,
    _target_option,
    _time,
)
from eventdocs.documents import WriteResult
from eventdocs.fold import Result
from eventdocs.projections.views import View
from eventdocs.service import Service
from eventdocs.times import format_time


@click.command()
@click.argument("resource")
@click.argument("doc_id", metavar="ID")
@_store_option
@click.option("--json", "as_json", is_flag=True, help="Print the revisions as JSON.")
def history(resource: str, doc_id: str, store_url: str, as_json: bool) -> None:
    """List every event of a document with its outcome.

    Seq, action, time of action, recorded at and outcome, in valid-time order.
    """

    async def run() -> list[Result]:
        async with _opened(store_url, readonly=True) as store:
            service = Service(store, [_spec(resource, [])], background=False)
            return await service.documents(resource).revisions(doc_id)

    results = asyncio.run(run())
    if as_json:
        _json_out([_revision(r) for r in results])
        return
    table = Table(
        "seq", "action", "TOA", "recorded at", "outcome", "rev", title=f"{resource} {doc_id}"
    )
    for r in results:
        row = _revision(r)
        outcome = f"{r.outcome}: {r.reason}" if r.reason else r.outcome
        rev = "" if r.rev is None else str(r.rev)
        table.add_row(
            str(r.event.seq), r.event.action, row["toa"], row["recorded_at"], outcome, rev
        )
    _print_table(table)


def _revision(r: Result) -> dict[str, Any]:
    return {
        "seq": r.event.seq,
        "action": r.event.action,
        "toa": format_time(r.event.toa),
        "recorded_at": format_time(r.event.recorded_at),
        "outcome": r.outcome,
        "rev": r.rev,
        "reason": r.reason,
    }


@click.command()
@click.argument("resource")
@click.argument("doc_id", metavar="ID")
@click.option("--from", "from_rev", type=click.IntRange(min=1), help="From this revision.")
@click.option("--to", "to_rev", type=click.IntRange(min=1), help="To this revision.")
@click.option("--from-time", metavar="T", help="From the state at valid time T.")
@click.option("--to-time", metavar="T", help="To the state at valid time T.")
@_store_option
@_target_option
def diff(
    resource: str,
    doc_id: str,
    from_rev: int | None,
    to_rev: int | None,
    from_time: str | None,
    to_time: str | None,
    store_url: str,
    target: str | None,
) -> None:
    """Print the JSON Patch between two revisions or times.

    An RFC 6902 patch from --from/--from-time to --to/--to-time; a side left
    out is now. Times are RFC 3339 with an offset, Unix epoch seconds, or now.
    """
    for rev, t, side in ((from_rev, from_time, "from"), (to_rev, to_time, "to")):
        if rev is not None and t is not None:
            raise click.UsageError(f"give --{side} or --{side}-time, not both")
    since, until = _time(from_time, "--from-time"), _time(to_time, "--to-time")
    specs, _ = _declared(target)

    async def run() -> list[dict[str, Any]]:
        async with _opened(store_url, readonly=True) as store:
            service = Service(store, [_spec(resource, specs)], background=False)
            now = service.clock.now()
            return await service.documents(resource).diff(
                doc_id,
                from_rev=from_rev,
                to_rev=to_rev,
                # "now" from history, which is current even when the master is behind
                from_time=now if since is None and from_rev is None else since,
                to_time=now if until is None and to_rev is None else until,
            )

    _json_out(asyncio.run(run()))


@click.command()
@click.argument("resource")
@click.argument("doc_id", metavar="ID")
@click.option("--to-revision", type=click.IntRange(min=1), help="Back to this revision.")
@click.option("--as-of", metavar="T", help="Back to the state at valid time T.")
@click.option("--dry-run", is_flag=True, help="Print the patch it would apply; append nothing.")
@_store_option
@_target_option
def revert(
    resource: str,
    doc_id: str,
    to_revision: int | None,
    as_of: str | None,
    dry_run: bool,
    store_url: str,
    target: str | None,
) -> None:
    """Set a document back to a revision or time.

    Appends one revert event and prints the patch it applied; --dry-run only
    prints the patch. Needs --target (unless --dry-run) for views.
    """
    if (to_revision is None) == (as_of is None):
        raise click.UsageError("give exactly one of --to-revision and --as-of")
    if not dry_run and target is None:
        raise click.UsageError("revert needs --target (its schemas and views)")
    when = _time(as_of, "--as-of")
    specs, views = _declared(target)

    async def run() -> tuple[WriteResult | None, list[dict[str, Any]]]:
        async with _opened(store_url, readonly=dry_run) as store:
            if dry_run:  # reads only: no projection step, nothing written
                service = Service(store, [_spec(resource, specs)], background=False)
            else:
                service = Service(store, specs, views=views, background=False)
                await service.start()  # caught up first, so the check sees the present
            docs = service.documents(resource)
            patch = await docs.diff(
                doc_id, from_time=service.clock.now(), to_rev=to_revision, to_time=when
            )
            if dry_run:
                return None, patch
            return await docs.revert(doc_id, to_revision=to_revision, as_of=when), patch

    result, patch = asyncio.run(run())
    _json_out(patch)
    if result is None:
        click.echo("dry run: nothing appended", err=True)
        return
    rev = result.document.rev if result.document is not None else "deleted"
    click.echo(f"appended revert event {result.event.seq}; {resource} {doc_id} is now at {rev}")


@click.command("view")
@click.argument("name")
@click.argument("params", nargs=-1, metavar="[FIELD=VALUE|FIELD__OP=VALUE|sort=…|limit=…]...")
@click.option("--as-of", metavar="T", help="The rows as they were at valid time T.")
@click.option("--known-at", metavar="T", help="As known at time T (what the log held then).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@_store_option
@_target_option
def view_command(
    name: str,
    params: tuple[str, ...],
    as_of: str | None,
    known_at: str | None,
    as_json: bool,
    store_url: str,
    target: str | None,
) -> None:
    """Print the rows of view NAME, as a table.

    Filters, sort, limit, offset and fields are those of a query over HTTP
    (author=ann posts__gt=2 sort=-posts limit=10); times are RFC 3339 with an
    offset, Unix epoch seconds, or now. Reads only: it never writes the store.
    """
    if target is None:
        raise click.UsageError("view needs --target (the declarations of its views)")
    from eventdocs.http.views import parse_view_query
    from eventdocs.projections.reading import ViewPage, find_view, read_rows

    pairs: list[tuple[str, str]] = []
    for text in params:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise click.UsageError(f"{text!r}: expected FIELD=VALUE or FIELD__OP=VALUE")
        pairs.append((key, value))
    times = (_time(as_of, "--as-of"), _time(known_at, "--known-at"))
    specs, views = _declared(target)

    async def run() -> tuple[View, ViewPage]:
        async with _opened(store_url) as store:
            service = Service(store, specs, views=views, background=False)
            chosen = find_view(service, name)
            query, given = parse_view_query(chosen, pairs)  # as_of=T works as a word too
            as_of = times[0] if times[0] is not None else given.as_of
            known = times[1] if times[1] is not None else given.known_at
            return chosen, await read_rows(service, chosen, query, as_of=as_of, known_at=known)

    chosen, page = asyncio.run(run())
    if as_json:
        _json_out({"total": page.total, "resources": page.rows})
        return
    present = {k for row in page.rows for k in row}
    columns = [c for c in chosen.fields if c in present or not page.rows]
    columns += sorted(present - set(columns))  # a Python view's undeclared fields
    table = Table(*columns, title=name)
    for row in page.rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    _print_table(table)
    click.echo(f"{len(page.rows)} of {page.total} rows", err=True)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)
