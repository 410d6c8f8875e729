"""Falcon middleware for what every route shares: HEAD, request ids, the access log.

* ``HEAD`` is answered by the route's ``GET`` responder: falcon keeps the
  status and headers (``Content-Length`` included) and drops the body, so
  every ``GET`` route, present or added later, answers ``HEAD`` alike. Under
  ``serve`` the body is dropped after gzip instead (:func:`~eventdocs.http.serve.served`).
* ``X-Request-ID``: a client's id (up to 128 visible ASCII characters) is
  kept, otherwise one is made; it is answered back and carried by every log
  record written while the request is served (``request_id``).
* The access log (``eventdocs.access``, off unless asked for): one record per
  request with method, route, status and duration, in the process's log
  format (plain or JSON lines, :mod:`eventdocs.http.logs`).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any, Final

import falcon.asgi

__all__ = ["REQUEST_ID", "HeadAsGet", "RequestLog", "request_id"]

REQUEST_ID: ContextVar[str | None] = ContextVar("eventdocs_request_id", default=None)
_VALID_ID: Final = re.compile(r"[\x21-\x7e]{1,128}")
access_log = logging.getLogger("eventdocs.access")


def request_id() -> str | None:
    """The id of the request being served, if any."""
    return REQUEST_ID.get()


class HeadAsGet:
    """Route ``HEAD`` to the ``GET`` responder; falcon then sends no body."""

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if req.method == "HEAD":
            req.context.head = True
            req.context.head_here = True
            req.method = "GET"
        elif req.scope.get("eventdocs.head"):
            req.context.head = True  # a HEAD the server drops the body of (after gzip)

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        if getattr(req.context, "head_here", False):
            req.method = "HEAD"


class RequestLog:
    """Keep or make ``X-Request-ID``; write the access record when ``access`` is on."""

    def __init__(self, *, access: bool = False) -> None:
        self.access = access

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        given = req.get_header("X-Request-ID")
        rid = given if given is not None and _VALID_ID.fullmatch(given) else uuid.uuid4().hex
        req.context.request_id = rid
        req.context.started = time.perf_counter()
        REQUEST_ID.set(rid)
        resp.set_header("X-Request-ID", rid)

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        if not self.access:
            return
        started: float = getattr(req.context, "started", time.perf_counter())
        seconds = time.perf_counter() - started
        method = "HEAD" if getattr(req.context, "head", False) else req.method
        fields: dict[str, Any] = {
            "method": method,
            "path": req.path,
            "route": req.uri_template,
            "status": resp.status_code,
            "duration_ms": round(seconds * 1000, 3),
        }
        access_log.info(
            "%s %s %d %.1fms",
            method,
            req.relative_uri,
            resp.status_code,
            seconds * 1000,
            extra={"http": fields},
        )
