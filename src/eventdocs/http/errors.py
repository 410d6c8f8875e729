"""Errors as RFC 9457 problem details: the only place statuses are chosen.

Every error the app answers, whether raised by the core (the
:mod:`eventdocs.errors` hierarchy), by falcon (unknown route, undeclared
method) or by a bug, leaves as ``application/problem+json``::

    {"type": "urn:eventdocs:problem:not-found", "title": "Not Found",
     "status": 404, "detail": "post 'x' does not exist", "errors": []}

``errors`` lists one ``{"path", "message"}`` per failing JSON Pointer
(``/title``), query parameter (``?limit``) or header (``If-Match``). A 500
never carries a traceback or a driver message: those go to the log.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import falcon
import falcon.asgi
import msgspec

from eventdocs.errors import (
    Conflict,
    DeclarationError,
    ErrorDetail,
    EventdocsError,
    InvalidRequest,
    LimitExceeded,
    NotAllowed,
    NotFound,
    PreconditionFailed,
    StorageError,
    StoreUnavailable,
    ValidationFailed,
)

__all__ = [
    "PROBLEM_JSON",
    "Problem",
    "ProblemError",
    "install_error_handlers",
    "problem_for",
    "render_problem",
]

log = logging.getLogger("eventdocs.http")

PROBLEM_JSON: Final = "application/problem+json"

# status -> (type slug, title); the slug makes ``type`` a stable URI per kind.
_KINDS: Final[dict[int, tuple[str, str]]] = {
    400: ("bad-request", "Bad Request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not Found"),
    405: ("method-not-allowed", "Method Not Allowed"),
    409: ("conflict", "Conflict"),
    412: ("precondition-failed", "Precondition Failed"),
    413: ("content-too-large", "Content Too Large"),
    415: ("unsupported-media-type", "Unsupported Media Type"),
    422: ("validation-failed", "Unprocessable Content"),
    429: ("too-many-scheduled", "Too Many Requests"),
    500: ("internal-error", "Internal Server Error"),
    501: ("not-implemented", "Not Implemented"),
    503: ("store-unavailable", "Service Unavailable"),
}


class Problem(msgspec.Struct, frozen=True):
    """The body of every error response (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ErrorDetail] = []


class ProblemError(Exception):
    """An HTTP-level error with no counterpart in the core (401, 403, 415, 501)."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[ErrorDetail] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}


_encoder = msgspec.json.Encoder()


def _problem(status: int, detail: str, errors: Any = ()) -> Problem:
    slug, title = _KINDS.get(status, ("error", "Error"))
    return Problem(f"urn:eventdocs:problem:{slug}", title, status, detail, list(errors))


def problem_for(
    exc: BaseException, req: falcon.asgi.Request | None = None
) -> tuple[Problem, dict[str, str]]:
    """The problem and extra headers that answer ``exc`` (to ``req``, when known)."""
    if isinstance(exc, EventdocsError):
        return _core_problem(exc)
    if isinstance(exc, ProblemError):
        return _problem(exc.status, exc.detail, exc.errors), dict(exc.headers)
    if isinstance(exc, falcon.HTTPError):
        headers = dict(exc.headers or {})
        detail = exc.description or exc.title or "the request failed"
        if req is not None and isinstance(exc, falcon.HTTPRouteNotFound):
            detail = f"no route for {req.method} {req.path}"
        elif req is not None and isinstance(exc, falcon.HTTPMethodNotAllowed):
            allowed = headers.get("Allow", "")
            detail = f"{req.method} is not declared for {req.path}; allowed: {allowed}"
        return _problem(exc.status_code, detail), headers
    log.error("unhandled error", exc_info=exc)
    return _problem(500, "the server failed; the error is logged"), {}


def _core_problem(exc: EventdocsError) -> tuple[Problem, dict[str, str]]:
    headers: dict[str, str] = {}
    errors = exc.errors
    if isinstance(exc, ValidationFailed):
        status = 422
    elif isinstance(exc, InvalidRequest):
        status = 400
    elif isinstance(exc, NotFound):
        status = 404
    elif isinstance(exc, NotAllowed):
        status = 405
        headers["Allow"] = ", ".join(exc.allowed)
    elif isinstance(exc, Conflict):
        status = 409
    elif isinstance(exc, PreconditionFailed):
        status = 412
    elif isinstance(exc, LimitExceeded):
        status = 429 if exc.limit == "pending_per_resource" else 413
    elif isinstance(exc, StoreUnavailable):
        log.warning("store unavailable: %s", exc.detail)
        headers["Retry-After"] = "1"
        return _problem(503, "the store is unavailable; retry later"), headers
    elif isinstance(exc, StorageError | DeclarationError):
        log.error("%s", type(exc).__name__, exc_info=exc)
        return _problem(500, "the server failed; the error is logged"), headers
    else:
        log.error("unmapped eventdocs error", exc_info=exc)
        return _problem(500, "the server failed; the error is logged"), headers
    return _problem(status, exc.detail, errors), headers


def render_problem(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, exc: BaseException
) -> None:
    """Make ``resp`` the problem answer to ``exc``."""
    problem, headers = problem_for(exc, req)
    resp.status = problem.status
    resp.content_type = PROBLEM_JSON
    resp.data = _encoder.encode(problem)
    for name, value in headers.items():
        if name.lower() != "content-type":
            resp.set_header(name, value)


async def _handle(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: BaseException, params: Any
) -> None:
    render_problem(req, resp, ex)


def install_error_handlers(
    app: falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response],
) -> None:
    """Route every exception, falcon's own included, through :func:`render_problem`."""
    app.add_error_handler(Exception, _handle)
    app.add_error_handler(falcon.HTTPError, _handle)
    app.add_error_handler(EventdocsError, _handle)
    app.add_error_handler(ProblemError, _handle)
