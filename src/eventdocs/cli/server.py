"""The commands around a server: serve, token, init (its example), bench.

``serve`` imports the HTTP stack only when it runs (the other commands never
need it); ``init`` writes the example declarations to start from; ``bench``
runs the benchmark suite of a source checkout.
"""

from __future__ import annotations

import importlib
import importlib.resources
import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from eventdocs.cli.common import _store_option
from eventdocs.errors import InvalidRequest, NotFound


@click.command()
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


@click.command()
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
    checkout = Path(__file__).resolve().parents[3] / "examples" / name
    if checkout.is_file():
        return checkout.read_bytes()
    raise NotFound(f"the example {name} is not installed with eventdocs; reinstall it")


@click.command()
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


@click.command()
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
