"""OpenAPI 3.1 of the app, generated from the declarations alone.

Each declared resource version gets the paths of the requests it declares,
with its body schemas, one query parameter per field and operator
(``title__contains``), the scheduling and concurrency headers, the success
responses and every problem response it can answer. Response documents
list their fields but require only ``id``, ``_rev`` and ``_updated``:
``?fields=`` may leave the others out, and a document written under an
earlier version keeps the fields it had.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import eventdocs
from eventdocs.fields import UNSET, Boolean, Field, Map, Structure
from eventdocs.http.components import (
    MAX_INTEGER,
    PROBLEM_TITLES,
    REF,
    TIME_SCHEMA,
    common_parameters,
    common_schemas,
    json_content,
    page,
    param,
    problem,
    problem_response,
    time_parameter,
)
from eventdocs.resources import CustomRequest, ResourceSpec

__all__ = ["openapi_document"]

_COUNT = {"type": "integer", "minimum": 1, "maximum": MAX_INTEGER}
_LINK = {"$ref": f"{REF}/headers/Link"}
_AFTER_EVENT = {
    "name": "after",
    "in": "query",
    "description": "Keyset cursor: the events after event SEQ in this listing's order"
    " (no offset); the next page's link carries it on.",
    "schema": _COUNT,
}


def openapi_document(specs: Sequence[ResourceSpec]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every resource version in ``specs``."""
    paths: dict[str, Any] = {}
    schemas = common_schemas()
    for spec in specs:
        _Resource(spec, paths, schemas).build()
    paths["/healthz"] = {
        "get": {
            "operationId": "healthz",
            "summary": "Liveness, with the projector's lag per resource",
            "tags": ["service"],
            "responses": {
                "200": json_content("Alive", {"$ref": f"{REF}/schemas/Health"}),
                "503": problem(503),
            },
        }
    }
    paths["/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "tags": ["service"],
            "responses": {"200": json_content("The OpenAPI document", {"type": "object"})},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "eventdocs",
            "version": eventdocs.__version__,
            "description": "Event-sourced documents: every write is an event; "
            "scheduled writes, history and time travel come out of the log.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": common_parameters(),
            "responses": {str(s): problem_response(s) for s in PROBLEM_TITLES},
            "headers": {
                "ETag": {
                    "description": 'The document\'s _rev, quoted: "3"; "3-1a2b3c4d" for a'
                    " ?fields subset",
                    "required": True,
                    "schema": {"type": "string"},
                },
                "Link": {
                    "description": 'The next page, when there is one: </path?...>; rel="next"',
                    "schema": {"type": "string"},
                },
            },
        },
    }


def filter_params(fields: Iterable[tuple[str, Field]]) -> list[dict[str, Any]]:
    """The ``field__op`` query parameters of section 4 for ``fields`` (resources and views)."""
    params: list[dict[str, Any]] = []
    for name, f in fields:
        for op in f.operators:
            value = _filter_schema(f)
            one: dict[str, Any] = {"name": f"{name}__{op}", "in": "query"}
            if op == "null":
                value = {"type": "boolean"}
            elif op in ("in", "notin"):
                if value.get("type") == "string":
                    # commas separate values; one with a comma is "quoted"
                    value = {**value, "pattern": '^[^,"]+$'}
                value = {"type": "array", "items": value, "minItems": 1}
                one.update(style="form", explode=False)
            one["schema"] = value
            one["description"] = f"{op} ({', '.join(f.operators)} allowed on {name})"
            params.append(one)
            if op == "equal":
                params.append({**one, "name": name, "description": f"{name} equals"})
    return params


def _filter_schema(field: Field) -> dict[str, Any]:
    """The schema of one query-string value compared with ``field``."""
    schema = field.json_schema()
    kind = schema.get("type")
    types = [t for t in (kind if isinstance(kind, list) else [kind]) if t != "null"]
    if "enum" in schema:
        return {"enum": [v for v in schema["enum"] if v is not None]}
    if isinstance(field, Boolean):
        return {"type": "boolean"}
    if types == ["integer"]:
        return {"type": "integer"}
    if types == ["number"]:
        return {"type": "number"}
    if schema.get("format") == "decimal":
        return {"type": "number"}
    out: dict[str, Any] = {"type": "string"}
    if schema.get("format") in ("date", "uuid"):
        out["format"] = schema["format"]
    if schema.get("format") == "date-time":
        return dict(TIME_SCHEMA)
    return out


def _query_value_schema(field: Field) -> dict[str, Any]:
    """A custom GET/DELETE request's field as a query parameter (never null)."""
    schema = field.json_schema()
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        schema["type"] = kinds[0] if len(kinds) == 1 else kinds
    if "enum" in schema:
        schema["enum"] = [v for v in schema["enum"] if v is not None]
    schema.pop("default", None)
    return schema


def _filterable(spec: ResourceSpec) -> Iterable[tuple[str, Field]]:
    yield "id", spec.field_for("id")

    def walk(fields: dict[str, Field], prefix: str) -> Iterable[tuple[str, Field]]:
        for name, f in fields.items():
            if prefix + name != "id":
                yield prefix + name, f
            if isinstance(f, Structure):
                yield from walk(f.fields, f"{prefix}{name}.")

    yield from walk(spec.fields, "")


def _names_pattern(names: Iterable[str], sign: bool) -> str:
    alternatives = "|".join(re.escape(n) for n in names)
    one = f"{'-?' if sign else ''}(?:{alternatives})"
    return f"^{one}(?:,{one})*$"


def _merge_schema(spec: ResourceSpec) -> dict[str, Any]:
    """RFC 7396 body: writable fields; ``null`` removes one that is not required.

    Structures and maps take partial objects (the merged document is what
    is validated), so only their type is given.
    """
    properties: dict[str, Any] = {}
    for name, f in spec.fields.items():
        if name == "id" or f.readonly:
            continue
        if isinstance(f, Structure | Map):
            schema: dict[str, Any] = {"type": "object" if f.required else ["object", "null"]}
        elif f.required:
            schema = f.json_schema()
        else:
            schema = {"anyOf": [f.json_schema(), {"type": "null"}]}
        properties[name] = schema
    return {"type": "object", "properties": properties, "additionalProperties": False}


class _Resource:
    """Paths and schemas of one resource version."""

    def __init__(self, spec: ResourceSpec, paths: dict[str, Any], schemas: dict[str, Any]) -> None:
        self.spec = spec
        self.paths = paths
        self.schemas = schemas
        self.key = f"{spec.name}_v{spec.version}"
        self.tag = f"{spec.name} v{spec.version}"

    def ref(self, name: str) -> dict[str, Any]:
        return {"$ref": f"{REF}/schemas/{name}"}

    def op(self, request: str, summary: str, responses: dict[str, Any], **rest: Any) -> Any:
        for status in (503,):
            responses.setdefault(str(status), problem(status))
        return {
            "operationId": f"{self.key}_{request}",
            "summary": summary,
            "tags": [self.tag],
            **rest,
            "responses": responses,
        }

    def body(self, schema: dict[str, Any], *media: str) -> dict[str, Any]:
        kinds = media or ("application/json",)
        return {"required": True, "content": {m: {"schema": schema} for m in kinds}}

    def document_schema(self, request: str) -> str:
        name = f"{self.key}_{request}_document" if self.spec.overrides.get(request) else self.key
        if name not in self.schemas:
            schema = self.spec.document_schema(request)
            schema.pop("additionalProperties", None)
            schema["required"] = ["id", "_rev", "_updated"]
            if self.spec.description and name == self.key:
                schema["description"] = self.spec.description
            self.schemas[name] = schema
        return name

    def doc_response(self, request: str, description: str, **headers: Any) -> dict[str, Any]:
        etag = {"ETag": {"$ref": f"{REF}/headers/ETag"}}
        return json_content(description, self.ref(self.document_schema(request)), **etag, **headers)

    def link(self, request: str, **parameters: str) -> dict[str, Any]:
        return {"operationId": f"{self.key}_{request}", "parameters": parameters}

    def document_links(self) -> dict[str, Any]:
        """OpenAPI links from a created document to what can be done with it next."""
        requests = self.spec.requests
        wanted = {
            "get": ("get", "revisions", "diff"),
            "update": ("update", "patch", "revert"),
            "delete": ("delete",),
        }
        return {
            name: self.link(name, id="$response.body#/id")
            for request, names in wanted.items()
            if request in requests
            for name in names
        }

    def write_params(self, *extra: str) -> list[dict[str, Any]]:
        return [param("CaesiumTOA"), param("TOA"), *(param(e) for e in extra)]

    def build(self) -> None:
        spec, prefix = self.spec, self.spec.prefix
        requests = spec.requests
        self.schemas[f"{self.key}_create"] = spec.json_schema
        self.schemas[f"{self.key}_update"] = spec.update_schema()
        self.schemas[f"{self.key}_merge"] = _merge_schema(spec)
        self.document_schema("get")
        id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
        scheduled = {"202": json_content("Scheduled: the event", self.ref("Event"))}
        if requests & {"create", "update", "delete"}:
            scheduled["202"]["links"] = {"cancel": self.link("cancel", seq="$response.body#/seq")}
        problems = {str(s): problem(s) for s in (400, 413, 415, 422)}

        collection: dict[str, Any] = {}
        if "query" in requests:
            collection["get"] = self.op(
                "query",
                f"Query {spec.name} documents",
                {
                    "200": json_content(
                        "Matches", page(self.ref(self.document_schema("query"))), Link=_LINK
                    ),
                    "400": problem(400),
                },
                parameters=self.query_params(),
            )
        if "create" in requests:
            created = self.doc_response(
                "create",
                "Created",
                Location={"required": True, "schema": {"type": "string"}},
            )
            created["links"] = self.document_links()
            collection["post"] = self.op(
                "create",
                f"Create a {spec.name}",
                {"201": created, **scheduled, **problems, "409": problem(409), "429": problem(429)},
                parameters=self.write_params("IdempotencyKey"),
                requestBody=self.body(self.ref(f"{self.key}_create")),
            )
        self.paths[prefix] = collection

        document: dict[str, Any] = {"parameters": [id_param]}
        updated = {
            "200": self.doc_response("update", "Updated"),
            "204": {
                "description": "In effect, without a body: Prefer: return=minimal, or the"
                " document does not exist now"
            },
            **scheduled,
            **problems,
            "404": problem(404),
            "412": problem(412),
            "429": problem(429),
        }
        if "get" in requests:
            document["get"] = self.op(
                "get",
                f"Get a {spec.name} (now, as_of, known_at)",
                {
                    "200": self.doc_response("get", "The document"),
                    "304": {
                        "description": "Not modified: If-None-Match names the current ETag",
                        "headers": {"ETag": {"$ref": f"{REF}/headers/ETag"}},
                    },
                    "400": problem(400),
                    "404": problem(404),
                },
                parameters=[
                    param("AsOf"),
                    param("KnownAt"),
                    self.fields_param("get"),
                    param("IfNoneMatch"),
                ],
            )
        if "update" in requests:
            document["put"] = self.op(
                "update",
                "Set the given fields ($set)",
                dict(updated),
                parameters=self.write_params("IfMatch", "Prefer"),
                requestBody=self.body(self.ref(f"{self.key}_update")),
            )
            document["patch"] = self.op(
                "patch",
                "Apply a JSON merge patch (RFC 7396)",
                dict(updated),
                parameters=self.write_params("IfMatch", "Prefer"),
                requestBody=self.body(
                    self.ref(f"{self.key}_merge"),
                    "application/json",
                    "application/merge-patch+json",
                ),
            )
        if "delete" in requests:
            deleted = {k: v for k, v in updated.items() if k not in ("200", "413", "415", "422")}
            document["delete"] = self.op(
                "delete",
                f"Delete a {spec.name}",
                {"204": {"description": "Deleted"}, **deleted},
                parameters=self.write_params("IfMatch"),
            )
        self.paths[f"{prefix}/{{id}}"] = document
        if "get" in requests:
            self.history_paths(id_param)
        if "update" in requests:
            self.paths[f"{prefix}/{{id}}/revert"] = {
                "parameters": [id_param],
                "post": self.op(
                    "revert",
                    "Revert to a revision or a time (appends a revert)",
                    updated,
                    parameters=self.write_params("IfMatch", "IdempotencyKey", "Prefer"),
                    requestBody=self.body(self.ref("Revert")),
                ),
            }
        if requests & {"update", "delete"}:
            self.bulk_path(requests)
        if requests & {"query", "get"}:
            self.paths[f"{prefix}/_scheduled"] = {
                "get": self.op(
                    "scheduled",
                    "Writes recorded but not yet in effect",
                    {
                        "200": json_content("Pending events", self.ref("EventPage"), Link=_LINK),
                        "400": problem(400),
                    },
                    parameters=[param("Limit"), param("Offset"), _AFTER_EVENT],
                )
            }
        if requests & {"create", "update", "delete"}:
            seq = {"name": "seq", "in": "path", "required": True, "schema": _COUNT}
            self.paths[f"{prefix}/_scheduled/{{seq}}"] = {
                "parameters": [seq],
                "delete": self.op(
                    "cancel",
                    "Cancel a scheduled write (409 when in effect: revert instead)",
                    {
                        "200": json_content("The cancel event", self.ref("Event")),
                        **{str(s): problem(s) for s in (400, 404, 409)},
                    },
                ),
            }
        for request in spec.custom.values():
            self.custom_path(request)

    def history_paths(self, id_param: dict[str, Any]) -> None:
        prefix = self.spec.prefix
        self.paths[f"{prefix}/{{id}}/revisions"] = {
            "parameters": [id_param],
            "get": self.op(
                "revisions",
                "The document's events with their outcomes",
                {
                    "200": json_content("Revisions", self.ref("RevisionPage"), Link=_LINK),
                    "400": problem(400),
                    "404": problem(404),
                },
                parameters=[param("Limit"), param("Offset"), _AFTER_EVENT],
            ),
        }
        rev = {"name": "rev", "in": "path", "required": True, "schema": _COUNT}
        self.paths[f"{prefix}/{{id}}/revisions/{{rev}}"] = {
            "parameters": [id_param, rev],
            "get": self.op(
                "revision",
                "The document as it was after revision rev",
                {
                    "200": json_content("The document", self.ref(self.key)),
                    "400": problem(400),
                    "404": problem(404),
                },
            ),
        }
        sides = [{"name": n, "in": "query", "schema": _COUNT} for n in ("from", "to")] + [
            time_parameter(n, "query", "Side as a time") for n in ("from_time", "to_time")
        ]
        self.paths[f"{prefix}/{{id}}/diff"] = {
            "parameters": [id_param],
            "get": self.op(
                "diff",
                "JSON Patch (RFC 6902) from one revision or time to another (default: now)",
                {
                    "200": json_content("The patch", self.ref("JSONPatch")),
                    "400": problem(400),
                    "404": problem(404),
                },
                parameters=sides,
            ),
        }

    def bulk_path(self, requests: frozenset[str]) -> None:
        actions = [a for a in ("update", "delete") if a in requests]
        body = {
            "type": "object",
            "properties": {
                "action": {"enum": actions},
                "ids": {"type": "array", "items": {"type": "string"}},
                "body": self.ref(f"{self.key}_update"),
                "merge": {"type": "boolean", "default": False},
            },
            "required": ["action", "ids"],
            "additionalProperties": False,
            "if": {"properties": {"action": {"const": "delete"}}},
            "then": {"not": {"required": ["body"]}},
            "else": {"required": ["body"]},
        }
        item = {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "status": {"type": "integer"},
                "document": self.ref(self.document_schema("update")),
                "event": self.ref("Event"),
                "error": self.ref("Problem"),
            },
            "required": ["id", "status"],
        }
        self.paths[f"{self.spec.prefix}/_bulk"] = {
            "post": self.op(
                "bulk",
                "One update or delete for many ids: one result per id",
                {
                    "200": json_content("One result per id", page(item)),
                    "202": json_content("Scheduled: one event per id", page(item)),
                    **{str(s): problem(s) for s in (400, 405, 413, 415, 422, 429)},
                },
                parameters=self.write_params("IdempotencyKey"),
                requestBody=self.body(body),
            )
        }

    def fields_param(self, request: str) -> dict[str, Any]:
        names = ["id", *self.spec.fields, *self.spec.overrides.get(request, {})]
        return {
            "name": "fields",
            "in": "query",
            "description": "Top-level fields to return, comma-separated (and id, _rev, _updated).",
            "schema": {"type": "string", "pattern": _names_pattern(dict.fromkeys(names), False)},
        }

    def query_params(self) -> list[dict[str, Any]]:
        params = filter_params(_filterable(self.spec))
        sortable = ["id", *(n for n, f in self.spec.fields.items() if f.sortable and n != "id")]
        params.append(
            {
                "name": "sort",
                "in": "query",
                "description": "Fields, '-' for descending; ties break on id.",
                "schema": {"type": "string", "pattern": _names_pattern(sortable, True)},
            }
        )
        params += [
            param("Limit"),
            param("Offset"),
            {
                "name": "after",
                "in": "query",
                "description": "Keyset cursor: the documents whose id sorts after this one,"
                " in id order (no other sort, no offset).",
                "schema": {"type": "string"},
            },
            self.fields_param("query"),
            param("AsOf"),
            param("KnownAt"),
        ]
        return params

    def custom_path(self, request: CustomRequest) -> None:
        template = f"{self.spec.prefix}/{request.path}"
        path_names = re.findall(r"\{([^}/]+)\}", request.path)
        item = self.paths.setdefault(template, {})
        item["parameters"] = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in path_names
        ]
        responses: dict[str, Any] = {}
        for status, fields in sorted(request.responses.items()):
            schema = request.response_schema(status)
            responses[str(status)] = (
                {"description": f"{status}"}
                if schema is None or fields is None
                else json_content(f"{status}", schema)
            )
        if not responses:
            responses["200"] = json_content("OK", {})
        extra: dict[str, Any] = {}
        if request.method in ("GET", "DELETE"):
            extra["parameters"] = [
                {
                    "name": name,
                    "in": "query",
                    "required": f.required and f.default is UNSET,
                    "schema": _query_value_schema(f),
                }
                for name, f in request.fields.items()
            ]
            problems: tuple[int, ...] = (400, 404, 501)
        else:
            extra["requestBody"] = self.body(request.json_schema())
            problems = (400, 404, 413, 415, 422, 501)
        for status in problems:
            responses.setdefault(str(status), problem(status))
        item[request.method.lower()] = self.op(
            f"custom_{request.name}",
            request.description or request.name,
            responses,
            **extra,
        )
