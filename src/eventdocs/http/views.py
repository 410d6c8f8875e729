"""Views over HTTP (SPEC section 9): ``/views``, ``/views/{name}``, ``/views/{name}/{key}``.

A view's rows are read with section 4's query language on the view's own
fields: a declarative view's ``group_by`` fields take ``equal`` and the
operators their source field declares, its aggregates ``gt``/``gte``/``lt``/
``lte``, and every field sorts. A Python view declares its ``fields`` (or is
only paged). Rows carry no ``id``, ``_rev`` or ``_updated``: their ``ETag`` is
a digest of the row. :func:`mount_views` adds the routes, :func:`views_openapi`
their paths to the OpenAPI document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final

import falcon
import falcon.asgi

from eventdocs.errors import ErrorDetail, InvalidRequest
from eventdocs.http.components import REF, json_content, page, param, problem
from eventdocs.http.conventions import link_next
from eventdocs.http.openapi import _names_pattern, filter_params
from eventdocs.http.query import (
    QUERY_PARAMETERS,
    ReadTimes,
    pairs,
    parse_page,
    parse_query,
    parse_read,
)
from eventdocs.http.wire import encode, if_none_match, send
from eventdocs.projections.declared import DeclaredView
from eventdocs.projections.reading import find_view, read_row, read_rows, view_spec
from eventdocs.projections.views import View
from eventdocs.query import Query
from eventdocs.service import Service

__all__ = ["mount_views", "parse_view_query", "views_openapi"]

_TAG: Final = "views"


def _bad(param_name: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"?{param_name}: {message}", [ErrorDetail(f"?{param_name}", message)])


def parse_view_query(
    view: View, params: Sequence[tuple[str, str]], *, max_limit: int = 1000
) -> tuple[Query, ReadTimes]:
    """Section 4's query string over ``view``'s fields; 400 naming any other field."""
    known = ", ".join(view.fields) or "none (this view declares no fields)"
    for name, value in params:
        if name in ("sort", "fields"):
            for item in value.split(","):
                field = item.strip().lstrip("-+")
                if field and field not in view.fields:
                    raise _bad(name, f"{view.name} has no field {field!r}; fields are {known}")
        elif name not in QUERY_PARAMETERS and name.partition("__")[0] not in view.fields:
            raise _bad(
                name,
                f"unknown parameter; {view.name} has no field {name.partition('__')[0]!r}"
                f" (fields are {known})",
            )
    return parse_query(view_spec(view), params, max_limit=max_limit)


def _etag(row: dict[str, Any]) -> str:
    return '"' + hashlib.sha256(encode(row)).hexdigest()[:32] + '"'


def _describe(view: View) -> dict[str, Any]:
    out: dict[str, Any] = {"name": view.name, "sources": list(view.sources)}
    if isinstance(view, DeclaredView):
        out["kind"] = "declarative"
        out["group_by"] = list(view.group_by)
        if view.where:
            out["where"] = view.where
        out["aggregates"] = {a.name: {a.function: a.field} for a in view.aggregates}
        if view.description:
            out["description"] = view.description
    else:
        out["kind"] = "python"
        if type(view).__doc__:
            out["description"] = type(view).__doc__
    out["fields"] = list(view.fields)
    return out


class ViewListResource:
    """``GET /views``: the declared views."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        chosen = parse_page(pairs(req.query_string), max_limit=self.service.limits.query_limit)
        items = [_describe(v) for v in self.service.views]
        send(resp, {"total": len(items), "resources": items[chosen.offset :][: chosen.limit]})


class ViewResource:
    """``GET /views/{name}`` (rows, queried) and ``GET /views/{name}/{key}`` (one row)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def sources(self, name: str) -> tuple[str, ...]:
        """The resources view ``name`` reads (none for an unknown view: it answers 404)."""
        return next((v.sources for v in self.service.views if v.name == name), ())

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str) -> None:
        view = find_view(self.service, name)
        query, times = parse_view_query(
            view, pairs(req.query_string), max_limit=self.service.limits.query_limit
        )
        result = await read_rows(
            self.service, view, query, as_of=times.as_of, known_at=times.known_at
        )
        link_next(req, resp, query.offset, len(result.rows), result.total)
        send(resp, {"total": result.total, "resources": result.rows})

    async def on_get_row(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str, key: str
    ) -> None:
        view = find_view(self.service, name)
        times = parse_read(pairs(req.query_string))
        row = await read_row(self.service, view, key, as_of=times.as_of, known_at=times.known_at)
        etag = _etag(row)
        if if_none_match(req, etag):
            resp.status = 304
            resp.set_header("ETag", etag)
            return
        send(resp, row, etag=etag)


def mount_views(app: falcon.asgi.App[Any, Any], service: Service) -> None:
    """Route ``/views``, ``/views/{name}`` and ``/views/{name}/{key}`` on ``app``."""
    app.add_route("/views", ViewListResource(service))
    rows = ViewResource(service)
    app.add_route("/views/{name}", rows)
    app.add_route("/views/{name}/{key}", rows, suffix="row")


# -- OpenAPI ------------------------------------------------------------------------


def _row_schema(view: View) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: f.json_schema() for name, f in view.fields.items()},
    }
    if view.fields and isinstance(view, DeclaredView):
        schema["additionalProperties"] = False
    description = _describe(view).get("description")
    if description:
        schema["description"] = description
    return schema


def _query_params(view: View) -> list[dict[str, Any]]:
    params = filter_params(view.fields.items())
    sortable = [n for n, f in view.fields.items() if f.sortable]
    if sortable:
        params.append(
            {
                "name": "sort",
                "in": "query",
                "description": "Fields, '-' for descending.",
                "schema": {"type": "string", "pattern": _names_pattern(sortable, True)},
            }
        )
    if view.fields:
        params.append(
            {
                "name": "fields",
                "in": "query",
                "description": "Fields to return, comma-separated.",
                "schema": {"type": "string", "pattern": _names_pattern(view.fields, False)},
            }
        )
    params += [param("Limit"), param("Offset")]
    if isinstance(view, DeclaredView):
        params += [param("AsOf"), param("KnownAt")]
    return params


def views_openapi(document: dict[str, Any], views: Sequence[View]) -> None:
    """Add the view paths, and one row schema per view, to an OpenAPI ``document``."""
    if not views:
        return
    schemas = document["components"]["schemas"]
    paths = document["paths"]
    view_info = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "kind": {"enum": ["declarative", "python"]},
            "sources": {"type": "array", "items": {"type": "string"}},
            "group_by": {"type": "array", "items": {"type": "string"}},
            "where": {"type": "object"},
            "aggregates": {"type": "object"},
            "description": {"type": "string"},
            "fields": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "kind", "sources", "fields"],
    }
    paths["/views"] = {
        "get": {
            "operationId": "views",
            "summary": "The declared views",
            "tags": [_TAG],
            "parameters": [param("Limit"), param("Offset")],
            "responses": {
                "200": json_content("Views", page(view_info)),
                "400": problem(400),
                "503": problem(503),
            },
        }
    }
    for view in views:
        schema_name = f"view_{view.name}"
        schemas[schema_name] = _row_schema(view)
        ref = {"$ref": f"{REF}/schemas/{schema_name}"}
        key = {
            "name": "key",
            "in": "path",
            "required": True,
            "description": "The row's key: a one-field group_by's value "
            "(several fields: their values, comma-separated)",
            "schema": {"type": "string"},
        }
        row_params: list[dict[str, Any]] = [param("IfNoneMatch")]
        if isinstance(view, DeclaredView):
            row_params += [param("AsOf"), param("KnownAt")]
        paths[f"/views/{view.name}"] = {
            "get": {
                "operationId": f"view_{view.name}_query",
                "summary": f"Query the rows of view {view.name}",
                "tags": [_TAG],
                "parameters": _query_params(view),
                "responses": {
                    "200": json_content("Rows", page(ref)),
                    "400": problem(400),
                    "503": problem(503),
                },
            }
        }
        paths[f"/views/{view.name}/{{key}}"] = {
            "parameters": [key],
            "get": {
                "operationId": f"view_{view.name}_get",
                "summary": f"One row of view {view.name}",
                "tags": [_TAG],
                "parameters": row_params,
                "responses": {
                    "200": json_content(
                        "The row",
                        ref,
                        ETag={"description": "A digest of the row", "schema": {"type": "string"}},
                    ),
                    "304": {
                        "description": "Not modified: If-None-Match names the current ETag",
                        "headers": {"ETag": {"$ref": f"{REF}/headers/ETag"}},
                    },
                    "400": problem(400),
                    "404": problem(404),
                    "503": problem(503),
                },
            },
        }
