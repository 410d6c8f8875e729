"""Code behind declarations: custom requests and overridden standard requests.

A custom request (mesh's ``hello``) gets its code from an ``async def handle``
method on its inner class, which is instantiated once with no arguments::

    class hello:
        endpoint = ("POST", "hello")
        schema = {"name": Text(required=True)}
        responses = {200: {"message": Text(required=True, nonnull=True)}}

        async def handle(self, documents, body, **params):
            return {"message": f"Hello, {body['name']}!"}

``body`` is the validated JSON body (the query string for ``GET`` and
``DELETE``), ``params`` the endpoint's path parameters. ``handle`` returns the
body of the lowest declared 2xx response (``None``: no body), or a
``(status, body)`` pair; what it returns is checked against the declared
response, and a mismatch is a 500 (a bug in the handler, logged). A custom
request declared without code (every one from a JSON declarations file)
checks its input and answers 501.

An overridden standard request adds response fields; their values come from
``async def extend(self, documents, document)`` on the override class, which
returns the extra fields of one rendered document. Without ``extend`` the
declared defaults are used, and fields without one are left out.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import falcon
import falcon.asgi

from eventdocs.documents import Documents
from eventdocs.errors import ErrorDetail, InvalidRequest, ValidationFailed
from eventdocs.fields import UNSET, Field, pointer
from eventdocs.http.errors import ProblemError
from eventdocs.http.query import pairs
from eventdocs.http.wire import read_json, send
from eventdocs.resources import CustomRequest, ResourceSpec, StandardRequest

__all__ = ["CustomResource", "Extender", "extender", "route_template"]

log = logging.getLogger("eventdocs.http")

Extender = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
Handler = Callable[..., Awaitable[Any]]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_QUERY_METHODS: Final = frozenset({"GET", "DELETE"})
_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")


def route_template(path: str) -> tuple[str, dict[str, str]]:
    """A falcon template for a custom path, and its field names to the declared ones.

    Falcon wants one name per path depth across a resource's routes, so a
    whole-segment parameter is renamed by depth (``id`` first, as the
    standard routes have it).
    """
    names: dict[str, str] = {}
    segments = []
    for depth, segment in enumerate(path.split("/")):
        found = _PARAM.fullmatch(segment)
        if found:
            canonical = {0: "id", 2: "rev"}.get(depth, f"p{depth}")
            names[canonical] = found.group(1)
            segment = "{" + canonical + "}"
        segments.append(segment)
    return "/".join(segments), names


def extender(spec: ResourceSpec, request: str, documents: Documents) -> Extender | None:
    """What fills in the fields an override of ``request`` adds (``None``: no override)."""
    fields = spec.overrides.get(request)
    if not fields:
        return None
    # A field shows its hook's value, else its default, else null: never missing.
    defaults = {n: None if f.default is UNSET else f.default for n, f in fields.items()}
    declared = getattr(spec.declaration, request, None)
    hook = None
    if isinstance(declared, type) and issubclass(declared, StandardRequest):
        hook = getattr(declared(), "extend", None)

    async def extend(document: dict[str, Any]) -> dict[str, Any]:
        extra = dict(defaults)
        if hook is not None:
            extra.update(await hook(documents, document))
        return extra

    return extend


def _handler(spec: ResourceSpec, request: CustomRequest) -> Handler | None:
    declared = getattr(spec.declaration, request.name, None)
    if not isinstance(declared, type) or getattr(declared, "handle", None) is None:
        return None
    handle = getattr(declared(), "handle", None)
    if not inspect.iscoroutinefunction(handle):
        raise TypeError(f"{spec.name}.{request.name}.handle must be an async def")
    return handle


def check_body(fields: Mapping[str, Field], body: Any) -> list[ErrorDetail]:
    """The errors of a response body against its declared fields."""
    if not isinstance(body, dict):
        return [ErrorDetail("", "not an object")]
    errors: list[ErrorDetail] = []
    for name, f in fields.items():
        if name in body:
            errors.extend(f.check(body[name], pointer(name)))
        elif f.required:
            errors.append(ErrorDetail(pointer(name), "is required"))
    errors.extend(ErrorDetail(pointer(k), "unknown field") for k in body if k not in fields)
    return errors


class CustomResource:
    """The custom requests that share one path, one responder per method."""

    def __init__(
        self,
        spec: ResourceSpec,
        documents: Documents,
        requests: Mapping[str, tuple[CustomRequest, Mapping[str, str]]],
        max_body: int,
    ) -> None:
        self.documents = documents
        self.max_body = max_body
        self.requests = {m: r for m, (r, _) in requests.items()}
        self.names = {m: dict(names) for m, (_, names) in requests.items()}
        self.handlers = {m: _handler(spec, r) for m, r in self.requests.items()}
        for method in _METHODS:
            if method not in self.requests:
                setattr(self, f"on_{method.lower()}", None)  # falcon answers 405

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **p: str) -> None:
        await self._call("GET", req, resp, p)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **p: str) -> None:
        await self._call("POST", req, resp, p)

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **p: str) -> None:
        await self._call("PUT", req, resp, p)

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **p: str
    ) -> None:
        await self._call("PATCH", req, resp, p)

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **p: str
    ) -> None:
        await self._call("DELETE", req, resp, p)

    async def _call(
        self,
        method: str,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        params: dict[str, str],
    ) -> None:
        request = self.requests[method]
        if method in _QUERY_METHODS:
            body = _from_query(request, pairs(req.query_string))
        else:
            body = request.validate(await read_json(req, self.max_body, default={}))
        handler = self.handlers[method]
        if handler is None:
            raise ProblemError(501, f"{request.name} is declared without code (no handle method)")
        names = self.names[method]
        path_params = {names.get(k, k): v for k, v in params.items()}
        returned = await handler(self.documents, body, **path_params)
        status, answer = self._response(request, returned)
        send(resp, answer, status)

    @staticmethod
    def _response(request: CustomRequest, returned: Any) -> tuple[int, Any]:
        declared = request.responses
        if isinstance(returned, tuple) and len(returned) == 2 and isinstance(returned[0], int):
            status, body = returned
        else:
            ok = sorted(s for s in declared if 200 <= s < 300)
            status, body = (ok[0] if ok else 200), returned
        if declared:
            if status not in declared:
                raise TypeError(f"{request.name} answered undeclared status {status}")
            fields = declared[status]
            if fields is None:
                if body is not None:
                    raise TypeError(f"{request.name} answered a body with {status}, declared empty")
            else:
                errors = check_body(fields, body)
                if errors:
                    raise TypeError(
                        f"{request.name} answered a body unlike its declaration: {errors}"
                    )
        if status == 204:
            body = None
        return status, body


def _from_query(request: CustomRequest, params: list[tuple[str, str]]) -> dict[str, Any]:
    """A GET/DELETE request's fields from its query string, parsed by type."""
    body: dict[str, Any] = {}
    for name, text in params:
        field = request.fields.get(name)
        if field is None:
            known = ", ".join(request.fields) or "none"
            raise InvalidRequest(
                f"?{name}: unknown parameter",
                [ErrorDetail(f"?{name}", f"unknown parameter; parameters are {known}")],
            )
        if name in body:
            raise InvalidRequest(f"?{name}: given twice", [ErrorDetail(f"?{name}", "given twice")])
        try:
            body[name] = field.parse_query_value(text)
        except ValueError as exc:
            raise InvalidRequest(f"?{name}: {exc}", [ErrorDetail(f"?{name}", str(exc))]) from None
    try:
        return request.validate(body)
    except ValidationFailed as exc:
        errors = [ErrorDetail("?" + e.path.lstrip("/"), e.message) for e in exc.errors]
        raise InvalidRequest(exc.detail, errors) from None
