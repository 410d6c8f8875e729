"""Serve declarations on uvicorn: ``python -m eventdocs.http.serve TARGET``.

TARGET is a ``.py`` file, ``package.module:attr`` or a JSON declarations
file; its module-level ``views`` are projected too. One worker, httptools and
uvloop, the ASGI lifespan on (it starts the projector and scheduler), and a
graceful shutdown on SIGINT/SIGTERM that lets requests in flight finish.
``eventdocs serve`` calls :func:`run`.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
from collections.abc import Sequence

import uvicorn

from eventdocs.http.app import App, create_app
from eventdocs.resources import load_target, load_views
from eventdocs.service import Service
from eventdocs.storage import open_store

__all__ = ["build_app", "main", "run"]

log = logging.getLogger("eventdocs.serve")

DEFAULT_STORE = "eventdocs.db"
GRACEFUL_SHUTDOWN_SECONDS = 10


def build_app(target: str, *, store: str = DEFAULT_STORE, max_body: int = 1 << 20) -> App:
    """The app serving TARGET's resources and views on ``store`` (a path or URL)."""
    specs = load_target(target)
    views = load_views(target)
    service = Service(open_store(store), specs, views=views)
    return create_app(service, max_body=max_body)


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
    max_body: int = 1 << 20,
) -> None:
    """Serve TARGET until SIGINT or SIGTERM.

    eventdocs has no authentication yet: on a host other than loopback it
    logs a warning (``insecure`` acknowledges it). The access log is off by
    default; it costs a tenth of the throughput.
    """
    app = build_app(target, store=store, max_body=max_body)
    if not _is_loopback(host) and not insecure:
        log.warning("serving on %s without authentication: anyone who can reach it can write", host)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http="httptools",
        loop="uvloop",
        lifespan="on",
        workers=1,
        access_log=access_log,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    uvicorn.Server(config).run()


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
    parser.add_argument("--max-body", type=int, default=1 << 20, help="bytes (413 above)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s %(message)s")
    run(
        args.target,
        host=args.host,
        port=args.port,
        store=args.store,
        insecure=args.insecure,
        access_log=args.access_log,
        max_body=args.max_body,
    )


if __name__ == "__main__":
    main()
