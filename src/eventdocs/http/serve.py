"""Serve declarations on uvicorn: ``python -m eventdocs.http.serve TARGET``.

TARGET is a ``.py`` file, ``package.module:attr`` or a JSON declarations
file; its module-level ``views`` are projected too. One worker, httptools and
uvloop where installed, the ASGI lifespan on (it starts the projector and
scheduler), and a graceful shutdown on SIGINT/SIGTERM that lets requests in
flight finish. Answers of ``GZIP_MIN`` bytes or more are gzipped for clients
that accept it (:func:`served`). The store is opened once before uvicorn
starts, so an unreachable one is one line, not a failed lifespan.
``eventdocs serve`` calls :func:`run`.

A SQLite file has one owner: :func:`run` claims it before uvicorn starts, so
a second server on the same file is refused with one line. For
``uvicorn --factory eventdocs.http.serve:from_environment`` each worker
claims it when it builds the app; with ``--workers 2`` the second is refused
and exits with uvicorn's startup-failure code, which stops the whole command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import resource
import sys
from collections.abc import Sequence
from typing import Any, Final

import uvicorn
from asgi_gzip import GZipMiddleware  # type: ignore[import-untyped]

from eventdocs.documents import Limits
from eventdocs.errors import EventdocsError, InvalidRequest, StorageError, StoreUnavailable
from eventdocs.http.app import App, create_app
from eventdocs.http.auth import Tokens, read_tokens_file, tokens_of_target
from eventdocs.http.logs import FORMATS, LEVELS, configure
from eventdocs.resources import load_target, load_views
from eventdocs.service import Service
from eventdocs.storage import open_store, sqlite_path
from eventdocs.storage.sqlite.owner import claim

__all__ = ["GZIP_MIN", "build_app", "from_environment", "main", "probe_store", "run", "served"]

log = logging.getLogger("eventdocs.serve")

DEFAULT_STORE = "eventdocs.db"
GRACEFUL_SHUTDOWN_SECONDS = 10
LIMIT_CONCURRENCY = 4000  # connections or tasks; uvicorn answers 503 above
TIMEOUT_KEEP_ALIVE = 5  # seconds an idle keep-alive connection stays open
_STARTUP_FAILURE = 3  # uvicorn's: its supervisor stops instead of restarting the worker
# Below this many bytes gzip saves less than it costs (docs/operations.md has the figures).
GZIP_MIN: Final = 1024
_DEFAULTS = Limits()


def build_app(
    target: str,
    *,
    store: str = DEFAULT_STORE,
    max_body: int = 1 << 20,
    limits: Limits | None = None,
    tokens: Tokens | None = None,
    cors_origins: Sequence[str] = (),
    access_log: bool = False,
) -> App:
    """The app serving TARGET's resources and views on ``store`` (a path or URL)."""
    specs = load_target(target)
    views = load_views(target)
    service = Service(open_store(store), specs, views=views, limits=limits)
    return create_app(
        service, max_body=max_body, tokens=tokens, cors_origins=cors_origins, access_log=access_log
    )


def served(app: App, *, gzip_min: int = GZIP_MIN) -> Any:
    """``app`` as served: answers of ``gzip_min`` bytes or more gzipped when accepted.

    ``gzip_min=0`` serves ``app`` as it is (no gzip, and none of its cost).
    """
    if gzip_min <= 0:
        return app
    return _HeadAfterGzip(GZipMiddleware(app, minimum_size=gzip_min, compresslevel=6))


class _HeadAfterGzip:
    """Answer ``HEAD`` as ``GET`` through gzip, then drop the body.

    So a ``HEAD`` gets exactly the headers of the ``GET`` (``Content-Encoding``
    and the compressed ``Content-Length``): gzip decides on the real body.
    The app is told (``scope["eventdocs.head"]``) so its logs still say HEAD.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Any) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET", "eventdocs.head": True}, receive, headers_only)


def probe_store(url: str) -> None:
    """Open and close the store at ``url``, so a bad one fails before serving.

    Raises:
        StoreUnavailable: it cannot be opened, with the reason on one line.
    """

    async def probe() -> None:
        store = open_store(url)
        await store.open()
        await store.close()

    try:
        asyncio.run(probe())
    except (ImportError, EventdocsError) as exc:
        if not isinstance(exc, StorageError):
            raise
        raise StoreUnavailable(f"cannot open the store {url}: {_short(exc.detail)}") from None
    except Exception as exc:
        raise StoreUnavailable(f"cannot open the store {url}: {_short(str(exc))}") from None


def _short(reason: str) -> str:
    """A driver's reason on one line, without its topology dump."""
    reason = " ".join(reason.split())
    return reason.split(" (configured timeouts")[0].split(", Timeout:")[0][:200]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(
    target: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    store: str = DEFAULT_STORE,
    insecure: bool = False,
    access_log: bool = False,
    tokens: str | None = None,
    max_body: int = 1 << 20,
    max_limit: int = _DEFAULTS.query_limit,
    max_bulk_ids: int = _DEFAULTS.bulk_ids,
    max_pending: int = _DEFAULTS.pending_per_resource,
    max_answer_bytes: int = _DEFAULTS.answer_bytes,
    max_filters: int = _DEFAULTS.query_filters,
    max_sort_keys: int = _DEFAULTS.query_sort_keys,
    max_fields: int = _DEFAULTS.query_fields,
    max_in_values: int = _DEFAULTS.query_in_values,
    limit_concurrency: int | None = LIMIT_CONCURRENCY,
    timeout_keep_alive: int = TIMEOUT_KEEP_ALIVE,
    cors_origins: Sequence[str] = (),
    log_level: str = "info",
    log_format: str = "plain",
    gzip_min: int = GZIP_MIN,
) -> None:
    """Serve TARGET until SIGINT or SIGTERM.

    ``tokens`` is a JSON tokens file (:mod:`eventdocs.http.auth`); without
    one, the tokens TARGET declares, if any. With no tokens at all anyone who
    can connect may read and write, so a host other than loopback is refused
    unless ``insecure``. The limits answer a clear error when passed: bodies
    over ``max_body`` bytes (413), ``?limit=`` over ``max_limit`` (400), bulk
    requests over ``max_bulk_ids`` ids (413), a scheduled write beyond
    ``max_pending`` pending per resource (429), a page holding more than
    ``max_answer_bytes`` of documents (413), a query with more than
    ``max_filters`` filters, ``max_sort_keys`` sort keys, ``max_fields``
    fields or ``max_in_values`` values in one ``in`` (400). Connections:
    past ``limit_concurrency`` connections or tasks uvicorn answers 503, an
    idle keep-alive connection is closed after ``timeout_keep_alive``
    seconds (uvicorn has no timeout for a request's headers: put a reverse
    proxy in front for the internet, see docs/costs.md). The access log is
    off by default; it costs a tenth of the throughput. ``cors_origins``
    turns CORS on for those origins (``*``: any). Logs go to stderr at ``log_level``, as
    plain text or JSON lines (``log_format``). Answers of ``gzip_min`` bytes
    or more are gzipped for clients that accept it (0: never).

    Raises:
        InvalidRequest: a non-loopback host without tokens nor ``insecure``.
        DeclarationError: TARGET or the tokens file is wrong.
    """
    configure(log_level, log_format)
    accepted = read_tokens_file(tokens) if tokens is not None else tokens_of_target(target)
    if accepted is None and not _is_loopback(host):
        if not insecure:
            raise InvalidRequest(
                f"refusing to serve on {host} without tokens: anyone who can reach it could "
                "read and change every document; give --tokens FILE, or --insecure to serve "
                "anyway"
            )
        log.warning("serving on %s without authentication: anyone who can reach it can write", host)
    limits = Limits(
        bulk_ids=max_bulk_ids,
        pending_per_resource=max_pending,
        query_limit=max_limit,
        query_filters=max_filters,
        query_sort_keys=max_sort_keys,
        query_fields=max_fields,
        query_in_values=max_in_values,
        answer_bytes=max_answer_bytes,
    )
    app = build_app(
        target,
        store=store,
        max_body=max_body,
        limits=limits,
        tokens=accepted,
        cors_origins=cors_origins,
        access_log=access_log,
    )
    if accepted is not None:
        log.info("%d bearer tokens accepted", len(accepted))
    config = uvicorn.Config(
        served(app, gzip_min=gzip_min),
        host=host,
        port=port,
        lifespan="on",
        workers=1,
        access_log=False,  # eventdocs.access instead: it carries the request id
        log_config=None,
        log_level=log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        limit_concurrency=limit_concurrency,
        timeout_keep_alive=timeout_keep_alive,
    )
    _raise_open_files_limit()
    path = sqlite_path(store)
    ownership = claim(path) if path is not None else None  # refused here: one line, no traceback
    try:
        probe_store(store)
        uvicorn.Server(config).run()
    finally:
        if ownership is not None:
            ownership.release()


def _raise_open_files_limit() -> None:
    """Raise the soft limit on open files to the hard one.

    Each connection holds a descriptor; at the usual soft limit of 1024 a
    thousand idle clients would make ``accept`` fail for everyone else.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def from_environment() -> App:
    """An app factory for uvicorn: TARGET from ``$EVENTDOCS_TARGET``, store ``$EVENTDOCS_STORE``.

    ``uvicorn --factory eventdocs.http.serve:from_environment``. Each worker
    process claims the SQLite file for as long as it lives; a worker that
    cannot prints one line and exits with uvicorn's startup-failure code.
    """
    try:
        target = os.environ.get("EVENTDOCS_TARGET")
        if not target:
            raise InvalidRequest("set EVENTDOCS_TARGET to the declarations to serve")
        store = os.environ.get("EVENTDOCS_STORE", DEFAULT_STORE)
        path = sqlite_path(store)
        if path is not None:
            claim(path)  # released by the kernel when the worker exits
        return build_app(target, store=store, tokens=tokens_of_target(target))
    except EventdocsError as exc:
        print(f"eventdocs: error: {' '.join(exc.detail.split())}", file=sys.stderr, flush=True)
        raise SystemExit(_STARTUP_FAILURE) from None


def main(argv: Sequence[str] | None = None) -> None:
    """The command line of ``python -m eventdocs.http.serve``."""
    parser = argparse.ArgumentParser(
        prog="python -m eventdocs.http.serve", description="Serve eventdocs declarations."
    )
    parser.add_argument("target", help="a .py file, package.module:attr, or a .json file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--store", default=DEFAULT_STORE, help="a path, sqlite:///, memory:")
    parser.add_argument("--insecure", action="store_true", help="serve beyond loopback")
    parser.add_argument("--access-log", action="store_true")
    parser.add_argument("--cors-origin", action="append", default=[], help="allow this origin")
    parser.add_argument("--log-level", default="info", choices=list(LEVELS))
    parser.add_argument("--log-format", default="plain", choices=list(FORMATS))
    parser.add_argument("--gzip-min", type=int, default=GZIP_MIN, help="bytes; 0: no gzip")
    parser.add_argument("--tokens", help="a JSON tokens file: bearer tokens and their scopes")
    parser.add_argument("--max-body", type=int, default=1 << 20, help="bytes (413 above)")
    parser.add_argument(
        "--max-limit", type=int, default=_DEFAULTS.query_limit, help="largest ?limit= (400 above)"
    )
    parser.add_argument(
        "--max-bulk-ids", type=int, default=_DEFAULTS.bulk_ids, help="ids per _bulk (413 above)"
    )
    parser.add_argument(
        "--max-pending",
        type=int,
        default=_DEFAULTS.pending_per_resource,
        help="scheduled writes pending per resource (429 above)",
    )
    for flag, default, what in (
        ("--max-answer-bytes", _DEFAULTS.answer_bytes, "bytes of documents per page (413 above)"),
        ("--max-filters", _DEFAULTS.query_filters, "filters per query (400 above)"),
        ("--max-sort-keys", _DEFAULTS.query_sort_keys, "sort keys per query (400 above)"),
        ("--max-fields", _DEFAULTS.query_fields, "names in ?fields= (400 above)"),
        ("--max-in-values", _DEFAULTS.query_in_values, "values of one in/notin (400 above)"),
        ("--limit-concurrency", LIMIT_CONCURRENCY, "connections or tasks (503 above)"),
        ("--timeout-keep-alive", TIMEOUT_KEEP_ALIVE, "seconds an idle connection stays open"),
    ):
        parser.add_argument(flag, type=int, default=default, help=what)
    args = parser.parse_args(argv)
    try:
        run(
            args.target,
            host=args.host,
            port=args.port,
            store=args.store,
            insecure=args.insecure,
            access_log=args.access_log,
            tokens=args.tokens,
            max_body=args.max_body,
            max_limit=args.max_limit,
            max_bulk_ids=args.max_bulk_ids,
            max_pending=args.max_pending,
            max_answer_bytes=args.max_answer_bytes,
            max_filters=args.max_filters,
            max_sort_keys=args.max_sort_keys,
            max_fields=args.max_fields,
            max_in_values=args.max_in_values,
            limit_concurrency=args.limit_concurrency,
            timeout_keep_alive=args.timeout_keep_alive,
            cors_origins=args.cors_origin,
            log_level=args.log_level,
            log_format=args.log_format,
            gzip_min=args.gzip_min,
        )
    except EventdocsError as exc:
        print(f"eventdocs: error: {exc.detail}", file=sys.stderr)
        raise SystemExit(1) from None
    except ModuleNotFoundError as exc:
        if exc.name != "pymongo":
            raise
        print(
            "eventdocs: error: MongoDB stores need the mongodb extra:"
            " pip install 'eventdocs[mongodb]'",
            file=sys.stderr,
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
