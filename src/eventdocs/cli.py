"""The ``eventdocs`` command: serve, rebuild, check, inspect, diff, revert, move, measure.

Every command takes ``--store PATH|URI`` (default ``./eventdocs.db``, or
``$EVENTDOCS_STORE``). The commands that only need the log (export, import,
replay, verify, history, diff) work without ``--target``; given one they
also know its indexes and views. Commands that write (replay, import,
revert) must own the SQLite file: beside a running server they are refused
(``replay --url`` asks that server to replay instead).
The others open it read-only and work beside a server.

Errors are caught in one place, :meth:`_Cli.main`: one line on stderr and a
non-zero exit (2 for bad usage, 1 for everything else), never a traceback
(``EVENTDOCS_DEBUG=1`` re-raises unexpected ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.resources
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
import msgspec
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress
from rich.table import Table

from eventdocs.documents import WriteResult
from eventdocs.errors import DeclarationError, EventdocsError, InvalidRequest, NotFound
from eventdocs.events import Event, encode_event
from eventdocs.fold import Result
from eventdocs.importing import ImportCheck, read_checked
from eventdocs.projections.replay import Difference, replay, verify
from eventdocs.projections.views import View, rebuild_view
from eventdocs.resources import ResourceSpec, load_declarations, load_target, load_views
from eventdocs.service import Service
from eventdocs.storage import EventStore, open_store
from eventdocs.storage.sqlite.owner import StoreOwned
from eventdocs.times import SystemClock, format_time, parse_time

__all__ = ["main"]

_DEFAULT_STORE = "./eventdocs.db"
_IMPORT_CHUNK = 5000
_err = Console(stderr=True, highlight=False, soft_wrap=True)


# -- the one place errors are reported ---------------------------------------------


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"eventdocs: error: {' '.join(message.split())}", err=True)
    sys.exit(code)


def _describe(exc: EventdocsError) -> str:
    details = "; ".join(f"{d.path}: {d.message}" for d in exc.errors if d.message not in exc.detail)
    return f"{exc.detail} ({details})" if details else exc.detail


class _Cli(click.Group):
    """A group that turns every failure into one line on stderr and an exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()  # the help, as click prints it without arguments
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            _fail(f"{exc.format_message()}{where}", exc.exit_code)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            _fail("interrupted", 130)
        except EventdocsError as exc:
            _fail(_describe(exc))
        except ModuleNotFoundError as exc:
            if exc.name != "pymongo":
                _fail(f"missing module {exc.name} ({exc}); reinstall eventdocs")
            _fail("MongoDB stores need the mongodb extra: pip install 'eventdocs[mongodb]'")
        except OSError as exc:
            name = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{name}{exc.strerror or exc}")
        except Exception as exc:
            if os.environ.get("EVENTDOCS_DEBUG"):
                raise
            _fail(f"unexpected {type(exc).__name__}: {exc} (EVENTDOCS_DEBUG=1 shows where)")
        sys.exit(code if isinstance(code, int) else 0)


# -- shared options and helpers ----------------------------------------------------


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


# -- the commands --------------------------------------------------------------------


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eventdocs")
def main() -> None:
    """eventdocs: an event-sourced document store with a REST API."""


@main.command()
@click.argument("target")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@_store_option
@click.option("--insecure", is_flag=True, help="Serve beyond loopback without tokens.")
@click.option("--tokens", metavar="FILE", help="A JSON file of bearer tokens and their scopes.")
@click.option("--access-log", is_flag=True, help="Log every request (costs throughput).")
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Allow cross-origin requests from ORIGIN (repeatable; * for any). Off by default.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--log-format",
    type=click.Choice(["plain", "json"]),
    default="plain",
    show_default=True,
    help="Plain text or one JSON object per line.",
)
@click.option(
    "--gzip-min",
    type=click.IntRange(0),
    default=1024,
    show_default=True,
    metavar="BYTES",
    help="Gzip answers this large or larger for clients that accept it; 0 turns gzip off.",
)
@click.option(
    "--max-body",
    type=click.IntRange(1),
    default=1 << 20,
    show_default=True,
    help="Largest request body in bytes (413 above).",
)
@click.option(
    "--max-limit",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Largest ?limit= of a query (400 above).",
)
@click.option(
    "--max-bulk-ids",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Most ids in one _bulk request (413 above).",
)
@click.option(
    "--max-pending",
    type=click.IntRange(1),
    default=100_000,
    show_default=True,
    help="Most scheduled writes pending per resource (429 above).",
)
@click.option(
    "--max-answer-bytes",
    type=click.IntRange(1),
    default=32 << 20,
    show_default=True,
    help="Most bytes of documents one page of a query may hold (413 above).",
)
@click.option(
    "--max-filters",
    type=click.IntRange(0),
    default=32,
    show_default=True,
    help="Most filters in one query (400 above).",
)
@click.option(
    "--max-sort-keys",
    type=click.IntRange(0),
    default=8,
    show_default=True,
    help="Most sort keys in one query (400 above).",
)
@click.option(
    "--max-fields",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Most names in ?fields= (400 above).",
)
@click.option(
    "--max-in-values",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Most values of one in/notin filter (400 above).",
)
@click.option(
    "--limit-concurrency",
    type=click.IntRange(1),
    default=4000,
    show_default=True,
    help="Most connections or tasks at once (503 above).",
)
@click.option(
    "--timeout-keep-alive",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    help="Seconds an idle keep-alive connection stays open.",
)
def serve(target: str, store_url: str, **options: Any) -> None:
    """Serve the resources of TARGET over HTTP until SIGINT or SIGTERM."""
    try:  # imported here: the HTTP stack is heavy and other commands never need it
        module = importlib.import_module("eventdocs.http.serve")
    except ImportError as exc:
        raise InvalidRequest(f"the HTTP server is not available: {exc}") from exc
    module.run(target, store=store_url, **options)


@main.command()
@click.argument("name")
@click.argument("scopes", nargs=-1, metavar="SCOPE...")
@click.option(
    "--resource", default="*", show_default=True, help="The resource the scopes apply to."
)
def token(name: str, scopes: tuple[str, ...], resource: str) -> None:
    """Make a bearer token and print its tokens-file entry.

    SCOPEs are read (the default), write, schedule, admin. The token goes to
    stderr once (it is not stored); the entry, with its SHA-256, to stdout.
    """
    from eventdocs.http.auth import new_token

    secret, entry = new_token(name, list(scopes) or ["read"], resource)
    click.echo(f"token (give it to the client; it is not stored): {secret}", err=True)
    click.echo(json.dumps(entry))


_EXAMPLES = ("blog.json", "blog.py")


def _example(name: str) -> bytes:
    """An example file: shipped in the wheel, or examples/ of a source checkout."""
    shipped = importlib.resources.files("eventdocs") / "examples" / name
    if shipped.is_file():
        return shipped.read_bytes()
    checkout = Path(__file__).resolve().parents[2] / "examples" / name
    if checkout.is_file():
        return checkout.read_bytes()
    raise NotFound(f"the example {name} is not installed with eventdocs; reinstall it")


@main.command()
@click.option(
    "--dir",
    "folder",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the declarations.",
)
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def init(folder: Path, force: bool) -> None:
    """Write the blog example's declarations here: blog.json and blog.py (with a view).

    Then: eventdocs serve blog.json (or blog.py, which adds the posts-per-author view).
    """
    targets = [folder / name for name in _EXAMPLES]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        raise InvalidRequest(f"{', '.join(existing)} already exists; --force overwrites")
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in zip(_EXAMPLES, targets, strict=True):
        target.write_bytes(_example(name))
        click.echo(f"wrote {target}")
    click.echo(
        f"next: eventdocs serve {targets[0]}  (then open http://127.0.0.1:8000/openapi.json)"
    )


@main.command("replay")
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


@main.command("verify")
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


@main.command()
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


@main.command()
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


@main.command()
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


@main.command("export")
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


@main.command("import")
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


@main.command()
@click.option("--tiny", "size", flag_value="tiny", help="Seconds; for tests.")
@click.option("--full", "size", flag_value="full", help="The issue's sizes (1,000,000 events).")
@click.option(
    "--out",
    default="benchmarks/results",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where results.md, results.json and the plots go.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the temporary stores go (default: a temp dir beside --out).",
)
@click.option("--only", multiple=True, metavar="NAME", help="Only these benchmarks (repeatable).")
@click.option("--no-peer", is_flag=True, help="Skip the eventsourcing comparison.")
@click.option("--no-http", is_flag=True, help="Skip benchmarks/http_bench.py.")
def bench(
    size: str | None,
    out: Path,
    workdir: Path | None,
    only: tuple[str, ...],
    no_peer: bool,
    no_http: bool,
) -> None:
    """Run the benchmark suite and write its results.

    Writes results.md, results.json and PNG plots (with matplotlib) to --out.
    """
    try:
        from eventdocs.bench.suite import BENCHMARKS, Options, run_suite
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("eventdocs.bench"):
            raise
        raise InvalidRequest(
            "the benchmarks run from a source checkout: pip install -e '.[dev]' there,"
            " then eventdocs bench"
        ) from None

    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown:
        raise click.BadParameter(
            f"unknown benchmarks {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
            param_hint="--only",
        )
    options = Options(size or "default", out, workdir, only, peer=not no_peer, http=not no_http)
    run_suite(options, console=Console(highlight=False, soft_wrap=True))


# -- eventdocs view: a view's rows, filtered with the query language -----------------


@main.command("view")
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
